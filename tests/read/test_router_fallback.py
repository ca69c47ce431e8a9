"""Read fallback (runbook 003) on real engines: when the backend serving a read fails or
misses RETRIEVAL_READ_TIMEOUT_MS, the other one answers if dual write keeps it in step;
otherwise the caller gets a clear StoreUnavailable. Never a hang past the deadline, never
an unbounded number of threads stuck in a hung backend."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from shadowswap.errors import StoreUnavailable
from shadowswap.testing.faults import FailingStore, FlappingStore, HangingStore
from tests.metrics_helpers import RecordingMetrics
from tests.router_helpers import Stores, load_stores, make_router

DUAL_WRITE = {"FF_RETRIEVAL_DUAL_WRITE": "ON"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    yield from load_stores(tmp_path_factory.mktemp("fallback-stores"))


@pytest.fixture
def sink() -> RecordingMetrics:
    return RecordingMetrics()


def reads(sink: RecordingMetrics) -> list[tuple[str, str, str]]:
    return [(b, r, o) for b, r, o, _s in sink.of("read")]


def test_a_failing_primary_falls_back_to_the_target_kept_in_step(
    stores: Stores, sink: RecordingMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shadowswap")
    q = stores.queries["acme"][0]
    failing = FailingStore(stores.faiss, ops=["search"])
    with make_router(failing, stores.chroma, DUAL_WRITE, metrics=sink) as router:
        result = router.search("acme", q, 10, trace_id="trace-fb")
        assert router.executor.wait_idle()
    assert (result.backend, result.role, result.fallback) == ("chroma", "target", True)
    assert result.hits == stores.chroma.search("acme", q, 10).hits
    assert sink.of("fallback") == [("faiss", "chroma")]
    assert reads(sink) == [("faiss", "primary", "error"), ("chroma", "primary", "ok")]
    assert router.executor.stats().accepted == 0  # a fallback read is not shadowed
    (record,) = [r for r in caplog.records if r.getMessage() == "falling back"]
    assert (record.tenant, record.trace_id) == ("acme", "trace-fb")  # type: ignore[attr-defined]
    assert "StoreUnavailable" in record.reason  # type: ignore[attr-defined]


def test_without_dual_write_there_is_no_fallback_and_the_error_says_why(
    stores: Stores, sink: RecordingMetrics
) -> None:
    failing = FailingStore(stores.faiss, ops=["search"])
    with (
        make_router(failing, stores.chroma, metrics=sink) as router,
        pytest.raises(StoreUnavailable, match="FF_RETRIEVAL_DUAL_WRITE") as caught,
    ):
        router.search("acme", stores.queries["acme"][0], 10)
    assert caught.value.store == "faiss" and caught.value.tenant == "acme"
    assert "injected fault" in str(caught.value)
    assert sink.of("fallback") == []


def test_a_tenant_outside_the_dual_write_allowlist_has_no_fallback(stores: Stores) -> None:
    env = {**DUAL_WRITE, "RETRIEVAL_TENANT_ALLOWLIST": "globex"}
    failing = FailingStore(stores.faiss, ops=["search"])
    with make_router(failing, stores.chroma, env) as router:
        with pytest.raises(StoreUnavailable):
            router.search("acme", stores.queries["acme"][0], 10)
        assert router.search("globex", stores.queries["globex"][0], 10).fallback


def test_a_cutover_tenant_falls_back_to_the_primary(stores: Stores, sink: RecordingMetrics) -> None:
    env = {**DUAL_WRITE, "RETRIEVAL_CUTOVER_TENANTS": "acme"}
    failing = FailingStore(stores.chroma, ops=["search"])
    with make_router(stores.faiss, failing, env, metrics=sink) as router:
        result = router.search("acme", stores.queries["acme"][0], 10)
    assert (result.backend, result.role, result.fallback) == ("faiss", "primary", True)
    assert sink.of("fallback") == [("chroma", "faiss")]


def test_a_hanging_primary_falls_back_once_the_read_deadline_passes(
    stores: Stores, sink: RecordingMetrics
) -> None:
    hanging = HangingStore(stores.faiss, ops=["search"])
    env = {**DUAL_WRITE, "RETRIEVAL_READ_TIMEOUT_MS": "500"}  # also the fallback's deadline
    try:
        with make_router(hanging, stores.chroma, env, metrics=sink) as router:
            result = router.search("acme", stores.queries["acme"][0], 10)
            assert result.fallback and result.backend == "chroma"
            assert hanging.waiting == 1  # the hung call is left behind, the caller is not
    finally:
        hanging.release()
    assert reads(sink)[:2] == [("faiss", "primary", "timeout"), ("chroma", "primary", "ok")]
    assert sink.of("fallback") == [("faiss", "chroma")]


def test_hung_reads_never_hold_more_threads_than_the_read_concurrency(
    stores: Stores, sink: RecordingMetrics
) -> None:
    hanging = HangingStore(stores.faiss, ops=["search"])
    env = {**DUAL_WRITE, "RETRIEVAL_READ_TIMEOUT_MS": "500"}  # also the fallback's deadline
    try:
        with make_router(hanging, stores.chroma, env, metrics=sink, read_concurrency=3) as router:
            for i in range(8):
                assert router.search("acme", stores.queries["acme"][i], 5).fallback
            assert hanging.waiting == 3  # the rest failed fast: no slot, no new thread
            assert router.stats().reads_in_flight == {"faiss": 3, "chroma": 0}
    finally:
        hanging.release()
    outcomes = [o for b, r, o in reads(sink) if b == "faiss"]
    assert outcomes == ["timeout"] * 8
    assert len(sink.of("fallback")) == 8


def test_when_the_fallback_fails_too_the_error_names_both(stores: Stores) -> None:
    primary = FailingStore(stores.faiss, ops=["search"])
    target = FailingStore(stores.chroma, ops=["search"])
    with (
        make_router(primary, target, DUAL_WRITE) as router,
        pytest.raises(StoreUnavailable, match="fallback to chroma failed too"),
    ):
        router.search("acme", stores.queries["acme"][0], 10)


def test_a_flapping_primary_is_served_without_a_failed_request(
    stores: Stores, sink: RecordingMetrics
) -> None:
    flapping = FlappingStore(stores.faiss, ops=["search"], down=lambda n: n % 3 == 0)
    with make_router(flapping, stores.chroma, DUAL_WRITE, metrics=sink) as router:
        results = [router.search("acme", q, 10) for q in stores.queries["acme"]]
        assert router.executor.wait_idle()
    assert sum(r.fallback for r in results) == flapping.failures > 0
    for r, q in zip(results, stores.queries["acme"], strict=True):
        expected = stores.chroma if r.fallback else stores.faiss
        assert r.hits == expected.search("acme", q, 10).hits


def test_no_deadline_runs_the_read_on_the_callers_thread(stores: Stores) -> None:
    import threading

    seen: list[int] = []

    class Recording(FailingStore):
        def _before(self, op: str, tenant: str | None) -> None:
            seen.append(threading.get_ident())

    with make_router(
        Recording(stores.faiss, ops=["search"]),
        stores.chroma,
        {"RETRIEVAL_READ_TIMEOUT_MS": "0", "FF_RETRIEVAL_SHADOW_READ": "OFF"},
    ) as router:
        router.search("acme", stores.queries["acme"][0], 3)
    with make_router(
        Recording(stores.faiss, ops=["search"]), stores.chroma, {"FF_RETRIEVAL_SHADOW_READ": "OFF"}
    ) as router:
        router.search("acme", stores.queries["acme"][0], 3)
    assert seen[0] == threading.get_ident() != seen[1]


def test_a_router_without_a_target_store_reports_it_when_asked_to_use_one(
    stores: Stores,
) -> None:
    # acme's reads belong to the target, which this router has no store for: the read falls
    # back to the primary (kept in step by dual write) and the fallback is counted.
    env = {**DUAL_WRITE, "RETRIEVAL_CUTOVER_TENANTS": "acme"}
    sink = RecordingMetrics()
    with make_router(stores.faiss, None, env, metrics=sink) as router:
        served = router.search("acme", stores.queries["acme"][0], 3)
        assert (served.backend, served.role, served.fallback) == ("faiss", "primary", True)
        assert sink.of("fallback") == [("chroma", "faiss")]
        assert router.search("globex", stores.queries["globex"][0], 3).backend == "faiss"
    without_dual_write = {"RETRIEVAL_CUTOVER_TENANTS": "acme"}  # reads stay on the primary
    with make_router(stores.faiss, None, without_dual_write) as router:
        assert router.search("acme", stores.queries["acme"][0], 3).fallback is False

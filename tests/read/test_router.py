"""The router on real engines (FAISS primary, Chroma target, embedded and server) with
targets that hang, raise, are slow, or hold other documents: the caller always gets the
serving backend's answer; the shadow is counted with the right outcome."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings as ChromaSettings

from shadowswap import policy, values
from shadowswap.clock import FakeClock
from shadowswap.errors import InvalidInput
from shadowswap.logs import JsonFormatter
from shadowswap.read import router as router_module
from shadowswap.read.router import Router
from shadowswap.settings.config import Settings
from shadowswap.shadow.executor import ExecutorSizes, ShadowExecutor
from shadowswap.shadow.observations import (
    MemoryObservations,
    Observation,
    observation_log,
    read_observations,
)
from shadowswap.similarity import Metric
from shadowswap.stores import base
from shadowswap.stores.chroma import ChromaStore
from shadowswap.testing.faults import FailingStore, HangingStore, SlowStore
from shadowswap.values import Query
from tests.counting import CHECKS, count_calls
from tests.metrics_helpers import RecordingMetrics
from tests.router_helpers import TENANTS, Stores, load_stores, make_router, settings

DEADLINE_S = 0.8  # RETRIEVAL_SHADOW_TIMEOUT_MS default


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    yield from load_stores(tmp_path_factory.mktemp("router-stores"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink() -> RecordingMetrics:
    return RecordingMetrics()


def query(stores: Stores, tenant: str = "acme", i: int = 0) -> np.ndarray:
    return stores.queries[tenant][i]


def comparisons(sink: RecordingMetrics) -> list[Observation]:
    """The compared observations the router published (its metrics' histograms saw them)."""
    return sink.compared()


def reads(sink: RecordingMetrics) -> list[tuple[str, str, str]]:
    return [(b, r, o) for b, r, o, _s in sink.of("read")]


# -- the caller's answer and the comparison ------------------------------------------------
def test_the_caller_gets_the_primary_answer_and_the_shadow_is_compared(
    stores: Stores, sink: RecordingMetrics, clock: FakeClock
) -> None:
    with make_router(stores.faiss, stores.chroma, metrics=sink, clock=clock) as router:
        for tenant in TENANTS:
            for i in range(5):
                result = router.search(tenant, query(stores, tenant, i), 10)
                assert result.hits == stores.faiss.search(tenant, query(stores, tenant, i), 10).hits
                assert (result.backend, result.role, result.fallback) == ("faiss", "primary", False)
        assert router.executor.wait_idle()
    found = comparisons(sink)
    assert len(found) == 10
    assert all(c.shadow_backend == "chroma" and c.agreement_at_5 == 1.0 for c in found)
    assert all(c.ndcg_at_10 == pytest.approx(1.0) and not c.mismatch for c in found)
    assert all(c.score_delta is not None and c.score_delta < 1e-4 for c in found)
    assert reads(sink).count(("faiss", "primary", "ok")) == 10
    assert reads(sink).count(("chroma", "shadow", "ok")) == 10
    assert (
        sink.drops() == {"queue_full": 0, "timeout": 0}
        and sink.value("retrieval_shadow_errors_total", backend="chroma") == 0
    )


def test_a_target_holding_other_documents_is_a_mismatch_and_the_caller_sees_none_of_it(
    stores: Stores, sink: RecordingMetrics
) -> None:
    observations = MemoryObservations()
    with make_router(stores.faiss, stores.other, metrics=sink, observations=observations) as router:
        answers = [router.search("acme", q, 10) for q in stores.queries["acme"]]
        assert router.executor.wait_idle()
    for q, answer in zip(stores.queries["acme"], answers, strict=True):
        assert answer.hits == stores.faiss.search("acme", q, 10).hits
    found = comparisons(sink)
    assert len(found) == len(answers)
    assert any(c.mismatch for c in found)
    assert np.mean([c.agreement_at_5 for c in found]) < 0.95
    for record in observations.items:
        assert record.outcome == "compared"
        assert record.mismatch == (record.agreement_at_5 is not None and record.agreement_at_5 < 1)
        shared = set(record.primary_ids) & set(record.shadow_ids)
        assert record.agreement_at_5 is not None
        assert record.agreement_at_5 == pytest.approx(
            len(set(record.primary_ids[:5]) & set(record.shadow_ids[:5])) / 5
        )
        assert record.score_delta is not None or not shared


def test_a_hanging_target_is_dropped_at_the_deadline_and_its_late_answer_discarded(
    stores: Stores, sink: RecordingMetrics, clock: FakeClock
) -> None:
    hanging = HangingStore(stores.chroma, ops=["search"])
    observations = MemoryObservations()
    try:
        with make_router(
            stores.faiss, hanging, metrics=sink, clock=clock, observations=observations
        ) as router:
            result = router.search("acme", query(stores), 10, trace_id="t-hang")
            assert result.hits == stores.faiss.search("acme", query(stores), 10).hits
            assert hanging.wait_for_waiting(1)
            clock.advance(DEADLINE_S - 0.01)
            assert router.executor.sweep() == 0  # not yet
            clock.advance(0.02)
            assert router.executor.sweep() == 1
            assert router.executor.wait_idle()
            assert sink.drops() == {"queue_full": 0, "timeout": 1}
            assert ("chroma", "shadow", "timeout") in reads(sink)
            assert hanging.waiting == 1  # still blocked: counted without waiting for it
            hanging.release()
            assert router.executor.wait_idle()
    finally:
        hanging.release()
    assert comparisons(sink) == []  # the late answer was never compared
    assert sink.drops() == {"queue_full": 0, "timeout": 1}
    assert [(o.outcome, o.trace_id) for o in observations.items] == [("timeout", "t-hang")]


def test_a_raising_target_is_counted_as_an_error_never_raised(
    stores: Stores, sink: RecordingMetrics
) -> None:
    failing = FailingStore(stores.chroma, ops=["search"])
    with make_router(stores.faiss, failing, metrics=sink) as router:
        for i in range(3):
            result = router.search("acme", query(stores, i=i), 10)
            assert result.hits == stores.faiss.search("acme", query(stores, i=i), 10).hits
        assert router.executor.wait_idle()
    assert sink.value("retrieval_shadow_errors_total", backend="chroma") == 3
    assert reads(sink).count(("chroma", "shadow", "error")) == 3
    assert comparisons(sink) == [] and sink.drops() == {"queue_full": 0, "timeout": 0}


def test_a_slow_target_within_the_deadline_is_compared_with_its_latency(
    stores: Stores, sink: RecordingMetrics, clock: FakeClock
) -> None:
    slow = SlowStore(stores.chroma, delay_s=DEADLINE_S - 0.1, ops=["search"], clock=clock)
    with make_router(stores.faiss, slow, metrics=sink, clock=clock) as router:
        router.search("acme", query(stores), 10)
        assert router.executor.wait_idle()
    (found,) = comparisons(sink)
    assert found.shadow_latency_s == pytest.approx(DEADLINE_S - 0.1)
    assert found.latency_delta_s == pytest.approx(DEADLINE_S - 0.1)  # primary took 0 fake s
    assert found.agreement_at_5 == 1.0
    assert sink.drops() == {"queue_full": 0, "timeout": 0}


def test_a_slow_target_past_the_deadline_is_dropped_not_compared(
    stores: Stores, sink: RecordingMetrics, clock: FakeClock
) -> None:
    slow = SlowStore(stores.chroma, delay_s=DEADLINE_S + 0.1, ops=["search"], clock=clock)
    with make_router(stores.faiss, slow, metrics=sink, clock=clock) as router:
        result = router.search("acme", query(stores), 10)
        assert router.executor.wait_idle()
    assert result.backend == "faiss"
    assert comparisons(sink) == []
    assert sink.drops() == {"queue_full": 0, "timeout": 1}


def test_the_deadline_counts_from_acceptance_not_from_the_start_of_the_call(
    stores: Stores, sink: RecordingMetrics, clock: FakeClock
) -> None:
    hanging = HangingStore(stores.chroma, ops=["search"])
    slow = SlowStore(stores.chroma, delay_s=0.5, ops=["search"], clock=clock)
    # one worker shared by two routers: the second read waits behind the first in the queue
    executor = ShadowExecutor(
        metrics=sink, clock=clock, sizes=ExecutorSizes(workers=1, tick_s=None)
    )
    try:
        first = make_router(stores.faiss, hanging, metrics=sink, clock=clock, shadow=executor)
        second = make_router(stores.faiss, slow, metrics=sink, clock=clock, shadow=executor)
        first.search("acme", query(stores), 10)
        assert hanging.wait_for_waiting(1)
        second.search("acme", query(stores, i=1), 10)  # accepted now, queued
        clock.advance(0.4)
        hanging.release()  # the first answers in 0.4 s: compared
        assert executor.wait_idle()
    finally:
        hanging.release()
        executor.close()
    # the second waited 0.4 s in the queue, then its 0.5 s call ended 0.9 s after acceptance
    assert [c.shadow_latency_s for c in comparisons(sink)] == [pytest.approx(0.4)]
    assert sink.drops() == {"queue_full": 0, "timeout": 1}


def test_the_query_is_copied_so_a_caller_reusing_its_array_changes_nothing(
    stores: Stores, sink: RecordingMetrics, clock: FakeClock
) -> None:
    hanging = HangingStore(stores.chroma, ops=["search"])
    try:
        with make_router(stores.faiss, hanging, metrics=sink, clock=clock) as router:
            vector = np.array(query(stores), copy=True)
            router.search("acme", vector, 10)
            assert hanging.wait_for_waiting(1)
            vector[:] = -vector  # the caller reuses its buffer for the next query
            hanging.release()
            assert router.executor.wait_idle()
    finally:
        hanging.release()
    (found,) = comparisons(sink)
    assert found.agreement_at_5 == 1.0


# -- eligibility ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "tenant", "shadowed"),
    [
        ({"FF_RETRIEVAL_SHADOW_READ": "OFF"}, "acme", False),
        ({"RETRIEVAL_TENANT_ALLOWLIST": "globex"}, "acme", False),
        ({"RETRIEVAL_TENANT_ALLOWLIST": "globex,acme"}, "acme", True),
        ({"FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "0"}, "acme", False),
        ({}, "acme", True),
    ],
)
def test_eligibility(
    stores: Stores, sink: RecordingMetrics, env: dict[str, str], tenant: str, shadowed: bool
) -> None:
    with make_router(stores.faiss, stores.chroma, env, metrics=sink) as router:
        router.search(tenant, query(stores, tenant), 10)
        assert router.executor.wait_idle()
        assert router.executor.stats().accepted == int(shadowed)
    assert len(comparisons(sink)) == int(shadowed)


def test_sampling_follows_the_injected_random_source(stores: Stores) -> None:
    env = {"FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "0.25"}
    expected_draws = random.Random(42)
    expected = [expected_draws.random() < 0.25 for _ in range(200)]
    accepted = []
    for _ in range(2):  # reproducible: the same seed samples the same reads
        with make_router(
            stores.faiss, stores.chroma, env, seed=42, sizes=ExecutorSizes(queue_size=512)
        ) as router:
            before = 0
            picks = []
            for i in range(200):
                router.search("acme", query(stores, i=i % 20), 5)
                now = router.executor.stats().accepted
                picks.append(now > before)
                before = now
            assert router.executor.wait_idle()
        accepted.append(picks)
    assert accepted[0] == accepted[1] == expected
    assert 30 < sum(expected) < 70


def test_settings_are_read_per_request(stores: Stores, sink: RecordingMetrics) -> None:
    class Switch:
        def __init__(self) -> None:
            self.value = settings(FF_RETRIEVAL_SHADOW_READ="OFF")

        def current(self) -> Settings:
            return self.value

    switch = Switch()
    router = Router(
        primary=stores.faiss,
        target=stores.chroma,
        settings=switch,
        metrics=sink,
        clock=FakeClock(),
        rng=random.Random(0),
        shadow=ExecutorSizes(tick_s=None),
        observations=sink.observed,
    )
    with router:
        router.search("acme", query(stores), 10)
        switch.value = settings()  # the env file was edited: shadow on
        router.search("acme", query(stores), 10)
        # acme moves to the target (reads move only where dual write keeps the target in step)
        switch.value = settings(RETRIEVAL_CUTOVER_TENANTS="acme", FF_RETRIEVAL_DUAL_WRITE="ON")
        moved = router.search("acme", query(stores), 10)
        assert router.executor.wait_idle()
    assert (moved.backend, moved.role) == ("chroma", "target")
    assert sorted(c.shadow_backend for c in comparisons(sink)) == ["chroma", "faiss"]


def test_a_cutover_tenant_is_served_by_the_target_and_shadowed_on_the_primary(
    stores: Stores, sink: RecordingMetrics
) -> None:
    env = {"RETRIEVAL_CUTOVER_TENANTS": "globex", "FF_RETRIEVAL_DUAL_WRITE": "ON"}
    with make_router(stores.faiss, stores.chroma, env, metrics=sink) as router:
        moved = router.search("globex", query(stores, "globex"), 10)
        kept = router.search("acme", query(stores), 10)
        assert router.executor.wait_idle()
    assert (moved.backend, moved.role) == ("chroma", "target")
    assert moved.hits == stores.chroma.search("globex", query(stores, "globex"), 10).hits
    assert (kept.backend, kept.role) == ("faiss", "primary")
    assert sorted(c.shadow_backend for c in comparisons(sink)) == ["chroma", "faiss"]
    assert ("chroma", "primary", "ok") in reads(sink)  # role is primary|shadow: who served


def test_swapped_settings_follow_the_store_kinds(stores: Stores, sink: RecordingMetrics) -> None:
    # runbook 001: the new backend becomes primary, the old one stays as target
    env = {"RETRIEVAL_BACKEND": "chroma", "RETRIEVAL_TARGET_BACKEND": "faiss"}
    with make_router(stores.faiss, stores.chroma, env, metrics=sink) as router:
        result = router.search("acme", query(stores), 10)
        assert router.executor.wait_idle()
    assert (result.backend, result.role) == ("chroma", "primary")
    assert [c.shadow_backend for c in comparisons(sink)] == ["faiss"]


# -- input, trace ids, logs -----------------------------------------------------------------
def test_bad_input_is_the_callers_error_with_no_fallback_and_no_shadow(
    stores: Stores, sink: RecordingMetrics
) -> None:
    env = {"FF_RETRIEVAL_DUAL_WRITE": "ON"}
    with make_router(stores.faiss, stores.chroma, env, metrics=sink) as router:
        for tenant, vector, k in [
            ("no spaces", query(stores), 10),
            ("acme", [1.0, 2.0], 10),  # the wrong dimension: the store refuses it
            ("acme", query(stores), 0),
            ("acme", "text", 10),
        ]:
            with pytest.raises(InvalidInput):
                router.search(tenant, vector, k)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="trace_id"):
            router.search("acme", query(stores), 10, trace_id="has space")
    assert sink.of("fallback") == [] and comparisons(sink) == []


def test_a_routed_read_is_checked_once(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    """The router makes one `Query`; the serving store trusts it (no shadow here: the shadow
    leg is `shadowswap.shadow`'s)."""
    env = {"FF_RETRIEVAL_SHADOW_READ": "OFF", "FF_RETRIEVAL_DUAL_WRITE": "ON"}
    with make_router(stores.faiss, stores.chroma, env) as router:
        want = stores.faiss.search("acme", query(stores), 5, {"lang": "en"}).doc_ids
        calls = count_calls(monkeypatch, [values, base], CHECKS)
        got = router.search("acme", query(stores), 5, filter={"lang": "en"})
        assert got.doc_ids == want
        assert calls == Counter(dict.fromkeys(CHECKS, 1))
        # a query made already (as the HTTP service makes it) is not checked at all
        made = Query("acme", query(stores), 5, {"lang": "en"})
        calls.clear()
        assert router.search_query(made, trace_id="t-made").doc_ids == want
        assert calls == Counter()
    # nor when the primary fails and the target answers
    with make_router(FailingStore(stores.faiss, ops=["search"]), stores.chroma, env) as router:
        result = router.search_query(made)
        assert result.fallback and result.backend == "chroma"
        assert calls == Counter()


def test_a_shadowed_read_is_checked_once_too(
    stores: Stores, sink: RecordingMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shadow leg searches the other store with the router's `Query`, unchecked again."""
    env = {"FF_RETRIEVAL_DUAL_WRITE": "ON"}  # shadowed at rate 1.0 (SHADOW_ON)
    with make_router(stores.faiss, stores.chroma, env, metrics=sink) as router:
        calls = count_calls(monkeypatch, [values, base], CHECKS)
        router.search("acme", query(stores), 5, filter={"lang": "en"})
        assert router.executor.wait_idle()
    assert len(comparisons(sink)) == 1  # the shadow did search
    assert calls == Counter(dict.fromkeys(CHECKS, 1))


def test_the_policy_is_asked_once_per_read(
    stores: Stores, sink: RecordingMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_calls(monkeypatch, [router_module], ("plan",))
    singles = count_calls(
        monkeypatch, [policy], ("read_role", "shadow_role", "fallback_role", "write_plan")
    )
    env = {"FF_RETRIEVAL_DUAL_WRITE": "ON"}  # shadowed (SHADOW_ON) and in step
    with make_router(stores.faiss, stores.chroma, env, metrics=sink) as router:
        router.search("acme", query(stores), 10)
        assert router.executor.wait_idle()
    assert calls == Counter(plan=1) and len(comparisons(sink)) == 1
    with make_router(FailingStore(stores.faiss, ops=["search"]), stores.chroma, env) as router:
        assert router.search("acme", query(stores), 10).fallback
    assert calls == Counter(plan=2)
    assert singles["shadow_role"] == singles["fallback_role"] == singles["write_plan"] == 0
    assert singles["read_role"] == 2  # inside the two plans, once each


def test_trace_ids_are_kept_or_made(stores: Stores) -> None:
    with make_router(stores.faiss, stores.chroma) as router:
        assert router.search("acme", query(stores), 3, trace_id="abc123").trace_id == "abc123"
        fresh = router.search("acme", query(stores), 3).trace_id
        assert len(fresh) == 32 and int(fresh, 16) >= 0


def test_logs_carry_tenant_and_trace_id_and_never_vectors_or_metadata(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FailingStore(stores.chroma, ops=["search"])
    caplog.set_level(logging.DEBUG, logger="shadowswap")
    vector = query(stores)
    with make_router(stores.faiss, failing) as router:
        router.search("acme", vector, 10, trace_id="trace-logs")
        assert router.executor.wait_idle()
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name.startswith("shadowswap")]
    failed = [json.loads(line) for line in lines if "shadow read failed" in line]
    assert failed and failed[0]["tenant"] == "acme" and failed[0]["trace_id"] == "trace-logs"
    text = "\n".join(lines)
    assert f"{float(vector[0]):.6f}"[:7] not in text
    assert "cluster" not in text and "lang" not in text


# -- a Chroma server as the target ----------------------------------------------------------
def _wipe(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    client = chromadb.HttpClient(
        host=host, port=int(port), settings=ChromaSettings(anonymized_telemetry=False)
    )
    for col in client.list_collections():
        client.delete_collection(col if isinstance(col, str) else col.name)


def test_a_chroma_server_target_is_compared(
    stores: Stores, chroma_server_url: str, tmp_path: Path, sink: RecordingMetrics
) -> None:
    _wipe(chroma_server_url)
    server = ChromaStore(chroma_server_url, Metric.COSINE)
    try:
        for page in stores.faiss.scan("acme"):
            server.upsert("acme", page)
        with make_router(stores.faiss, server, metrics=sink) as router:
            for i in range(5):
                router.search("acme", query(stores, i=i), 10)
            assert router.executor.wait_idle()
    finally:
        server.close()
        _wipe(chroma_server_url)
    found = comparisons(sink)
    assert len(found) == 5 and all(c.agreement_at_5 == 1.0 for c in found)


# -- the observation log --------------------------------------------------------------------
def test_observations_reach_the_jsonl_log_without_vectors_text_or_metadata(
    stores: Stores, tmp_path: Path, clock: FakeClock
) -> None:
    env = {"RETRIEVAL_OBSERVATIONS_DIR": str(tmp_path / "obs")}
    log = observation_log(settings(**env), clock)
    assert log is not None
    hanging = HangingStore(stores.chroma, ops=["search"])
    vector = query(stores)
    try:
        with make_router(stores.faiss, stores.chroma, clock=clock, observations=log) as ok:
            ok.search("acme", vector, 10, filter={"lang": "en"}, trace_id="t-ok")
            assert ok.executor.wait_idle()
        failing = FailingStore(stores.chroma, ops=["search"])
        with make_router(stores.faiss, failing, clock=clock, observations=log) as bad:
            bad.search("acme", vector, 10, trace_id="t-err")
            assert bad.executor.wait_idle()
        with make_router(stores.faiss, hanging, clock=clock, observations=log) as hung:
            hung.search("acme", vector, 10, trace_id="t-late")
            assert hanging.wait_for_waiting(1)
            clock.advance(1.0)
            hung.executor.sweep()
            assert hung.executor.wait_idle()
    finally:
        hanging.release()
        log.close()
    records = {o.trace_id: o for o in read_observations(tmp_path / "obs")}
    assert {t: o.outcome for t, o in records.items()} == {
        "t-ok": "compared",
        "t-err": "error",
        "t-late": "timeout",
    }
    ok_record = records["t-ok"]
    primary = stores.faiss.search("acme", vector, 10, {"lang": "en"})
    assert ok_record.primary_ids == tuple(primary.doc_ids) == ok_record.shadow_ids
    assert ok_record.filtered and ok_record.k == 10 and ok_record.sample == "1.0"
    assert ok_record.agreement_at_5 == 1.0 and ok_record.mismatch is False
    assert records["t-err"].error == "StoreUnavailable"
    assert records["t-late"].shadow_latency_s is None
    text = "".join(p.read_text() for p in (tmp_path / "obs").iterdir())
    assert '"en"' not in text and "lang" not in text and "cluster" not in text
    assert f"{float(vector[0]):.5f}" not in text

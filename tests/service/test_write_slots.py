"""Fair write slots through the gateway (issue 16, finding 2): one tenant running 20
concurrent 1,000-document upserts made 18 of 60 single-document upserts of another tenant
fail with 503. Here the flooding tenant's writes hang inside the primary (a fault wrapper
that blocks that tenant only), so the flood holds whatever slots it can get for as long as
the victim writes: the victim's 60 singles must all succeed, and the flood must queue behind
itself and then complete."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shadowswap.fairness import Usage
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing.faults import HangingStore
from tests.service.conftest import Gateway

DIM = 8


class HangsForOneTenant(HangingStore):
    """Blocks the affected operations of ``tenant`` only."""

    def __init__(self, inner: Any, tenant: str) -> None:
        super().__init__(inner, ops=["upsert", "delete"])
        self.tenant = tenant

    def _before(self, op: str, tenant: str | None) -> None:
        if tenant == self.tenant:
            super()._before(op, tenant)


@contextlib.contextmanager
def released(store: HangingStore) -> Iterator[None]:
    """Release the hung calls however the block ends (a failed assertion included), so the
    thread pool can shut down."""
    try:
        yield
    finally:
        store.release()


def docs(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {"doc_id": f"{prefix}{i}", "vector": [1.0 + i % 7] + [0.5] * (DIM - 1)} for i in range(n)
    ]


def wait_for(gw: Gateway, tenant: str, usage: Usage) -> None:
    slots = gw.client.app.state.write_slots  # type: ignore[attr-defined]
    deadline = threading.Event()
    for _ in range(10_000):
        if slots.snapshot().get(tenant) == usage:
            return
        deadline.wait(0.001)
    raise AssertionError(f"{tenant} never reached {usage}: {slots.snapshot()}")


def test_a_flooding_tenant_costs_another_none_of_its_writes(
    gateway_factory: Any, tmp_path: Any
) -> None:
    store = HangsForOneTenant(FaissStore(str(tmp_path / "primary")), "tenant-a")
    gw = gateway_factory(primary=store)
    with ThreadPoolExecutor(max_workers=24) as pool, released(store):
        flood = [
            pool.submit(
                gw.post, "upsert", {"tenant": "tenant-a", "documents": docs(f"f{j}-", 1000)}, "a"
            )
            for j in range(20)
        ]
        # the flood holds its 4 slots (hung in the primary) and queues the other 16 behind them
        assert store.wait_for_waiting(4)
        wait_for(gw, "tenant-a", Usage(running=4, waiting=16))
        victim = list(
            pool.map(
                lambda i: gw.post(
                    "upsert", {"tenant": "tenant-b", "documents": docs(f"v{i}-", 1)}, "b"
                ),
                range(60),
            )
        )
        codes = [r.status_code for r in victim]
        assert codes == [200] * 60, [r.text for r in victim if r.status_code != 200][:3]
        assert store.waiting == 4  # the flood was held for the whole of the victim's run
        store.release()
        flooded = [f.result(timeout=120) for f in flood]
    assert [r.status_code for r in flooded] == [200] * 20, [r.text for r in flooded][:3]
    assert gw.runtime.primary.count("tenant-a") == 20_000
    assert gw.runtime.primary.count("tenant-b") == 60


def test_writes_past_the_global_bound_wait_then_get_503_with_retry_after(
    gateway_factory: Any, tmp_path: Any
) -> None:
    """A hung primary cannot take more than RETRIEVAL_WRITE_SLOTS threads: the next write
    waits RETRIEVAL_WRITE_QUEUE_TIMEOUT_MS in its tenant's queue, then gets 503."""
    store = HangingStore(FaissStore(str(tmp_path / "primary")), ops=["upsert"])
    gw = gateway_factory(
        primary=store,
        RETRIEVAL_WRITE_SLOTS="2",
        RETRIEVAL_WRITE_SLOTS_PER_TENANT="1",
        RETRIEVAL_WRITE_QUEUE_TIMEOUT_MS="50",
    )
    with ThreadPoolExecutor(max_workers=2) as pool, released(store):
        held = [
            pool.submit(gw.post, "upsert", {"tenant": t, "documents": docs("d", 1)}, k)
            for t, k in (("tenant-a", "a"), ("tenant-b", "b"))
        ]
        assert store.wait_for_waiting(2)
        r = gw.post("upsert", {"tenant": "tenant-c", "documents": docs("d", 1)}, "all")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert "tenant tenant-c has too many writes in flight" in r.json()["detail"]
        assert "RETRIEVAL_WRITE_QUEUE_TIMEOUT_MS" in r.json()["detail"]
        store.release()
        assert [f.result(timeout=60).status_code for f in held] == [200, 200]
    snapshot = gw.client.app.state.write_slots.snapshot()  # type: ignore[attr-defined]
    assert snapshot == {}


def test_a_tenants_full_queue_is_refused_at_once(gateway_factory: Any, tmp_path: Any) -> None:
    store = HangsForOneTenant(FaissStore(str(tmp_path / "primary")), "tenant-a")
    gw = gateway_factory(
        primary=store,
        RETRIEVAL_WRITE_SLOTS_PER_TENANT="1",
        RETRIEVAL_WRITE_QUEUE_MAX="1",
        RETRIEVAL_WRITE_QUEUE_TIMEOUT_MS="600000",
    )
    with ThreadPoolExecutor(max_workers=2) as pool, released(store):
        held = [
            pool.submit(gw.post, "upsert", {"tenant": "tenant-a", "documents": docs("d", 1)}, "a")
            for _ in range(2)
        ]
        wait_for(gw, "tenant-a", Usage(running=1, waiting=1))
        r = gw.post("upsert", {"tenant": "tenant-a", "documents": docs("d", 1)}, "a")
        assert r.status_code == 503 and "1 are queued" in r.json()["detail"], r.text
        assert (
            gw.post("upsert", {"tenant": "tenant-b", "documents": docs("d", 1)}, "b").status_code
            == 200
        )
        store.release()
        assert [f.result(timeout=60).status_code for f in held] == [200, 200]

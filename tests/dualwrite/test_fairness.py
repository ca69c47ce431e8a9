"""Fair dual write (issue 16, finding 1) on real engines: FAISS primary, LanceDB target.

One tenant's flood (a delete of 10,000 ids; 20 concurrent 1,000-document upserts) never
costs another tenant its dual writes while the target is healthy: they come back
``deferred`` and reach the target with no ``replay-outbox`` run. After a target outage that
filled the outbox, the outbox empties by itself once the target is back. A batch too large to
defer is refused whole, before anything is written."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from shadowswap.clock import SystemClock
from shadowswap.dualwrite.breaker import Breaker
from shadowswap.dualwrite.outbox import Outbox
from shadowswap.dualwrite.writer import DualWriter, WriteResult
from shadowswap.errors import BatchTooLarge
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.lancedb import LanceDBStore
from shadowswap.sync.reconcile import Reconcile
from shadowswap.testing.faults import FlappingStore
from tests.dualwrite.conftest import closed_after_test, doc, sqlite_outbox, static
from tests.metrics_helpers import RecordingMetrics

ENV = {
    "RETRIEVAL_BACKEND": "faiss",
    "RETRIEVAL_TARGET_BACKEND": "lancedb",
    # generous: a loaded machine must not turn slow answers into failures here
    "RETRIEVAL_DUAL_WRITE_TIMEOUT_MS": "10000",
}


@dataclass
class Rig:
    writer: DualWriter
    primary: VectorStore
    target: VectorStore
    outbox: Outbox


def rig(tmp_path: Path, *, flapping: bool = False, **env: str) -> Rig:
    clock, sink = SystemClock(), RecordingMetrics()
    primary = FaissStore(tmp_path / "faiss", Metric.COSINE)
    lance = LanceDBStore(str(tmp_path / "lance"), Metric.COSINE)
    target: VectorStore = (
        FlappingStore(lance, ops=["upsert", "delete", "get"]) if flapping else lance
    )
    outbox = sqlite_outbox(tmp_path)
    writer = DualWriter(
        primary, target, static(**{**ENV, **env}), outbox, Breaker(clock, sink.breaker_state),
        sink, clock, drain_retry_s=0.2,
    )  # fmt: skip
    return Rig(closed_after_test(writer), primary, target, outbox)


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.05)


def victim_writes(r: Rig, n: int) -> list[WriteResult]:
    """Tenant ``b`` writes ``n`` single documents, one after the other."""
    return [r.writer.upsert("b", [doc("b", f"b{i}")]) for i in range(n)]


def assert_victim_whole(r: Rig, results: list[WriteResult]) -> None:
    assert [x.outcome for x in results] == ["deferred"] * len(results)
    assert sum(x.dropped for x in results) == 0
    wait_for(lambda: r.target.count("b") == len(results), "b's documents in the target")
    held = r.target.get("b", [f"b{i}" for i in range(len(results))])
    assert {d: h.content_hash for d, h in held.items()} == {
        d: h.content_hash for d, h in r.primary.get("b", list(held)).items()
    }
    uses = {u.tenant: u for u in r.outbox.tenants()}
    assert "b" not in uses or (uses["b"].dropped_full, uses["b"].dropped_ttl) == (0, 0)
    assert not [d for d in r.outbox.dropped(limit=100_000) if d.tenant == "b"]


def test_a_delete_of_10000_ids_is_refused_whole_and_costs_no_one_anything(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    r.writer.upsert("a", [doc("a", f"a{i}") for i in range(5)])
    assert r.writer.flush(60)
    with pytest.raises(BatchTooLarge) as refused:
        r.writer.delete("a", [f"a{i}" for i in range(10_000)])
    message = str(refused.value)
    assert "10000 changes" in message and "at most 900" in message
    assert "RETRIEVAL_DUAL_WRITE_OUTBOX_MAX=1000" in message
    assert "nothing was written" in message and "batches of at most 900" in message
    assert refused.value.field == "doc_ids" and refused.value.limit == 900
    assert r.primary.count("a") == 5  # nothing written: not half-deleted either
    stats = r.outbox.stats()
    assert (stats.size, stats.dropped_full) == (0, 0)
    # the largest batch that may be deferred is accepted, and costs the others nothing
    big = r.writer.delete("a", [f"a{i}" for i in range(900)])
    assert big.outcome in ("deferred", "queued") and big.queued == 900 and big.dropped == 0
    assert_victim_whole(r, victim_writes(r, 20))
    wait_for(lambda: r.outbox.stats().size == 0, "the outbox drained without replay-outbox")
    assert r.target.count("a") == 0


def test_deletes_of_the_most_that_may_be_deferred_never_drop_another_tenants_writes(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    flood: list[WriteResult] = []

    def deletes() -> None:
        for round_ in range(12):  # 10,800 changes: more than ten outboxes' worth
            flood.append(r.writer.delete("a", [f"a{round_}-{i}" for i in range(900)]))

    thread = threading.Thread(target=deletes)
    thread.start()
    results = victim_writes(r, 30)
    thread.join()
    assert_victim_whole(r, results)
    for x in flood:  # a's own writes: every change either stored or dropped and counted
        assert x.queued + x.dropped == 900
    dropped_a = sum(x.dropped for x in flood)
    uses = {u.tenant: u for u in r.outbox.tenants()}
    assert uses.get("a") is None or uses["a"].dropped_full == dropped_a
    wait_for(lambda: r.outbox.stats().size == 0, "the outbox drained without replay-outbox")


@pytest.mark.slow
def test_twenty_concurrent_1000_document_upserts_never_drop_another_tenants_writes(
    tmp_path: Path,
) -> None:
    # room for a 1,000-document dual write: it may hold 1,800 of the 2,000 items
    r = rig(tmp_path, RETRIEVAL_DUAL_WRITE_OUTBOX_MAX="2000")
    barrier = threading.Barrier(21)
    flood: list[WriteResult] = []

    def upsert(n: int) -> None:
        docs = [doc("a", f"a{n}-{i}") for i in range(1000)]
        barrier.wait()
        flood.append(r.writer.upsert("a", docs))

    threads = [threading.Thread(target=upsert, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    barrier.wait()
    results = victim_writes(r, 30)
    for thread in threads:
        thread.join()
    assert len(flood) == 20 and all(x.queued + x.dropped == 1000 for x in flood)
    assert_victim_whole(r, results)
    wait_for(lambda: r.outbox.stats().size == 0, "the outbox drained without replay-outbox")


def test_after_an_outage_the_outbox_drains_by_itself_and_later_writes_are_not_dropped(
    tmp_path: Path,
) -> None:
    r = rig(
        tmp_path, flapping=True, RETRIEVAL_DUAL_WRITE_OUTBOX_MAX="40",
        RETRIEVAL_DUAL_WRITE_CB_WINDOW_S="0.3",
    )  # fmt: skip
    target = r.target
    assert isinstance(target, FlappingStore)
    target.go_down()
    during = [r.writer.upsert("a", [doc("a", f"a{i}")]) for i in range(60)]
    assert during[-1].outcome == "dropped"  # a's share of the outbox is full
    victim = [r.writer.upsert("b", [doc("b", f"b{i}")]) for i in range(4)]
    assert all(x.outcome != "dropped" for x in victim)  # b's share was kept for it
    assert r.outbox.stats().size == 40
    target.come_up()
    wait_for(lambda: r.outbox.stats().size == 0, "the outbox drained without replay-outbox")
    after = []
    for i in range(30):  # at the pace the target keeps (before the fix: every one dropped)
        after += [r.writer.upsert(t, [doc(t, f"{t}-after-{i}")]) for t in "ab"]
        assert r.writer.flush(60)
    assert [x.outcome for x in after] == ["deferred"] * 60
    stored_a = {f"a{i}" for i, x in enumerate(during) if x.dropped == 0}
    dropped_a = {d.doc_id for d in r.outbox.dropped() if d.tenant == "a"}
    assert dropped_a == {f"a{i}" for i in range(60)} - stored_a  # left to reconcile
    held = set(target.get("a", [f"a{i}" for i in range(60)]))
    assert held == stored_a
    assert r.target.count("b") == 4 + 30
    # reconcile finds exactly a's dropped documents, none of b's, and repairs them
    found = {d.tenant: d for d in Reconcile(r.primary, target).run().tenants}
    assert (found["a"].missing, found["a"].drift) == (len(dropped_a), len(dropped_a))
    assert found["b"].drift == 0
    assert Reconcile(r.primary, target, repair=True).run().drift == 0
    assert set(target.get("a", [f"a{i}" for i in range(60)])) == {f"a{i}" for i in range(60)}

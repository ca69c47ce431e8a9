"""The background applier on its own (no writer): it applies and acks the items offered to it
with the stores and the outbox it was built with, releases what it cannot take, and reports
the outbox's size to the metrics' listeners (`OutboxSampler`; the exposition reads the outbox
itself at scrape time)."""

from __future__ import annotations

from pathlib import Path

from shadowswap.clock import FakeClock
from shadowswap.dualwrite.applier import Applier
from shadowswap.dualwrite.breaker import Breaker
from shadowswap.dualwrite.figures import OutboxSampler
from shadowswap.dualwrite.outbox import Appended, Change, Item, Outbox, OutboxStats
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing.faults import HangingStore
from tests.dualwrite.conftest import doc, sqlite_outbox, static
from tests.metrics_helpers import RecordingMetrics

OWNER = "writer:test"


def leased(box: Outbox, changes: list[Change], now: float) -> tuple[Appended, list[Item]]:
    """Append ``changes`` leased to the applier's owner, as the writer does."""
    appended = box.append(changes, now=now, capacity=10_000, ttl_s=3600, lease_owner=OWNER)
    stored = zip(appended.seqs, changes, strict=True)
    return appended, [Item.of(seq, change, appended.created_at) for seq, change in stored]


def test_offered_items_are_applied_from_the_source_and_acked(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingMetrics()
    box = sqlite_outbox(tmp_path)
    primary, target = MemoryStore(), FaissStore(tmp_path / "t", Metric.COSINE)
    docs = [doc("acme", f"d{i}") for i in range(3)]
    primary.upsert("acme", docs)  # the synchronous write, done
    changes = [Change.upsert(d, "faiss") for d in docs]
    _, items = leased(box, changes, clock.now())
    applier = Applier(
        box, {"memory": primary, "faiss": target}, static(),
        Breaker(clock, sink.breaker_state), sink, clock, OutboxSampler(sink, clock), owner=OWNER,
    )  # fmt: skip
    try:
        assert applier.offer(items)
        assert applier.flush(10)
        assert target.count("acme") == 3
        assert box.stats().size == 0
        assert sink.of("outbox_size")[-1] == (0, None)
        assert sink.value("retrieval_dual_write_errors_total") == 0
    finally:
        applier.close()


def test_an_offer_past_the_backlog_is_released_to_the_replay(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingMetrics()
    box = sqlite_outbox(tmp_path)
    changes = [Change.upsert(doc("acme", f"d{i}"), "faiss") for i in range(3)]
    appended, items = leased(box, changes, clock.now())
    applier = Applier(
        box, {}, static(), Breaker(clock, sink.breaker_state), sink, clock,
        OutboxSampler(sink, clock), owner=OWNER, max_backlog_items=2,
    )  # fmt: skip
    applier.close()
    assert not applier.has_room(1)
    assert not applier.offer(items)
    # released: another owner may claim every item at once
    claim = box.claim("cron", limit=10, after=0, upto=10_000, now=clock.now())
    assert [i.seq for i in claim.items] == list(appended.seqs)


def test_the_sampler_tells_listeners_size_and_age_as_stored() -> None:
    clock, sink = FakeClock(), RecordingMetrics()
    sampler = OutboxSampler(sink, clock)
    sampler.report(OutboxStats(2, clock.now() - 5, dropped_full=4, dropped_ttl=1))
    assert sink.of("outbox_size") == [(2, 5.0)]
    sampler.report(OutboxStats(0, None, dropped_full=6, dropped_ttl=1))
    assert sink.of("outbox_size")[-1] == (0, None)
    # drops are not pushed: the exposition reads the outbox's stored totals at scrape time
    assert sink.value("retrieval_dual_write_outbox_dropped_total", reason="full") == 0


def test_the_sampler_never_raises_when_the_outbox_cannot_be_read(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingMetrics()
    box = sqlite_outbox(tmp_path)
    box.close()
    OutboxSampler(sink, clock).report_quietly(box)  # logged, not raised
    assert sink.of("outbox_size") == []


class _Watched(HangingStore):
    """Hangs until released, and remembers which tenant each write was for."""

    def __init__(self, inner: VectorStore) -> None:
        super().__init__(inner, ops=["upsert"])
        self.tenants: list[str | None] = []

    def _before(self, op: str, tenant: str | None) -> None:
        self.tenants.append(tenant)
        super()._before(op, tenant)


def test_batches_take_the_tenants_in_turn_and_each_tenants_writes_in_order(
    tmp_path: Path,
) -> None:
    clock, sink = FakeClock(), RecordingMetrics()
    box = sqlite_outbox(tmp_path)
    primary = MemoryStore()
    target = _Watched(FaissStore(tmp_path / "t", Metric.COSINE))
    first = [doc("a", "first")]
    flood = [doc("a", f"a{i}") for i in range(1000)] + [doc("a", "a0", 2)]  # a0 twice
    single = [doc("b", "b0")]
    for docs in (first, flood, single):
        primary.upsert(docs[0].tenant, docs[:-1] if docs is flood else docs)
    primary.upsert("a", [flood[-1]])
    applier = Applier(
        box, {"memory": primary, "faiss": target}, static(),
        Breaker(clock, sink.breaker_state), sink, clock, OutboxSampler(sink, clock),
        owner=OWNER, max_batch_items=100, max_backlog_items=2000,
    )  # fmt: skip
    try:
        for docs in (first, flood, single):
            _, items = leased(box, [Change.upsert(d, "faiss") for d in docs], clock.now())
            assert applier.offer(items)
            if docs is first:
                assert target.wait_for_waiting(1)  # the first batch holds the thread
        mark = applier.mark()
        assert applier.has_newer(("a", "a0"), 2) and not applier.has_newer(("b", "b0"), 10**9)
        target.release()
        assert applier.wait_applied(mark, 30) and applier.flush(30)
        # a's 1,001 items go in 11 batches; b's one item in the second batch, not the 12th
        assert target.tenants[:3] == ["a", "a", "b"]
        assert target.count("a") == 1001 and target.count("b") == 1
        assert target.get("a", ["a0"])["a0"].content_hash == flood[-1].content_hash
        assert box.stats().size == 0
    finally:
        target.release()
        applier.close()


def test_the_backlog_is_per_tenant(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingMetrics()
    box = sqlite_outbox(tmp_path)
    target = HangingStore(FaissStore(tmp_path / "t", Metric.COSINE), ops=["upsert"])
    primary = MemoryStore()
    applier = Applier(
        box, {"memory": primary, "faiss": target}, static(),
        Breaker(clock, sink.breaker_state), sink, clock, OutboxSampler(sink, clock),
        owner=OWNER, max_backlog_items=3,
    )  # fmt: skip
    try:
        _, items = leased(box, [Change.upsert(doc("a", f"a{i}"), "faiss") for i in range(3)], 0)
        assert applier.offer(items)
        assert not applier.has_room(1, "a") and applier.has_room(3, "b")
        _, more = leased(box, [Change.upsert(doc("b", f"b{i}"), "faiss") for i in range(3)], 0)
        assert applier.offer(more)
    finally:
        target.release()
        applier.close()

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
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from tests.dualwrite.conftest import doc, sqlite_outbox, static
from tests.metrics_helpers import RecordingMetrics

OWNER = "writer:test"


def leased(box: Outbox, changes: list[Change], now: float) -> tuple[Appended, list[Item]]:
    """Append ``changes`` leased to the applier's owner, as the writer does."""
    appended = box.append(changes, now=now, capacity=100, ttl_s=3600, lease_owner=OWNER)
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

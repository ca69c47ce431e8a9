"""The dual writer: which backend gets what, the breaker, deadlines, the outbox, metrics, logs.

Primary: the memory reference store; target: real FAISS in a temporary directory. Faults are
injected by wrapping the target (`shadowswap.testing.faults`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from shadowswap.clock import FakeClock
from shadowswap.dualwrite.breaker import Breaker, State
from shadowswap.dualwrite.outbox import Change, Outbox
from shadowswap.dualwrite.replay import Replayer
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.errors import StoreUnavailable
from shadowswap.logs import JsonFormatter
from shadowswap.runtime import outbox_figures
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing.faults import FaultyStore, FlappingStore, HangingStore
from shadowswap.values import Document
from tests.dualwrite.conftest import closed_after_test, doc, settings, sqlite_outbox, static
from tests.metrics_helpers import RecordingMetrics


@dataclass
class Rig:
    writer: DualWriter
    primary: VectorStore
    target: VectorStore
    outbox: Outbox
    clock: FakeClock
    sink: RecordingMetrics

    def names(self) -> list[str]:
        return [name for name, _ in self.sink.events]


def rig(
    tmp_path: Path,
    *,
    wrap: type[FlappingStore] | type[HangingStore] | None = None,
    primary: VectorStore | None = None,
    outbox: Outbox | None = None,
    **env: str,
) -> Rig:
    clock, sink = FakeClock(), RecordingMetrics()
    faiss = FaissStore(tmp_path / "target", Metric.COSINE)
    target: VectorStore = wrap(faiss, ops=["upsert", "delete"]) if wrap is not None else faiss
    primary = primary or MemoryStore()
    box = outbox or sqlite_outbox(tmp_path)
    writer = closed_after_test(
        DualWriter(
            primary, target, static(**env), box, Breaker(clock, sink.breaker_state), sink, clock
        )
    )
    sink.read_outbox_from(lambda: outbox_figures(writer, clock))  # as build_runtime does
    return Rig(writer, primary, target, box, clock, sink)


def dropped(r: Rig) -> dict[str, float]:
    """``retrieval_dual_write_outbox_dropped_total`` by reason, as a scrape reads it."""
    name = "retrieval_dual_write_outbox_dropped_total"
    return {reason: r.sink.value(name, reason=reason) for reason in ("full", "ttl")}


def hashes(store: VectorStore, tenant: str) -> dict[str, str]:
    return {d.doc_id: d.content_hash for page in store.scan(tenant) for d in page}


def test_dual_write_off_writes_the_primary_only(tmp_path: Path) -> None:
    r = rig(tmp_path, FF_RETRIEVAL_DUAL_WRITE="OFF")
    result = r.writer.upsert("acme", [doc("acme", "1")])
    assert (result.outcome, result.sync, result.deferred, result.written) == (
        "none",
        "memory",
        None,
        1,
    )
    assert hashes(r.primary, "acme") and not hashes(r.target, "acme")
    assert r.outbox.stats().size == 0


def test_a_healthy_target_gets_every_write_in_the_background(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.writer.upsert("acme", [doc("acme", "1"), doc("acme", "2")], trace_id="t1")
    r.writer.upsert("acme", [doc("acme", "1", 2)])
    result = r.writer.delete("acme", ["2"])
    assert (result.outcome, result.written, result.deferred) == ("deferred", 1, "faiss")
    assert r.writer.flush(30)
    assert (
        hashes(r.primary, "acme")
        == hashes(r.target, "acme")
        == {"1": doc("acme", "1", 2).content_hash}
    )
    assert r.outbox.stats().size == 0
    assert "dual_write_error" not in r.names() and "dual_write_skipped" not in r.names()


def test_tenants_outside_the_allowlist_are_not_dual_written(tmp_path: Path) -> None:
    r = rig(tmp_path, RETRIEVAL_TENANT_ALLOWLIST="pilot")
    assert r.writer.upsert("acme", [doc("acme", "1")]).outcome == "none"
    assert r.writer.upsert("pilot", [doc("pilot", "1")]).outcome == "deferred"
    assert r.writer.flush(30) and r.target.tenants() == ["pilot"]


def test_a_cut_over_tenant_writes_the_target_first_and_the_primary_deferred(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, RETRIEVAL_CUTOVER_TENANTS="acme")
    result = r.writer.upsert("acme", [doc("acme", "1")])
    assert (result.sync, result.deferred, result.outcome) == ("faiss", "memory", "deferred")
    assert r.writer.flush(30) and hashes(r.primary, "acme") == hashes(r.target, "acme")


def test_a_failing_target_never_fails_a_write_and_opens_the_breaker(tmp_path: Path) -> None:
    r = rig(tmp_path, wrap=FlappingStore, RETRIEVAL_DUAL_WRITE_CB_THRESHOLD="3")
    target = r.target
    assert isinstance(target, FlappingStore)
    target.go_down()
    outcomes = []
    for i in range(10):
        outcomes.append(r.writer.upsert("acme", [doc("acme", str(i))]).outcome)
        assert r.writer.flush(30)  # one background attempt per write, for a clear count
    assert outcomes == ["deferred"] * 3 + ["queued"] * 7
    assert target.calls == 3  # the breaker opened at the third failure: no more attempts
    assert r.writer.breaker.state is State.OPEN
    assert r.sink.value("retrieval_dual_write_errors_total") == 3
    assert r.sink.value("retrieval_dual_write_skipped_total", reason="circuit_open") == 7
    assert r.outbox.stats().size == 10
    assert r.sink.of("outbox_size")[-1][0] == 10  # what the writer saw after its last append
    assert r.sink.value("retrieval_dual_write_outbox_size") == 10  # what a scrape reads
    assert hashes(r.primary, "acme").keys() == {str(i) for i in range(10)}


def test_after_the_window_one_trial_closes_the_breaker(tmp_path: Path) -> None:
    r = rig(tmp_path, wrap=FlappingStore, RETRIEVAL_DUAL_WRITE_CB_WINDOW_S="30")
    target = r.target
    assert isinstance(target, FlappingStore)
    target.go_down()
    for i in range(4):
        r.writer.upsert("acme", [doc("acme", str(i))])
        r.writer.flush(30)
    target.come_up()
    r.clock.advance(29)
    assert r.writer.upsert("acme", [doc("acme", "x")]).outcome == "queued"
    r.clock.advance(1)
    assert r.writer.upsert("acme", [doc("acme", "y")]).outcome == "deferred"
    assert r.writer.flush(30) and r.writer.breaker.state is State.CLOSED
    assert "y" in hashes(r.target, "acme")
    assert [a[0] for a in r.sink.of("breaker_state")] == ["closed", "open", "half_open", "closed"]


def test_a_hung_target_never_holds_a_write_and_slowness_counts(tmp_path: Path) -> None:
    r = rig(
        tmp_path,
        wrap=HangingStore,
        RETRIEVAL_DUAL_WRITE_TIMEOUT_MS="50",
        RETRIEVAL_DUAL_WRITE_CB_THRESHOLD="1",
    )
    target = r.target
    assert isinstance(target, HangingStore)
    try:
        outcomes = [r.writer.upsert("acme", [doc("acme", "0")]).outcome]
        assert target.wait_for_waiting(1)  # the applier is stuck in the first batch
        outcomes += [r.writer.upsert("acme", [doc("acme", str(i))]).outcome for i in (1, 2)]
        # every write returned while the target hangs: only the background applier waits
        assert outcomes == ["deferred"] * 3 and target.calls == 1
        r.clock.advance(1)  # the batch hangs for a (fake) second
    finally:
        target.release()
    assert r.writer.flush(30)
    # the first batch landed, but slower than the deadline: that opened the breaker (threshold
    # 1), so the next batch was left to the replay and later writes go there directly
    assert r.writer.breaker.state is State.OPEN
    assert r.writer.upsert("acme", [doc("acme", "3")]).outcome == "queued"
    assert hashes(target.inner, "acme").keys() == {"0"}
    assert r.outbox.stats().size == 3
    assert r.sink.value("retrieval_dual_write_skipped_total", reason="circuit_open") == 3
    assert r.sink.value("retrieval_dual_write_errors_total") == 0  # slow is not failed
    r.writer.close()


class _BusyDocument(FaultyStore):
    """A target during whose every write the caller writes the same document again: the
    source always moves on while the background applier writes."""

    def __init__(self, inner: VectorStore, times: int) -> None:
        super().__init__(inner, ops=["upsert"])
        self.writer: DualWriter | None = None
        self.left = times

    def _before(self, op: str, tenant: str | None) -> None:
        if self.writer is not None and self.left > 0:
            self.left -= 1
            self.writer.upsert("acme", [doc("acme", "hot", 1000 - self.left)])


def test_a_document_updated_during_every_apply_ends_in_step(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.writer.close()
    busy = _BusyDocument(r.target, times=12)
    writer = DualWriter(
        r.primary, busy, static(), r.outbox, Breaker(r.clock, r.sink.breaker_state), r.sink, r.clock
    )
    busy.writer = writer
    writer.upsert("acme", [doc("acme", "hot", 0), doc("acme", "cold")])
    assert writer.flush(30) and busy.left == 0
    # each apply was overtaken by a newer write of the document, which was applied next
    assert hashes(r.target, "acme") == hashes(r.primary, "acme")
    assert hashes(r.target, "acme")["hot"] == doc("acme", "hot", 1000).content_hash
    assert r.outbox.stats().size == 0 and r.sink.value("retrieval_dual_write_errors_total") == 0
    writer.close()


def test_a_backlogged_applier_leaves_new_writes_to_the_replay(tmp_path: Path) -> None:
    r = rig(tmp_path, wrap=HangingStore, RETRIEVAL_DUAL_WRITE_TIMEOUT_MS="60000")
    r.writer.close()
    target = r.target
    assert isinstance(target, HangingStore)
    writer = DualWriter(
        r.primary, target, static(RETRIEVAL_DUAL_WRITE_TIMEOUT_MS="60000"), r.outbox,
        Breaker(r.clock, r.sink.breaker_state), r.sink, r.clock, max_backlog_items=2,
    )  # fmt: skip
    try:
        first = writer.upsert("acme", [doc("acme", "0")]).outcome
        assert target.wait_for_waiting(1)  # the applier holds the first batch
        rest = [writer.upsert("acme", [doc("acme", str(i))]).outcome for i in range(1, 4)]
        assert [first, *rest] == ["deferred", "deferred", "deferred", "queued"]
    finally:
        target.release()
        writer.close()
    assert hashes(target, "acme").keys() == {"0", "1", "2"}


def test_the_replay_takes_the_items_of_a_writer_that_died(tmp_path: Path) -> None:
    r = rig(tmp_path, wrap=HangingStore, RETRIEVAL_DUAL_WRITE_TIMEOUT_MS="60000")
    target = r.target
    assert isinstance(target, HangingStore)
    r.writer.upsert("acme", [doc("acme", "1")])
    assert target.wait_for_waiting(1)  # the writer "dies" here, its item leased to it
    replayer = Replayer(
        r.outbox,
        {"memory": r.primary, "faiss": target.inner}.__getitem__,
        settings(),
        RecordingMetrics(),
        r.clock,
    )
    assert replayer.run().remaining == 1  # leased: left alone
    r.clock.advance(61)  # the lease has expired
    report = replayer.run()
    assert (report.replayed, report.remaining) == (1, 0)
    assert hashes(target.inner, "acme") == hashes(r.primary, "acme")
    target.release()
    r.writer.close()


@pytest.mark.parametrize("breaker_open", [False, True])
def test_a_failing_primary_fails_the_write_and_queues_nothing(
    tmp_path: Path, breaker_open: bool
) -> None:
    primary = FlappingStore(MemoryStore(), ops=["upsert", "delete"])
    r = rig(tmp_path, wrap=FlappingStore, primary=primary)
    target = r.target
    assert isinstance(target, FlappingStore)
    if breaker_open:
        target.go_down()
        for i in range(3):
            r.writer.upsert("acme", [doc("acme", f"before-{i}")])
            r.writer.flush(30)
        assert r.writer.breaker.state is State.OPEN
    before = r.outbox.stats().size
    primary.go_down()
    with pytest.raises(StoreUnavailable):
        r.writer.upsert("acme", [doc("acme", "1")])
    with pytest.raises(StoreUnavailable):
        r.writer.delete("acme", ["before-0"])
    r.writer.close()
    assert r.outbox.stats().size == before
    assert "1" not in hashes(target.inner, "acme")
    assert (
        r.sink.value("retrieval_dual_write_skipped_total", reason="circuit_open") == 0
    )  # failed writes are not counted as skipped


def test_bad_input_for_the_target_is_counted_but_does_not_open_the_breaker(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    r.target.upsert("other", [Document("other", "x", [1.0, 0.0, 0.0])])  # target holds 3-d
    for i in range(5):
        assert r.writer.upsert("acme", [doc("acme", str(i))]).outcome == "deferred"
        assert r.writer.flush(30)
    assert r.writer.breaker.state is State.CLOSED
    assert r.sink.value("retrieval_dual_write_errors_total") == 5


def test_the_outbox_keeps_the_hash_both_stores_hold(tmp_path: Path) -> None:
    r = rig(tmp_path, wrap=FlappingStore)
    r.target.go_down()  # type: ignore[attr-defined]
    raw = Document("acme", "1", [3.0, 4.0], {"k": 1})  # not unit length: stores normalise
    r.writer.upsert("acme", [raw])
    r.writer.flush(30)
    [item] = r.outbox.claim("t", limit=5, after=0, upto=99, now=r.clock.now()).items
    assert item.content_hash == hashes(r.primary, "acme")["1"] != raw.content_hash


def test_a_full_outbox_drops_counts_logs_and_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = rig(  # shares off: one tenant may fill the outbox (test_fairness.py has shares)
        tmp_path, wrap=FlappingStore, RETRIEVAL_DUAL_WRITE_OUTBOX_MAX="3",
        RETRIEVAL_DUAL_WRITE_OUTBOX_TENANT_SHARE="0",
    )  # fmt: skip
    r.target.go_down()  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="shadowswap.dualwrite"):
        results = []
        for i in range(3):
            results.append(r.writer.upsert("acme", [doc("acme", str(i))]))
            r.writer.flush(30)
        last = r.writer.upsert("acme", [doc("acme", "3"), doc("acme", "4")])
    assert [x.outcome for x in results] == ["deferred"] * 3
    assert (last.outcome, last.queued, last.dropped) == ("dropped", 0, 2)
    assert dropped(r) == {"full": 2, "ttl": 0}
    assert {(d.doc_id, d.reason) for d in r.outbox.dropped()} == {("3", "full"), ("4", "full")}
    [record] = [rec for rec in caplog.records if getattr(rec, "reason", None) == "full"]
    assert record.doc_ids == ["3", "4"] and record.tenant == "acme"  # type: ignore[attr-defined]


def test_items_past_the_ttl_are_dropped_counted_and_recorded(tmp_path: Path) -> None:
    r = rig(tmp_path, wrap=FlappingStore, RETRIEVAL_DUAL_WRITE_OUTBOX_TTL_S="100")
    r.target.go_down()  # type: ignore[attr-defined]
    r.writer.upsert("acme", [doc("acme", "old")])
    r.clock.advance(60)
    r.writer.upsert("acme", [doc("acme", "newer")])
    r.writer.flush(30)
    r.clock.advance(40.5)
    stats = r.writer.outbox_stats()
    assert stats.size == 1 and stats.dropped_ttl == 1
    assert dropped(r) == {"full": 0, "ttl": 1}
    assert r.sink.of("outbox_size")[-1] == (1, 40.5)
    assert r.sink.value("retrieval_dual_write_outbox_size") == 1
    assert r.sink.value("retrieval_dual_write_outbox_oldest_age_seconds") == 40.5
    assert [(d.doc_id, d.reason) for d in r.outbox.dropped()] == [("old", "ttl")]


def test_size_and_drops_follow_changes_made_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    r = rig(tmp_path, wrap=FlappingStore, outbox=SqliteOutbox(path))
    r.target.go_down()  # type: ignore[attr-defined]
    r.writer.upsert("acme", [doc("acme", "1"), doc("acme", "2")])
    r.writer.flush(30)
    other = SqliteOutbox(path)  # a replay in another process
    claim = other.claim("cron", limit=10, after=0, upto=99, now=r.clock.now())
    other.ack("cron", [i.seq for i in claim.items])
    other.append([Change.delete("acme", "9", "faiss")], now=r.clock.now(), capacity=0, ttl_s=9)
    other.close()
    assert dropped(r) == {"full": 1, "ttl": 0}  # read at scrape time, from the stored totals
    assert r.sink.of("outbox_size")[-1] == (0, None)
    assert r.sink.value("retrieval_dual_write_outbox_size") == 0


def test_an_outbox_that_fails_never_fails_the_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = SqliteOutbox(tmp_path / "o.sqlite3")
    r = rig(tmp_path, wrap=FlappingStore, outbox=box)
    r.target.go_down()  # type: ignore[attr-defined]
    box.close()
    with caplog.at_level(logging.ERROR, logger="shadowswap.dualwrite"):
        result = r.writer.upsert("acme", [doc("acme", "1")])
        r.writer.close()  # waits for the direct attempt at the (down) target
    assert result.outcome == "unrecorded" and result.written == 1
    records = [rec for rec in caplog.records if rec.levelno == logging.ERROR]
    assert [rec.doc_ids for rec in records] == [["1"], ["1"]]  # type: ignore[attr-defined]
    assert (
        r.sink.value("retrieval_dual_write_errors_total") == 2
    )  # the failed append, the failed direct write


def test_logs_hold_ids_and_counts_but_never_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = rig(tmp_path, wrap=FlappingStore, RETRIEVAL_DUAL_WRITE_OUTBOX_MAX="2")
    r.target.go_down()  # type: ignore[attr-defined]
    secret = Document(
        "acme", "doc-1", np.full(8, 0.123456, dtype=np.float32), {"ssn": "SECRET-123"}, "TOPSECRET"
    )
    with caplog.at_level(logging.DEBUG, logger="shadowswap"):
        for i in range(4):
            r.writer.upsert("acme", [secret.with_vector(secret.vector * (i + 1))], trace_id="tr")
            r.writer.flush(30)
    formatter = JsonFormatter()
    lines = [formatter.format(rec) for rec in caplog.records]
    assert lines and any("doc-1" in line for line in lines)
    for line in lines:
        json.loads(line)
        assert "SECRET-123" not in line and "TOPSECRET" not in line and "0.123456" not in line

"""Replay: one test per rule of `shadowswap.dualwrite.replay`.

Primary: the memory reference store; target: real FAISS in a temporary directory. Changes
reach the outbox the way production puts them there: through a dual writer whose target is
down (a fault wrapper around the real store)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from shadowswap.clock import FakeClock, SystemClock
from shadowswap.dualwrite.breaker import Breaker
from shadowswap.dualwrite.outbox import Change, Outbox
from shadowswap.dualwrite.replay import Replayer
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.errors import ConfigError
from shadowswap.settings.config import Settings
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing.faults import FailingStore, FlappingStore, SlowStore
from shadowswap.values import Document, WriteReport
from tests.dualwrite.conftest import closed_after_test, doc, settings, sqlite_outbox, static
from tests.metrics_helpers import RecordingMetrics


@dataclass
class World:
    primary: MemoryStore
    target: FaissStore
    down: FlappingStore  # the target as the writer sees it
    outbox: Outbox
    writer: DualWriter
    clock: FakeClock
    settings: Settings

    def stores(self, kind: str) -> VectorStore:
        return {"memory": self.primary, "faiss": self.target}[kind]

    def replayer(self, **kw: object) -> Replayer:
        return Replayer(
            self.outbox, self.stores, self.settings, RecordingMetrics(), self.clock, **kw
        )  # type: ignore[arg-type]

    def upsert(self, tenant: str, docs: list[Document]) -> str:
        outcome = self.writer.upsert(tenant, docs).outcome
        assert self.writer.flush(30)  # the background apply is done (or failed)
        return outcome

    def delete(self, tenant: str, ids: list[str]) -> str:
        outcome = self.writer.delete(tenant, ids).outcome
        assert self.writer.flush(30)
        return outcome

    def target_goes_down(self) -> None:
        self.down.go_down()

    def target_comes_back(self) -> None:
        """The target is up and the breaker closed again (its window has passed)."""
        self.down.come_up()
        self.clock.advance(self.settings.cb_window_s)


def world(tmp_path: Path, outbox: Outbox | None = None, **env: str) -> World:
    clock = FakeClock()
    primary, target = MemoryStore(), FaissStore(tmp_path / "faiss", Metric.COSINE)
    down = FlappingStore(target, ops=["upsert", "delete"])
    box = outbox or sqlite_outbox(tmp_path)
    sink = RecordingMetrics()
    writer = closed_after_test(
        DualWriter(
            primary, down, static(**env), box, Breaker(clock, sink.breaker_state), sink, clock
        )
    )
    return World(primary, target, down, box, writer, clock, settings(**env))


def hashes(store: VectorStore, tenant: str) -> dict[str, str]:
    return {d.doc_id: d.content_hash for page in store.scan(tenant) for d in page}


def in_step(w: World, *tenants: str) -> bool:
    return all(hashes(w.primary, t) == hashes(w.target, t) for t in tenants)


def test_only_the_newest_change_of_a_document_is_applied(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.target_goes_down()
    for version in range(3):
        w.upsert("acme", [doc("acme", "x", version)])
    w.delete("acme", ["y"])
    w.upsert("acme", [doc("acme", "y", 1)])  # delete then upsert: ends upserted
    w.upsert("acme", [doc("acme", "z")])
    w.delete("acme", ["z"])  # upsert then delete: ends deleted
    report = w.replayer().run()
    assert in_step(w, "acme") and set(hashes(w.target, "acme")) == {"x", "y"}
    assert hashes(w.target, "acme")["x"] == doc("acme", "x", 2).content_hash
    # x and y applied; z's delete already held by the target; 4 older items superseded
    assert (report.replayed, report.skipped_unchanged, report.superseded) == (2, 1, 4)
    assert (report.failed, report.remaining, report.skipped_superseded) == (0, 0, 5)
    assert report.ok


def test_a_stale_upsert_never_overwrites_a_newer_inline_write(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.target_goes_down()
    w.upsert("acme", [doc("acme", "x", 1)])
    w.target_comes_back()
    assert w.upsert("acme", [doc("acme", "x", 2)]) == "deferred"
    assert hashes(w.target, "acme") == {"x": doc("acme", "x", 2).content_hash}
    assert w.replayer().run().in_flight == 1  # it could still be in flight: left alone
    w.clock.advance(60)
    report = w.replayer().run()
    assert hashes(w.target, "acme") == {"x": doc("acme", "x", 2).content_hash}
    assert (report.replayed, report.superseded, report.remaining) == (0, 1, 0)


def test_a_stale_delete_never_removes_a_newer_inline_write(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.upsert("acme", [doc("acme", "x", 1)])
    w.target_goes_down()
    w.delete("acme", ["x"])
    w.target_comes_back()
    w.upsert("acme", [doc("acme", "x", 2)])
    w.clock.advance(60)
    report = w.replayer().run()
    assert hashes(w.target, "acme") == {"x": doc("acme", "x", 2).content_hash}
    assert report.superseded == 1


def test_a_change_the_target_already_holds_is_skipped(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.target_goes_down()
    w.upsert("acme", [doc("acme", "x")])
    w.target.upsert("acme", [doc("acme", "x")])  # an abandoned inline write that landed late
    report = w.replayer().run()
    assert (report.replayed, report.skipped_unchanged, report.skipped_superseded) == (0, 1, 1)


def test_a_change_the_source_does_not_hold_yet_waits_for_the_grace(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.target.upsert("acme", [doc("acme", "x", 1)])  # the target holds an older version
    w.primary.upsert("acme", [doc("acme", "x", 1)])
    # an item appended in parallel with a synchronous write that has not committed (yet)
    w.outbox.append(
        [Change.upsert(doc("acme", "x", 2), "faiss")], now=w.clock.now(), capacity=9, ttl_s=999
    )
    early = w.replayer(grace_s=60).run()
    assert (early.in_flight, early.remaining, early.failed, early.ok) == (1, 1, 0, True)
    assert hashes(w.target, "acme")["x"] == doc("acme", "x", 1).content_hash
    # the synchronous write never committed: after the grace the source's state wins
    w.clock.advance(61)
    late = w.replayer(grace_s=60).run()
    assert (late.superseded, late.remaining) == (1, 0)
    assert in_step(w, "acme")


def test_failed_items_stay_with_their_attempts_and_last_error(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.target_goes_down()
    for i in range(5):
        w.upsert("acme", [doc("acme", str(i))])
    broken = FailingStore(w.target, ops=["get", "upsert", "delete"])

    def stores(kind: str) -> VectorStore:
        return {"memory": w.primary, "faiss": broken}[kind]

    def attempts() -> list[int]:
        items = w.outbox.claim("inspect", limit=10, after=0, upto=99, now=w.clock.now()).items
        w.outbox.release("inspect", [i.seq for i in items])
        assert all(i.last_error for i in items if i.attempts)
        return [i.attempts for i in items]

    before = attempts()  # the writer's own background attempts failed for the first three
    assert before == [1, 1, 1, 0, 0]
    failing = Replayer(w.outbox, stores, w.settings, RecordingMetrics(), w.clock, batch=2)
    report = failing.run()
    assert (report.failed, report.remaining, report.ok) == (2, 5, False)
    assert report.stopped is not None and "StoreUnavailable" in report.stopped
    assert broken.calls == 1  # an unreachable backend stops the run at once
    assert attempts() == [2, 2, 1, 0, 0]
    again = w.replayer().run()
    assert (again.replayed, again.remaining) == (5, 0) and in_step(w, "acme")


def test_max_items_and_sleep_ms_bound_a_run(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.target_goes_down()
    for i in range(5):
        w.upsert("acme", [doc("acme", str(i))])
    first = w.replayer().run(max_items=2)
    assert (first.replayed, first.remaining) == (2, 3)
    start = w.clock.monotonic()
    second = w.replayer().run(sleep_ms=250)
    assert (second.replayed, second.remaining) == (3, 0)
    assert w.clock.monotonic() - start == pytest.approx(0.75)  # fake time: 250 ms per document


def test_items_appended_during_a_run_wait_for_the_next_one(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.target_goes_down()
    w.upsert("acme", [doc("acme", "1")])
    seen: list[int] = []

    def progress(_report: object) -> None:
        if not seen:
            w.upsert("acme", [doc("acme", "late")])
        seen.append(1)

    report = w.replayer(batch=1).run(progress=progress)
    assert (report.replayed, report.remaining) == (1, 1)


def test_two_replays_at_once_neither_double_apply_nor_lose_an_item(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    w = world(tmp_path, outbox=SqliteOutbox(path))
    w.target_goes_down()
    for i in range(120):
        w.upsert("acme", [doc("acme", f"d{i % 70}", i)])
    w.delete("acme", [f"d{i}" for i in range(0, 70, 7)])
    total = w.outbox.stats().size
    slow = SlowStore(w.target, 0.002, ops=["upsert", "delete"], clock=SystemClock())

    def stores(kind: str) -> VectorStore:
        return {"memory": w.primary, "faiss": slow}[kind]

    reports = []
    barrier = threading.Barrier(2)

    def cron(owner: str) -> None:
        box = SqliteOutbox(path)  # each cron process has its own connection
        barrier.wait()
        reports.append(
            Replayer(
                box, stores, w.settings, RecordingMetrics(), w.clock, owner=owner, batch=4
            ).run()
        )
        box.close()

    threads = [threading.Thread(target=cron, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    a, b = reports
    assert a.replayed > 0 and b.replayed > 0  # they really ran side by side
    handled = sum(r.replayed + r.skipped_superseded for r in reports)
    assert handled == total and a.failed == b.failed == 0
    assert a.replayed + b.replayed == 70 - 10  # one apply per document, deletes skipped
    assert w.outbox.stats().size == 0 and in_step(w, "acme")


def test_changes_for_both_directions_of_a_document_keep_the_newest(tmp_path: Path) -> None:
    # x was written to the primary while the target was down (outbox -> target); then the
    # tenant was cut over and x was written to the target while the primary was down
    # (outbox -> primary). The newest item, whatever its direction, decides.
    w = world(tmp_path)
    w.primary.upsert("acme", [doc("acme", "x", 1)])
    w.outbox.append(
        [Change.upsert(doc("acme", "x", 1), "faiss")], now=w.clock.now(), capacity=9, ttl_s=999
    )
    w.target.upsert("acme", [doc("acme", "x", 2)])
    w.outbox.append(
        [Change.upsert(doc("acme", "x", 2), "memory")], now=w.clock.now(), capacity=9, ttl_s=999
    )
    report = w.replayer().run()
    assert (report.replayed, report.superseded) == (1, 1)
    assert in_step(w, "acme") and hashes(w.primary, "acme")["x"] == doc("acme", "x", 2).content_hash


class _RacingTarget(FaissStore):
    """A target whose first replayed upsert coincides with a new write of the same document:
    the source moves on while the replay writes, and the inline copy is overwritten."""

    def __init__(self, path: Path, primary: MemoryStore, newer: Document) -> None:
        super().__init__(path, Metric.COSINE)
        self.primary, self.newer, self.raced = primary, newer, False

    def upsert(self, tenant: str, documents: Sequence[Document]) -> WriteReport:
        if not self.raced:
            self.raced = True
            self.primary.upsert(tenant, [self.newer])
            super().upsert(tenant, [self.newer])  # the concurrent writer's inline write
        return super().upsert(tenant, documents)  # ... overwritten by the replay


def test_a_write_racing_the_replay_is_restored_from_the_source(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.target_goes_down()
    w.upsert("acme", [doc("acme", "x", 1)])
    racing = _RacingTarget(tmp_path / "racing", w.primary, doc("acme", "x", 2))

    def stores(kind: str) -> VectorStore:
        return {"memory": w.primary, "faiss": racing}[kind]

    report = Replayer(w.outbox, stores, w.settings, RecordingMetrics(), w.clock).run()
    assert racing.raced and report.ok and report.superseded == 1
    assert (
        hashes(racing, "acme")
        == hashes(w.primary, "acme")
        == {"x": doc("acme", "x", 2).content_hash}
    )


def test_a_dry_run_counts_per_tenant_and_operation_and_shows_no_content(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.upsert("beta", [doc("beta", "9")])
    w.target_goes_down()
    w.upsert("acme", [doc("acme", "1"), doc("acme", "2")])
    w.clock.advance(12)
    w.upsert("acme", [doc("acme", "1", 2)])
    w.delete("beta", ["9"])
    w.upsert("acme", [doc("acme", "3")])  # the breaker is open: left for the replay
    dry = w.replayer().dry_run()
    out = dry.as_dict()
    assert out["tenants"] == {  # the writer's three background attempts failed
        "acme": {"upsert": {"items": 4, "documents": 3, "failing": 3}},
        "beta": {"delete": {"items": 1, "documents": 1, "failing": 1}},
    }
    assert (out["would_replay"], out["remaining"], out["oldest_age_s"]) == (5, 5, 12.0)
    assert (out["failing"], w.replayer().dry_run(max_items=2).as_dict()["would_replay"]) == (4, 2)
    text = json.dumps(out)
    assert "v0 1" not in text and "lang" not in text  # no document text, no metadata
    assert w.outbox.stats().size == 5  # nothing changed


def test_changes_for_an_unconfigured_backend_are_a_configuration_error(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.outbox.append(
        [Change.delete("acme", "x", "chroma")], now=w.clock.now(), capacity=9, ttl_s=999
    )
    with pytest.raises(ConfigError, match="'chroma'"):
        w.replayer().run()
    item = w.outbox.claim("x", limit=9, after=0, upto=99, now=w.clock.now()).items[0]
    assert item.attempts == 0  # released, not failed

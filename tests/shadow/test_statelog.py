"""State records: the serving and write side of a process in the observation log, so the gate
decides from the log alone (issue 15, "one source is enough")."""

from __future__ import annotations

import threading
from pathlib import Path

from shadowswap.clock import FakeClock
from shadowswap.gate.evidence import evidence_from_observations, evidence_from_states
from shadowswap.metrics import Metrics, OutboxFigures
from shadowswap.shadow.observations import JsonlObservationLog, StateRecord, read_records
from shadowswap.shadow.statelog import StateRecorder

T0 = 1_760_000_000.0


def test_the_recorder_counts_events_and_writes_start_breaker_and_close(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    metrics = Metrics.null()
    log = JsonlObservationLog(tmp_path, retention_days=90, clock=clock)
    figures = OutboxFigures(3, 12.5, {"full": 1, "ttl": 2})
    recorder = StateRecorder(
        log, metrics, clock, read_outbox=lambda: figures, interval_s=3600, process="p1"
    )
    wrote = threading.Event()
    original = log.write

    def spy(ts: float, document: object) -> None:
        original(ts, document)  # type: ignore[arg-type]
        wrote.set()

    log.write = spy  # type: ignore[method-assign]
    for outcome in ("ok", "ok", "error", "timeout"):
        metrics.read("faiss", "primary", outcome, 0.001)
    metrics.read("chroma", "shadow", "error", 0.001)  # a shadow read is not a serving read
    metrics.fallback("faiss", "chroma")
    metrics.shadow_dropped("queue_full")
    metrics.shadow_dropped("timeout")  # timeouts are in the comparisons' records
    metrics.dual_write_error()
    metrics.dual_write_skipped("circuit_open")
    clock.advance(5)
    metrics.breaker_state("open")  # written promptly, not at the next tick (an hour away)
    assert wrote.wait(5)
    metrics.breaker_state("open")  # no change: no record
    clock.advance(5)
    recorder.close()
    log.close()
    records = list(read_records(tmp_path))
    assert [r.reason for r in records] == ["start", "breaker", "close"]  # type: ignore[union-attr]
    start, breaker, last = records
    assert isinstance(last, StateRecord) and isinstance(start, StateRecord)
    assert start.reads == 0 and start.breaker == "closed" and start.ts == T0
    assert (last.reads, last.read_errors, last.fallbacks) == (4, 2, 1)
    assert (last.shadow_queue_full, last.dual_write_errors, last.dual_write_skipped) == (1, 1, 1)
    assert last.breaker == "open" and breaker.ts == T0 + 5 and last.ts == T0 + 10  # type: ignore[union-attr]
    assert (last.outbox_size, last.outbox_oldest_age_s, last.outbox_dropped) == (3, 12.5, 3)
    assert last.process == "p1" and last.started == T0


def state(process: str, ts: float, started: float, **values: object) -> StateRecord:
    return StateRecord(ts=ts, process=process, started=started, reason="tick", **values)  # type: ignore[arg-type]


def test_a_window_takes_each_process_increase_since_its_last_record_before() -> None:
    records = [
        # p1 started long before the window; its totals at the window's start are 100 reads
        state("p1", T0 - 10, T0 - 1000, reads=100, read_errors=1, outbox_size=5, outbox_dropped=2),
        state(
            "p1",
            T0 + 50,
            T0 - 1000,
            reads=160,
            read_errors=1,
            dual_write_skipped=2,
            outbox_size=0,
            outbox_dropped=2,
        ),
        # p2 started inside the window: from zero
        state(
            "p2",
            T0 + 20,
            T0 + 15,
            reads=30,
            read_errors=2,
            shadow_queue_full=4,
            breaker="open",
            outbox_size=1,
            outbox_dropped=3,
        ),
        # after the window: not counted
        state("p1", T0 + 500, T0 - 1000, reads=999, outbox_size=7, outbox_dropped=9),
    ]
    ev = evidence_from_states(records, since=T0, until=T0 + 100)
    assert ev.reads == 60 + 30 and ev.read_errors == 0 + 2
    assert ev.dual_write_skipped == 2 and ev.dual_write_errors == 0
    assert ev.drops == {"queue_full": 4}
    assert ev.breaker_open is True  # p2's last record in the window
    assert ev.outbox_size == 0  # the latest record in the window (p1 at T0 + 50)
    assert ev.outbox_dropped == 0  # 2 before the window, 2 at its end
    nothing = evidence_from_states(records, since=T0 + 1000, until=T0 + 2000)
    assert nothing.reads is None and nothing.breaker_open is None


def test_a_process_that_started_before_without_an_earlier_record_counts_from_its_first() -> None:
    records = [
        state("p1", T0 + 5, T0 - 1000, reads=100),
        state("p1", T0 + 15, T0 - 1000, reads=130),
    ]
    assert evidence_from_states(records, since=T0, until=T0 + 100).reads == 30
    assert evidence_from_states(records).reads == 130  # the whole log: from zero


def test_the_log_alone_gives_every_state_criterion(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    metrics = Metrics.null()
    log = JsonlObservationLog(tmp_path, retention_days=90, clock=clock)
    recorder = StateRecorder(
        log, metrics, clock, read_outbox=lambda: OutboxFigures(0, None, {"full": 0, "ttl": 0}),
        interval_s=3600,
    )  # fmt: skip
    for _ in range(7):
        metrics.read("faiss", "primary", "ok", 0.001)
    clock.advance(1)
    recorder.close()
    log.close()
    ev = evidence_from_observations(tmp_path, since=T0 - 1, until=T0 + 10)
    assert ev.reads == 7 and ev.read_errors == 0
    assert ev.dual_write_errors == 0 and ev.dual_write_skipped == 0
    assert ev.breaker_open is False and ev.outbox_size == 0 and ev.outbox_dropped == 0
    assert ev.drops == {"timeout": 0, "queue_full": 0} and ev.dropped == 0

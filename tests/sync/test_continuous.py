"""``reconcile --every``: duration parsing, the schedule, metrics, failures, stopping."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from shadowswap.clock import FakeClock
from shadowswap.errors import InvalidInput, StoreUnavailable
from shadowswap.metrics import Metrics
from shadowswap.stores.memory import MemoryStore
from shadowswap.sync.continuous import parse_duration, run_every
from shadowswap.sync.reconcile import Reconcile, ReconcileReport
from tests.metrics_helpers import RecordingMetrics
from tests.sync.conftest import corpus


def scraped_drift(metrics: RecordingMetrics) -> tuple[float, ...] | None:
    """``retrieval_reconcile_drift`` (missing, extra, stale) as a scrape reads it."""
    kinds = [metrics.registry.get_sample_value("retrieval_reconcile_drift", {**metrics.base,
             "kind": kind}) for kind in ("missing", "extra", "stale")]  # fmt: skip
    return None if kinds[0] is None else tuple(k or 0.0 for k in kinds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("45", 45),
     (" 10M ", 600), ("1.5m", 90)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "0s", "0.5s", "-5m", "m", "5m 3s"])
def test_bad_durations_are_refused_with_examples(text: str) -> None:
    with pytest.raises(InvalidInput, match="such as 30s, 10m"):
        parse_duration(text)


class StopAfterRuns:
    """Stops the loop once ``runs`` reconciles have happened (counted by the caller)."""

    def __init__(self) -> None:
        self.stopped = False

    def is_set(self) -> bool:
        return self.stopped


def test_the_loop_runs_on_schedule_and_exports_totals() -> None:
    clock = FakeClock(start=0.0)
    stop = StopAfterRuns()
    source, replica = MemoryStore(), MemoryStore()
    source.upsert("a", corpus("a", 7))
    replica.upsert("b", corpus("b", 2))
    starts: list[float] = []

    def once() -> ReconcileReport:
        starts.append(clock.monotonic())
        clock.advance(25.0)  # each run takes 25 s
        if len(starts) == 3:
            replica.upsert("a", corpus("a", 7))
            stop.stopped = True
        return Reconcile(source, replica, clock=clock).run()

    sink, drifts = RecordingMetrics(), []
    summary = run_every(
        60.0, once, clock=clock, stop=stop, metrics=sink,
        on_report=lambda _r: drifts.append(scraped_drift(sink)),
    )  # fmt: skip
    assert starts == [0.0, 60.0, 120.0]  # aligned on the first start, not pushed back
    assert summary.runs == 3 and summary.failed_runs == 0
    assert drifts == [(7, 2, 0), (7, 2, 0), (0, 2, 0)]


def test_a_run_longer_than_the_interval_skips_to_the_next_start() -> None:
    clock = FakeClock(start=0.0)
    starts: list[float] = []

    def once() -> ReconcileReport:
        starts.append(clock.monotonic())
        clock.advance(150.0)
        return Reconcile(MemoryStore(), MemoryStore(), clock=clock).run()

    run_every(60.0, once, clock=clock, stop=StopAfterRuns(), metrics=RecordingMetrics(), max_runs=3)
    assert starts == [0.0, 180.0, 360.0]


def test_a_failing_run_is_logged_and_the_loop_goes_on() -> None:
    clock = FakeClock(start=0.0)
    calls = {"n": 0}

    def once() -> ReconcileReport:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreUnavailable("chroma", "scan", "down")
        return Reconcile(MemoryStore(), MemoryStore(), clock=clock).run()

    sink = RecordingMetrics()
    assert scraped_drift(sink) is None  # no run yet: no series
    summary = run_every(10.0, once, clock=clock, stop=StopAfterRuns(), metrics=sink, max_runs=1)
    assert (summary.runs, summary.failed_runs) == (1, 1)
    assert scraped_drift(sink) is None  # the failed run exported nothing
    summary = run_every(10.0, once, clock=clock, stop=StopAfterRuns(), metrics=sink, max_runs=1)
    assert (summary.runs, summary.failed_runs) == (1, 0)
    assert scraped_drift(sink) == (0, 0, 0)


def test_a_stop_during_the_wait_ends_it_within_a_slice() -> None:
    clock = FakeClock(start=0.0)

    class StopAt:
        def is_set(self) -> bool:
            return clock.monotonic() >= 5.0

    summary = run_every(
        600.0,
        lambda: Reconcile(MemoryStore(), MemoryStore(), clock=clock).run(),
        clock=clock,
        stop=StopAt(),
        metrics=RecordingMetrics(),
    )
    assert summary.runs == 1 and clock.monotonic() == 5.0


def test_the_prometheus_gauge_has_one_series_per_kind_not_per_tenant() -> None:
    registry = CollectorRegistry()
    sink = Metrics(
        registry, env="local", shadow_version="dev", sample="0.25", app_version="0",
        primary="faiss", target="chroma",
    )  # fmt: skip
    source = MemoryStore()
    for t in ("t1", "t2", "t3"):
        source.upsert(t, corpus(t, 4))
    clock = FakeClock()
    run_every(
        1.0, lambda: Reconcile(source, MemoryStore(), clock=clock).run(), clock=clock,
        stop=StopAfterRuns(), metrics=sink, max_runs=1,
    )  # fmt: skip
    labels = {"env": "local", "shadow_version": "dev"}
    assert (
        registry.get_sample_value("retrieval_reconcile_drift", {**labels, "kind": "missing"}) == 12
    )
    series = [
        s for m in registry.collect() if m.name == "retrieval_reconcile_drift" for s in m.samples
    ]
    assert len(series) == 3


def test_with_repair_the_metrics_show_what_was_found_and_the_result_what_is_left() -> None:
    clock = FakeClock()
    source, replica = MemoryStore(), MemoryStore()
    source.upsert("a", corpus("a", 5))
    reports: list[ReconcileReport] = []
    sink, drifts = RecordingMetrics(), []

    def seen(report: ReconcileReport) -> None:
        reports.append(report)
        drifts.append(scraped_drift(sink))

    run_every(
        60.0, lambda: Reconcile(source, replica, repair=True, clock=clock).run(), clock=clock,
        stop=StopAfterRuns(), metrics=sink, on_report=seen, max_runs=2,
    )  # fmt: skip
    assert drifts == [(5, 0, 0), (0, 0, 0)]  # the first run found 5 (and fixed them)
    assert [r.drift for r in reports] == [0, 0] and reports[0].found.missing == 5

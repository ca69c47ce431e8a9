"""Continuous reconcile (``shadowswap reconcile --every 10m``), for deployments without cron.

The loop runs a reconcile, records it (``reconcile_last.json``), keeps its drift totals for
the metrics (read at scrape time, `Metrics.read_drift_from`), then waits for the next start.
Starts are aligned on the first one (``t0 + k * interval``), so a run that takes a while does
not push every later run back; a run longer than the interval skips the starts it overlapped
instead of running back to back. Totals are exported over all tenants
(``retrieval_reconcile_drift{kind}``): one series per tenant would grow without bound with
the tenants.

A failed run (a store down) is logged and the loop goes on: the next run reports again.
A stop request (SIGTERM, Ctrl-C) ends a wait at once and a run after its current page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from shadowswap.clock import Clock
from shadowswap.durations import interval_seconds
from shadowswap.errors import InvalidInput, ShadowswapError
from shadowswap.metrics import Drift, Metrics
from shadowswap.sync.pacing import StopSignal, pause
from shadowswap.sync.reconcile import ReconcileReport

log = logging.getLogger("shadowswap.sync.continuous")

MIN_INTERVAL_S = 1.0


def parse_duration(text: str, field: str = "--every") -> float:
    """Seconds in ``30s``, ``10m``, ``1h``, ``1h30m``, ``2d`` or a bare number of seconds."""
    seconds = interval_seconds(text)
    if seconds is None or seconds < MIN_INTERVAL_S:
        raise InvalidInput(
            field,
            f"{text!r} is not a duration; use a number with a unit, such as 30s, 10m, 1h or "
            f"1h30m (at least {MIN_INTERVAL_S:g}s)",
        )
    return seconds


@dataclass(frozen=True)
class LoopSummary:
    """What a continuous loop did before it stopped."""

    runs: int
    failed_runs: int
    last: ReconcileReport | None


def run_every(
    interval_s: float,
    once: Callable[[], ReconcileReport],
    *,
    clock: Clock,
    stop: StopSignal,
    metrics: Metrics,
    on_report: Callable[[ReconcileReport], None] = lambda _r: None,
    max_runs: int | None = None,
) -> LoopSummary:
    """Run ``once`` every ``interval_s`` seconds until ``stop`` is set (or ``max_runs``)."""
    first = clock.monotonic()
    runs = failed = 0
    last: ReconcileReport | None = None
    drift: Drift | None = None  # what the last complete run found, for the exposition
    metrics.read_drift_from(lambda: drift)
    while not stop.is_set():
        try:
            report = once()
        except ShadowswapError as exc:
            failed += 1
            log.error("reconcile run failed; next run as scheduled", extra={"error": str(exc)})
        else:
            if report.complete:
                found = report.found  # what dual write lost since the last run
                drift = Drift(found.missing, found.extra, found.stale)
                last = report
            on_report(report)
        runs += 1
        if max_runs is not None and runs >= max_runs:
            break
        now = clock.monotonic()
        next_start = first + interval_s * (int((now - first) // interval_s) + 1)
        if not pause(clock, next_start - now, stop):
            break
    return LoopSummary(runs, failed, last)

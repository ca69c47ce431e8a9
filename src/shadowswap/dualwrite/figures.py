"""The outbox's size and oldest age as the dual writer just saw them, told to the metrics'
listeners (the rehearsal's timeline plots them).

The exposition does not depend on these samples: ``/metrics`` reads the outbox's stored
figures (size, age, drops by reason, also those made by another process) at scrape time
(`shadowswap.metrics.ScrapeTimeCollector`, fed by `shadowswap.runtime.outbox_figures`). One
object, shared by the writer (after each append) and its applier (after each batch).
"""

from __future__ import annotations

import logging

from shadowswap.clock import Clock
from shadowswap.dualwrite.logfields import error_fields
from shadowswap.dualwrite.outbox import Outbox, OutboxStats
from shadowswap.metrics import Metrics

log = logging.getLogger("shadowswap.dualwrite.writer")  # the writer's lines, as before


class OutboxSampler:
    """Tells `Metrics` listeners the outbox's size and oldest age (see the module docstring)."""

    def __init__(self, metrics: Metrics, clock: Clock) -> None:
        self._metrics = metrics
        self._clock = clock

    def report(self, stats: OutboxStats) -> None:
        """Size and age as stored."""
        self._metrics.outbox_sampled(stats.size, stats.oldest_age_s(self._clock.now()))

    def report_quietly(self, outbox: Outbox) -> None:
        """`report` the stored state; a failure to read it is logged, never raised."""
        try:
            self.report(outbox.stats())
        except Exception as exc:  # noqa: BLE001 - a metrics sample must never raise
            log.warning("outbox metrics refresh failed", extra=error_fields(exc))

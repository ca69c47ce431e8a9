"""The outbox's figures as the dual writer reports them: size and oldest age as stored, drops
as the increase of the stored totals (so drops made by another process, a replay expiring
items, count too).

One object, shared by the writer (after each append, and on demand for ``/metrics``) and its
applier (after each batch), because the drop totals seen last are one piece of state: held
apart, each would report the other's drops again.
"""

from __future__ import annotations

import logging
import threading

from shadowswap.clock import Clock
from shadowswap.dualwrite.logfields import error_fields
from shadowswap.dualwrite.outbox import Outbox, OutboxStats
from shadowswap.metrics import MetricsSink

log = logging.getLogger("shadowswap.dualwrite.writer")  # the writer's lines, as before


class OutboxFigures:
    """Reports `OutboxStats` to a `MetricsSink` (see the module docstring)."""

    def __init__(self, sink: MetricsSink, clock: Clock) -> None:
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._drops_seen: OutboxStats | None = None

    def report(self, stats: OutboxStats) -> None:
        """Size and age as stored; drops as the increase of the stored totals."""
        self._sink.outbox_size(stats.size, stats.oldest_age_s(self._clock.now()))
        with self._lock:
            seen, self._drops_seen = self._drops_seen, stats
        if seen is None:
            return
        for reason in ("full", "ttl"):
            delta = stats.dropped(reason) - seen.dropped(reason)
            if delta > 0:
                self._sink.outbox_dropped(reason, delta)

    def report_quietly(self, outbox: Outbox) -> None:
        """`report` the stored state; a failure to read it is logged, never raised."""
        try:
            self.report(outbox.stats())
        except Exception as exc:  # noqa: BLE001 - a metrics refresh must never raise
            log.warning("outbox metrics refresh failed", extra=error_fields(exc))

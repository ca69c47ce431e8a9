"""Step 0 of a rollback: replay the outbox before the switch, so the legacy store holds every
acknowledged write before it takes them all alone.

Why before, not after: until the env file changes, the backend that received a write
synchronously is still the one the replay copies from, and nothing writes the legacy store
directly; so the replay rules (`shadowswap.dualwrite.replay`) bring it every change it
missed. After the switch the legacy store takes writes directly and dual write is off: an
older change replayed then could overwrite a newer one, and a change never replayed is an
acknowledged write the legacy store lacks (docs/dual-write.md). CONTRACT §1 promises that "a
rollback at any moment loses nothing"; this step is what makes it hold for changes that were
waiting in the outbox (breaker open, target slow) when the rollback started.

The step never blocks the rollback. A replay that fails (the legacy store unreachable) is
reported and the run ends as a failure; an outbox that cannot be read from where the rollback
runs is reported as a warning (`shadowswap.rollout.rollback`); either way traffic is moved.
`Drain` is the boundary, so tests inject their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from shadowswap.clock import SystemClock
from shadowswap.dualwrite.outbox_url import existing_outbox, open_outbox
from shadowswap.dualwrite.replay import OpenStores, Replayer, ReplayReport
from shadowswap.errors import ShadowswapError
from shadowswap.metrics import Metrics
from shadowswap.settings.config import Settings


class DrainFailed(ShadowswapError):
    """The replay ran but left failed items, or stopped on an unreachable backend."""

    def __init__(self, summary: str) -> None:
        super().__init__(f"the outbox replay did not finish: {summary}")
        self.summary = summary


class Drain(Protocol):
    """Replays what the outbox holds before the switch."""

    def pending(self) -> int:
        """Items in the outbox now (0 when there is no outbox yet)."""

    def run(self) -> str:
        """Replay them; a one-line summary (counts only). Raises `ShadowswapError`."""


class OutboxDrain:
    """The real step: the outbox and stores of the env file's settings, `Replayer` rules."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings

    def pending(self) -> int:
        outbox = existing_outbox(self._settings().outbox_url)
        if outbox is None:
            return 0
        try:
            return outbox.stats().size
        finally:
            outbox.close()

    def run(self) -> str:
        settings = self._settings()
        outbox = open_outbox(settings.outbox_url)
        stores = OpenStores(settings)
        try:
            replayer = Replayer(outbox, stores, settings, Metrics.null(), SystemClock())
            report = replayer.run(max_items=settings.outbox_max)
        finally:
            stores.close()
            outbox.close()
        return outcome(report)


def outcome(report: ReplayReport) -> str:
    """The step's one-line summary of a replay; raises `DrainFailed` when it did not finish."""
    summary = (
        f"replayed {report.replayed}, already applied or superseded "
        f"{report.skipped_superseded}, failed {report.failed}, left {report.remaining}"
    )
    if report.stopped or report.failed:
        raise DrainFailed(summary + (f" ({report.stopped})" if report.stopped else ""))
    return summary

"""Pacing of long jobs: a rate limit, and waits that a stop request cuts short.

Time comes from an injected `Clock`, so tests move it instead of sleeping. Waits are taken
in slices of at most one second and the stop signal is checked between slices: a SIGTERM
ends a throttled backfill or a ``reconcile --every`` loop within a second, not at the end
of a ten-minute wait.
"""

from __future__ import annotations

import threading
from typing import Protocol

from shadowswap.clock import Clock

SLICE_S = 1.0


class StopSignal(Protocol):
    """Set when the job should stop at the next safe point (`threading.Event` is one)."""

    def is_set(self) -> bool: ...


def never_stop() -> StopSignal:
    """A signal nobody sets."""
    return threading.Event()


def pause(clock: Clock, seconds: float, stop: StopSignal) -> bool:
    """Wait ``seconds`` on ``clock`` unless stopped first; True when the full wait elapsed."""
    deadline = clock.monotonic() + seconds
    while not stop.is_set():
        left = deadline - clock.monotonic()
        if left <= 0:
            return True
        clock.sleep(min(SLICE_S, left))
    return False


class Throttle:
    """At most ``rate`` documents per second on average, without bursts after slow periods.

    Call `wait` before handling ``n`` documents. The first batch goes at once; each next one
    waits until the previous batches' share of time (``n / rate``) has passed. Time lost
    while the job ran slower than the rate is not made up later.

    >>> from shadowswap.clock import FakeClock
    >>> clock = FakeClock(start=0.0)
    >>> throttle = Throttle(100.0, clock)
    >>> throttle.wait(50), throttle.wait(50), clock.monotonic()
    (True, True, 0.5)
    """

    def __init__(self, rate: float | None, clock: Clock) -> None:
        if rate is not None and not rate > 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._clock = clock
        self._next: float | None = None

    def wait(self, n: int, stop: StopSignal | None = None) -> bool:
        """Block until ``n`` more documents may go; False when stopped while waiting."""
        if self._rate is None:
            return True
        now = self._clock.monotonic()
        if self._next is not None and self._next > now:
            if not pause(self._clock, self._next - now, stop or never_stop()):
                return False
            now = self._clock.monotonic()
        self._next = max(self._next or now, now) + n / self._rate
        return True

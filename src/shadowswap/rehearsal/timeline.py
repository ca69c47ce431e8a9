"""What the rehearsal's running pieces reported, with the moment they reported it.

`TimelineSink` is a `shadowswap.metrics.MetricsSink` placed in front of the real one (the
Prometheus sink the runtime would use anyway): every event goes on to it unchanged, and is
also kept with its monotonic time, so the report can draw the outbox size and the breaker
state over the outage, and the latencies of every read. Marks (``target down``,
``replay``) are the rehearsal's own annotations on the same time axis.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from shadowswap.clock import Clock
from shadowswap.metrics import Comparison, MetricsSink


@dataclass(frozen=True)
class Event:
    """One event: seconds since the timeline started, name, arguments."""

    t: float
    name: str
    args: tuple[Any, ...]


class TimelineSink:
    """Forwards to ``inner`` and keeps the events; thread-safe."""

    def __init__(self, inner: MetricsSink, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock
        self.started = clock.monotonic()
        self._events: list[Event] = []
        self._marks: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return self._clock.monotonic() - self.started

    def _add(self, name: str, *args: Any) -> None:
        event = Event(self.elapsed(), name, args)
        with self._lock:
            self._events.append(event)

    def mark(self, label: str) -> float:
        """Note a moment (``target down``); returns its time."""
        t = self.elapsed()
        with self._lock:
            self._marks.append((t, label))
        return t

    def events(self, name: str, since: float = 0.0, until: float = float("inf")) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.name == name and since <= e.t <= until]

    def marks(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self._marks)

    def count(self, name: str, since: float = 0.0, until: float = float("inf")) -> int:
        return len(self.events(name, since, until))

    def count_where(
        self, name: str, first: Any, since: float = 0.0, until: float = float("inf")
    ) -> int:
        """Events ``name`` whose first argument is ``first`` (a drop's reason)."""
        return sum(1 for e in self.events(name, since, until) if e.args and e.args[0] == first)

    # -- MetricsSink ------------------------------------------------------------------------
    def read(self, backend: str, role: str, outcome: str, seconds: float) -> None:
        self._add("read", backend, role, outcome, seconds)
        self._inner.read(backend, role, outcome, seconds)

    def fallback(self, from_backend: str, to_backend: str) -> None:
        self._add("fallback", from_backend, to_backend)
        self._inner.fallback(from_backend, to_backend)

    def shadow_compared(self, comparison: Comparison) -> None:
        self._add("shadow_compared", comparison)
        self._inner.shadow_compared(comparison)

    def shadow_dropped(self, reason: str) -> None:
        self._add("shadow_dropped", reason)
        self._inner.shadow_dropped(reason)

    def shadow_error(self, backend: str) -> None:
        self._add("shadow_error", backend)
        self._inner.shadow_error(backend)

    def dual_write_error(self) -> None:
        self._add("dual_write_error")
        self._inner.dual_write_error()

    def dual_write_skipped(self, reason: str) -> None:
        self._add("dual_write_skipped", reason)
        self._inner.dual_write_skipped(reason)

    def outbox_size(self, size: int, oldest_age_s: float | None = None) -> None:
        self._add("outbox_size", size, oldest_age_s)
        self._inner.outbox_size(size, oldest_age_s)

    def outbox_dropped(self, reason: str, count: int = 1) -> None:
        self._add("outbox_dropped", reason, count)
        self._inner.outbox_dropped(reason, count)

    def breaker_state(self, state: str) -> None:
        self._add("breaker_state", state)
        self._inner.breaker_state(state)

    def drift(self, missing: int, extra: int, stale: int) -> None:
        self._inner.drift(missing, extra, stale)

    def phase(self, name: str) -> None:
        self._inner.phase(name)


__all__ = ["Event", "TimelineSink"]

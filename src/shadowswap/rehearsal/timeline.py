"""What the rehearsal's running pieces reported, with the moment they reported it.

`Timeline` listens to the runtime's `shadowswap.metrics.Metrics` (`Metrics.listen`): every
event the metrics hear (a read, a skipped or failed dual write, a dropped shadow read, the
breaker's state, the outbox size a writer or replayer saw) is kept with its monotonic time,
so the report can draw the outbox size and the breaker state over the outage, and count
what happened in each window. Marks (``target down``,
``replay``) are the rehearsal's own annotations on the same time axis.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from shadowswap.clock import Clock


@dataclass(frozen=True)
class Event:
    """One event: seconds since the timeline started, name, arguments."""

    t: float
    name: str
    args: tuple[Any, ...]


class Timeline:
    """Keeps the events it hears, with their time; thread-safe.

    >>> from shadowswap.clock import FakeClock
    >>> from shadowswap.metrics import Metrics
    >>> metrics, timeline = Metrics.null(), Timeline(FakeClock())
    >>> metrics.listen(timeline.hear)
    >>> metrics.shadow_dropped("timeout")
    >>> timeline.count_where("shadow_dropped", "timeout")
    1
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.started = clock.monotonic()
        self._events: list[Event] = []
        self._marks: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return self._clock.monotonic() - self.started

    def hear(self, name: str, args: tuple[Any, ...]) -> None:
        """A `shadowswap.metrics.Listener`: keep the event with the time it was heard."""
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


__all__ = ["Event", "Timeline"]

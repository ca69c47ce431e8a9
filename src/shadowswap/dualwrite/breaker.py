"""The circuit breaker in front of the deferred write: an explicit state machine.

Why not pybreaker (the brief suggests it where it fits): its open state reads the wall clock
itself (``datetime.now``), so its tests sleep for whole windows; its half-open state lets
every concurrent call through instead of exactly one trial; and it wraps calls
(``breaker.call(fn)``) while the dual writer must ask *before* a write and report *after* a
deadline it runs itself, from another thread. Wrapping it would keep none of its code. What
we keep from it: the state lives behind a small storage boundary (`BreakerStorage`) so that
several processes could share one breaker, and listeners (here a state listener, the metrics'
`shadowswap.metrics.Metrics.breaker_state`, and a log line) keep metrics out of the core.

One transition function, `step`, and this table (``tests/dualwrite/test_breaker.py`` checks
every row). ``n`` is the count of consecutive failures, ``W`` the window, ``T`` the threshold,
``since`` when the current state was entered; every change of state bumps ``generation``.

==========  ========  ==========================  ============================  ========
state       event     condition                   next                          allowed
==========  ========  ==========================  ============================  ========
closed      attempt                               closed                        yes
closed      success   ticket current              closed, n = 0
closed      failure   ticket current, n + 1 < T   closed, n + 1
closed      failure   ticket current, n + 1 >= T  open, since = now
open        attempt   now - since < W             open                          no
open        attempt   now - since >= W            half_open, since = now        yes (trial)
half_open   attempt   now - since < W             half_open (trial in flight)   no
half_open   attempt   now - since >= W            half_open, since = now        yes (the
                                                                                trial never
                                                                                reported)
half_open   success   ticket current              closed, n = 0
half_open   failure   ticket current              open, since = now
any         success   ticket stale                unchanged
            /failure
==========  ========  ==========================  ============================  ========

A *ticket* carries the generation in which a call was allowed, so a late answer from before a
change of state (a slow write that outlived its deadline) changes nothing. ``T`` and ``W``
are passed with every event (`BreakerConfig`), so an edited env file applies at once.

>>> from shadowswap.clock import FakeClock
>>> states = []
>>> breaker = Breaker(FakeClock(), states.append)
>>> config = BreakerConfig(threshold=1, window_s=30)
>>> ticket = breaker.attempt(config)
>>> breaker.record(ticket, ok=False, config=config)
>>> breaker.state
<State.OPEN: 'open'>
>>> states
['closed', 'open']
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from shadowswap.clock import Clock

log = logging.getLogger("shadowswap.dualwrite.breaker")


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Event(enum.StrEnum):
    ATTEMPT = "attempt"
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True)
class BreakerConfig:
    """``threshold`` consecutive failures open the breaker for ``window_s`` seconds."""

    threshold: int
    window_s: float


@dataclass(frozen=True)
class Snapshot:
    """Everything the breaker knows; what `BreakerStorage` keeps."""

    state: State = State.CLOSED
    failures: int = 0
    since: float = 0.0
    generation: int = 0


@dataclass(frozen=True)
class Ticket:
    """Permission for one call, to be reported with `Breaker.record`."""

    generation: int


def step(  # noqa: PLR0911 - one return per row of the transition table
    snap: Snapshot, event: Event, now: float, config: BreakerConfig, ticket: int | None = None
) -> tuple[Snapshot, bool]:
    """The transition table of the module docstring: (next snapshot, call allowed).

    ``ticket`` is the generation a success or failure was allowed in; ``allowed`` is only
    meaningful for `Event.ATTEMPT`.
    """
    if event is Event.ATTEMPT:
        if snap.state is State.CLOSED:
            return snap, True
        if now - snap.since < config.window_s:
            return snap, False
        return _enter(snap, State.HALF_OPEN, now), True
    if ticket != snap.generation or snap.state is State.OPEN:
        return snap, False
    if event is Event.SUCCESS:
        if snap.state is State.HALF_OPEN:
            return _enter(snap, State.CLOSED, now), False
        return (snap if snap.failures == 0 else replace(snap, failures=0)), False
    # a failure
    if snap.state is State.HALF_OPEN or snap.failures + 1 >= config.threshold:
        return _enter(snap, State.OPEN, now), False
    return replace(snap, failures=snap.failures + 1), False


def _enter(snap: Snapshot, state: State, now: float) -> Snapshot:
    return Snapshot(state=state, failures=0, since=now, generation=snap.generation + 1)


class BreakerStorage(Protocol):
    """Where the breaker's snapshot lives. One in-process implementation ships
    (`MemoryBreakerStorage`); a shared one (a row in the PostgreSQL outbox database, say)
    only has to offer the same compare-and-set."""

    def load(self) -> Snapshot: ...

    def swap(self, expected: Snapshot, new: Snapshot) -> bool:
        """Store ``new`` if the stored snapshot is still ``expected``; report whether it did."""


class MemoryBreakerStorage:
    """The snapshot in this process's memory."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self._snap = snapshot or Snapshot()
        self._lock = threading.Lock()

    def load(self) -> Snapshot:
        with self._lock:
            return self._snap

    def swap(self, expected: Snapshot, new: Snapshot) -> bool:
        with self._lock:
            if self._snap != expected:
                return False
            self._snap = new
            return True


class Breaker:
    """Asks `step` and keeps the result in its storage; reports its state to ``listener``
    (the state's name: once when built, then at every change; the runtime passes
    `shadowswap.metrics.Metrics.breaker_state`) and its changes to the log."""

    def __init__(
        self,
        clock: Clock,
        listener: Callable[[str], None],
        storage: BreakerStorage | None = None,
        name: str = "dual_write",
    ) -> None:
        self._clock = clock
        self._listener = listener
        self._storage = storage or MemoryBreakerStorage()
        self.name = name
        listener(self._storage.load().state.value)

    @property
    def state(self) -> State:
        return self._storage.load().state

    def snapshot(self) -> Snapshot:
        return self._storage.load()

    def refuses(self, config: BreakerConfig) -> bool:
        """Whether an attempt now would be refused; changes nothing."""
        _, allowed = step(self._storage.load(), Event.ATTEMPT, self._clock.monotonic(), config)
        return not allowed

    def attempt(self, config: BreakerConfig) -> Ticket | None:
        """A ticket when a call may go through now, None when the breaker refuses it."""
        snap, allowed = self._apply(Event.ATTEMPT, config, None)
        return Ticket(snap.generation) if allowed else None

    def record(self, ticket: Ticket, *, ok: bool, config: BreakerConfig) -> None:
        """Report how the call allowed by ``ticket`` ended."""
        self._apply(Event.SUCCESS if ok else Event.FAILURE, config, ticket.generation)

    def _apply(
        self, event: Event, config: BreakerConfig, ticket: int | None
    ) -> tuple[Snapshot, bool]:
        while True:
            old = self._storage.load()
            new, allowed = step(old, event, self._clock.monotonic(), config, ticket)
            if new == old or self._storage.swap(old, new):
                break
        if new.state is not old.state:
            self._listener(new.state.value)
            log.log(
                logging.WARNING if new.state is State.OPEN else logging.INFO,
                "circuit breaker %s -> %s",
                old.state.value,
                new.state.value,
                extra={
                    "breaker": self.name,
                    "from_state": old.state.value,
                    "to_state": new.state.value,
                    "threshold": config.threshold,
                    "window_s": config.window_s,
                },
            )
        return new, allowed

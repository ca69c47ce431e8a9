"""The breaker's transition table, every combination, and the Breaker around it."""

from __future__ import annotations

import itertools
import logging
import threading

import pytest

from shadowswap.clock import FakeClock
from shadowswap.dualwrite.breaker import (
    Breaker,
    BreakerConfig,
    Event,
    MemoryBreakerStorage,
    Snapshot,
    State,
    step,
)
from tests.metrics_helpers import RecordingMetrics

T, W = 3, 30.0
CONFIG = BreakerConfig(threshold=T, window_s=W)
SINCE = 1000.0
GEN = 7

# The module docstring's table, written out again here as data: (state, event, condition) ->
# (next state, failures, since moved to now, generation bumped, allowed). Conditions:
# "young"/"old" = now - since below/at least the window; "current"/"stale" ticket;
# "below"/"at" = failures + 1 below/at the threshold.
TABLE: dict[tuple[State, Event, str], tuple[State, int | str, bool, bool, bool]] = {
    (State.CLOSED, Event.ATTEMPT, "*"): (State.CLOSED, "same", False, False, True),
    (State.CLOSED, Event.SUCCESS, "current"): (State.CLOSED, 0, False, False, False),
    (State.CLOSED, Event.FAILURE, "current,below"): (State.CLOSED, "+1", False, False, False),
    (State.CLOSED, Event.FAILURE, "current,at"): (State.OPEN, 0, True, True, False),
    (State.OPEN, Event.ATTEMPT, "young"): (State.OPEN, "same", False, False, False),
    (State.OPEN, Event.ATTEMPT, "old"): (State.HALF_OPEN, 0, True, True, True),
    (State.HALF_OPEN, Event.ATTEMPT, "young"): (State.HALF_OPEN, "same", False, False, False),
    (State.HALF_OPEN, Event.ATTEMPT, "old"): (State.HALF_OPEN, 0, True, True, True),
    (State.HALF_OPEN, Event.SUCCESS, "current"): (State.CLOSED, 0, True, True, False),
    (State.HALF_OPEN, Event.FAILURE, "current"): (State.OPEN, 0, True, True, False),
    (State.OPEN, Event.SUCCESS, "*"): (State.OPEN, "same", False, False, False),
    (State.OPEN, Event.FAILURE, "*"): (State.OPEN, "same", False, False, False),
    ("any", Event.SUCCESS, "stale"): ("same", "same", False, False, False),  # type: ignore[dict-item]
    ("any", Event.FAILURE, "stale"): ("same", "same", False, False, False),  # type: ignore[dict-item]
}


def _row(state: State, event: Event, age: str, ticket: str, fails: str) -> tuple[object, ...]:
    """The one row of TABLE that applies to a combination."""
    if event is Event.ATTEMPT:
        return TABLE[(state, event, "*" if state is State.CLOSED else age)]
    if state is State.OPEN:
        return TABLE[(state, event, "*")]
    if ticket == "stale":
        return TABLE[("any", event, "stale")]  # type: ignore[index]
    if state is State.CLOSED and event is Event.FAILURE:
        return TABLE[(state, event, f"current,{fails}")]
    return TABLE[(state, event, "current")]


COMBINATIONS = list(
    itertools.product(State, Event, ("young", "old"), ("current", "stale"), ("below", "at"))
)


@pytest.mark.parametrize(("state", "event", "age", "ticket", "fails"), COMBINATIONS)
def test_every_combination_follows_the_table(
    state: State, event: Event, age: str, ticket: str, fails: str
) -> None:
    failures = (T - 1 if fails == "at" else 0) if state is State.CLOSED else 0
    snap = Snapshot(state=state, failures=failures, since=SINCE, generation=GEN)
    now = SINCE + (W if age == "old" else W / 2)
    gen = GEN if ticket == "current" else GEN - 1
    new, allowed = step(snap, event, now, CONFIG, None if event is Event.ATTEMPT else gen)
    next_state, next_failures, moved, bumped, may = _row(state, event, age, ticket, fails)
    assert new.state is (state if next_state == "same" else next_state)
    expected_failures = {"same": failures, "+1": failures + 1}.get(str(next_failures))
    assert new.failures == (next_failures if expected_failures is None else expected_failures)
    assert new.since == (now if moved else SINCE)
    assert new.generation == GEN + (1 if bumped else 0)
    assert allowed is may


def test_every_row_of_the_table_is_reached() -> None:
    reached = {id(_row(*c)) for c in COMBINATIONS}
    assert reached == {id(v) for v in TABLE.values()}


def test_failures_below_threshold_are_reset_by_a_success() -> None:
    snap = Snapshot(failures=2)
    new, _ = step(snap, Event.SUCCESS, 0.0, CONFIG, 0)
    assert new.failures == 0
    new, _ = step(new, Event.FAILURE, 0.0, CONFIG, 0)
    assert new.state is State.CLOSED  # 1 failure, not 3: the count is of consecutive failures


def test_the_failure_just_below_the_threshold_keeps_it_closed() -> None:
    # T − 2 failures so far: one more makes T − 1, still closed; at T − 1, one more opens it
    new, _ = step(Snapshot(failures=T - 2), Event.FAILURE, 0.0, CONFIG, 0)
    assert (new.state, new.failures) == (State.CLOSED, T - 1)
    new, _ = step(new, Event.FAILURE, 0.0, CONFIG, 0)
    assert new.state is State.OPEN
    # a threshold of 1 opens at the first failure, of 2 at the second
    one, _ = step(Snapshot(), Event.FAILURE, 0.0, BreakerConfig(threshold=1, window_s=W), 0)
    assert one.state is State.OPEN
    two, _ = step(Snapshot(), Event.FAILURE, 0.0, BreakerConfig(threshold=2, window_s=W), 0)
    assert (two.state, two.failures) == (State.CLOSED, 1)


def test_a_lowered_threshold_applies_at_the_next_failure() -> None:
    snap = Snapshot(failures=4)
    new, _ = step(snap, Event.FAILURE, 0.0, BreakerConfig(threshold=2, window_s=W), 0)
    assert new.state is State.OPEN


# -- the Breaker ------------------------------------------------------------------------
def _breaker() -> tuple[Breaker, FakeClock, RecordingMetrics]:
    clock, sink = FakeClock(start=0.0), RecordingMetrics()
    return Breaker(clock, sink.breaker_state), clock, sink


def _fail(breaker: Breaker, times: int) -> None:
    for _ in range(times):
        ticket = breaker.attempt(CONFIG)
        assert ticket is not None
        breaker.record(ticket, ok=False, config=CONFIG)


def _succeed(breaker: Breaker) -> None:
    ticket = breaker.attempt(CONFIG)
    assert ticket is not None
    breaker.record(ticket, ok=True, config=CONFIG)


@pytest.mark.parametrize("before", range(1, T))
def test_a_success_restarts_the_count_of_consecutive_failures(before: int) -> None:
    # 1 .. T − 1 failures, a success, then T − 1 failures: never T in a row, so closed; the
    # next failure is the T-th in a row and opens it
    breaker, _, _ = _breaker()
    _fail(breaker, before)
    assert breaker.state is State.CLOSED
    _succeed(breaker)
    assert breaker.snapshot().failures == 0
    _fail(breaker, T - 1)
    assert breaker.state is State.CLOSED
    _fail(breaker, 1)
    assert breaker.state is State.OPEN


def test_opens_after_threshold_failures_refuses_for_the_window_then_one_trial() -> None:
    breaker, clock, sink = _breaker()
    _fail(breaker, T - 1)
    assert breaker.state is State.CLOSED
    _fail(breaker, 1)
    assert breaker.state is State.OPEN
    assert breaker.attempt(CONFIG) is None
    clock.advance(W - 0.001)
    assert breaker.refuses(CONFIG) and breaker.attempt(CONFIG) is None
    clock.advance(0.001)
    assert not breaker.refuses(CONFIG)
    assert breaker.state is State.OPEN  # asking changed nothing
    trial = breaker.attempt(CONFIG)
    assert trial is not None and breaker.state is State.HALF_OPEN
    assert breaker.attempt(CONFIG) is None  # exactly one trial
    breaker.record(trial, ok=True, config=CONFIG)
    assert breaker.state is State.CLOSED
    assert [a[0] for a in sink.of("breaker_state")] == ["closed", "open", "half_open", "closed"]


def test_a_failed_trial_reopens_for_a_whole_window() -> None:
    breaker, clock, _ = _breaker()
    _fail(breaker, T)
    clock.advance(W)
    trial = breaker.attempt(CONFIG)
    assert trial is not None
    breaker.record(trial, ok=False, config=CONFIG)
    assert breaker.state is State.OPEN
    clock.advance(W - 1)
    assert breaker.attempt(CONFIG) is None


def test_a_late_answer_from_before_the_breaker_opened_changes_nothing() -> None:
    breaker, clock, _ = _breaker()
    slow = breaker.attempt(CONFIG)
    assert slow is not None
    _fail(breaker, T)
    clock.advance(W)
    trial = breaker.attempt(CONFIG)
    assert trial is not None
    breaker.record(slow, ok=True, config=CONFIG)  # must not close the breaker
    assert breaker.state is State.HALF_OPEN
    breaker.record(trial, ok=True, config=CONFIG)
    assert breaker.state is State.CLOSED


def test_state_changes_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    breaker, _, _ = _breaker()
    with caplog.at_level(logging.INFO, logger="shadowswap.dualwrite.breaker"):
        _fail(breaker, T)
    [record] = [r for r in caplog.records if r.name == "shadowswap.dualwrite.breaker"]
    assert record.levelno == logging.WARNING
    assert (record.from_state, record.to_state) == ("closed", "open")  # type: ignore[attr-defined]


def test_shared_storage_lets_two_breakers_see_one_state() -> None:
    storage = MemoryBreakerStorage()
    clock = FakeClock(start=0.0)
    first = Breaker(clock, RecordingMetrics().breaker_state, storage)
    second = Breaker(clock, RecordingMetrics().breaker_state, storage)
    _fail(first, T)
    assert second.state is State.OPEN and second.attempt(CONFIG) is None


def test_concurrent_failures_open_the_breaker_once() -> None:
    breaker, _, sink = _breaker()
    tickets = [breaker.attempt(CONFIG) for _ in range(50)]
    barrier = threading.Barrier(10)

    def fail(chunk: list[object]) -> None:
        barrier.wait()
        for ticket in chunk:
            breaker.record(ticket, ok=False, config=CONFIG)  # type: ignore[arg-type]

    threads = [threading.Thread(target=fail, args=(tickets[i::10],)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a[0] for a in sink.of("breaker_state")] == ["closed", "open"]

"""The shadow executor: bounded queue, deadlines from acceptance, late answers discarded,
threads bounded under a target that never returns, exactly one outcome per accepted task.

Time is a FakeClock moved by the tests, and the watchdog is driven by calling ``sweep``
(``tick_s=None``), except in the last tests, which let the real watchdog run."""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from shadowswap.clock import FakeClock, SystemClock
from shadowswap.shadow.executor import ExecutorSizes, ShadowExecutor
from tests.metrics_helpers import RecordingMetrics

DEADLINE = 0.8


class Probe:
    """A shadow task: its call blocks on ``gate`` when given, moves the fake clock by
    ``takes`` seconds, then returns ``result`` or raises ``error``; every callback recorded."""

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        takes: float = 0.0,
        gate: threading.Event | None = None,
        error: Exception | None = None,
        result: str = "answer",
        on_answer: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        self.takes = takes
        self.gate = gate
        self.error = error
        self.result = result
        self.on_answer = on_answer
        self.called = threading.Event()
        self.outcomes: list[tuple[str, object, float]] = []

    def call(self) -> str:
        self.called.set()
        if self.gate is not None:
            self.gate.wait(30)
        if self.takes:
            assert self.clock is not None
            self.clock.advance(self.takes)
        if self.error is not None:
            raise self.error
        return self.result

    def answered(self, answer: str, seconds: float) -> None:
        self.outcomes.append(("answered", answer, seconds))
        if self.on_answer is not None:
            self.on_answer()

    def failed(self, error: Exception, seconds: float) -> None:
        self.outcomes.append(("failed", error, seconds))

    def timed_out(self, waited_s: float, in_call: bool) -> None:
        self.outcomes.append(("timed_out", in_call, waited_s))


def eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    """Poll until ``check`` holds (a safety net against a hang, not a timing assertion)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.005)
    return check()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink() -> RecordingMetrics:
    return RecordingMetrics()


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # never leave a worker blocked after a test


def make(
    sink: RecordingMetrics, clock: FakeClock, **sizes: int | float | None
) -> Iterator[ShadowExecutor]:
    executor = ShadowExecutor(
        metrics=sink,
        clock=clock,
        sizes=ExecutorSizes(**{"tick_s": None, **sizes}),  # type: ignore[arg-type]
    )
    yield executor
    executor.close()


@pytest.fixture
def executor(sink: RecordingMetrics, clock: FakeClock) -> Iterator[ShadowExecutor]:
    yield from make(sink, clock)


def test_an_answer_within_the_deadline_is_delivered(
    executor: ShadowExecutor, clock: FakeClock, sink: RecordingMetrics
) -> None:
    probe = Probe(clock, takes=0.3)
    assert executor.submit(probe, DEADLINE)
    assert executor.wait_idle()
    assert probe.outcomes == [("answered", "answer", pytest.approx(0.3))]
    assert sink.drops() == {"queue_full": 0, "timeout": 0}
    assert executor.stats().answered == 1


def test_an_answer_after_the_deadline_is_discarded_and_counted_as_timeout(
    executor: ShadowExecutor, clock: FakeClock, sink: RecordingMetrics
) -> None:
    probe = Probe(clock, takes=DEADLINE + 0.2)
    executor.submit(probe, DEADLINE)
    assert executor.wait_idle()
    assert [o[:2] for o in probe.outcomes] == [("timed_out", True)]
    assert sink.drops() == {"queue_full": 0, "timeout": 1}
    stats = executor.stats()
    assert (stats.answered, stats.dropped_timeout) == (0, 1)


def test_an_error_is_an_outcome_never_raised(
    executor: ShadowExecutor, clock: FakeClock, sink: RecordingMetrics
) -> None:
    boom = RuntimeError("target down")
    probe = Probe(clock, error=boom)
    executor.submit(probe, DEADLINE)
    assert executor.wait_idle()
    assert probe.outcomes == [("failed", boom, 0.0)]
    assert executor.stats().failed == 1
    assert sink.drops() == {"queue_full": 0, "timeout": 0}


def test_a_full_queue_drops_at_once_with_reason_queue_full(
    sink: RecordingMetrics, clock: FakeClock, gate: threading.Event
) -> None:
    for executor in make(sink, clock, workers=1, queue_size=2):
        busy = Probe(gate=gate)
        executor.submit(busy, DEADLINE)
        assert busy.called.wait(10)  # the only worker is inside a call
        queued = [Probe(), Probe()]
        assert all(executor.submit(p, DEADLINE) for p in queued)
        extra = Probe()
        assert executor.submit(extra, DEADLINE) is False
        assert sink.drops() == {"queue_full": 1, "timeout": 0}
        gate.set()
        assert executor.wait_idle()
        assert [p.outcomes[0][0] for p in [busy, *queued]] == ["answered"] * 3
        assert extra.outcomes == [] and not extra.called.is_set()
        assert executor.stats().dropped_queue_full == 1


def test_a_task_still_queued_at_its_deadline_is_dropped_without_being_run(
    sink: RecordingMetrics, clock: FakeClock, gate: threading.Event
) -> None:
    for executor in make(sink, clock, workers=1):
        busy = Probe(gate=gate)
        executor.submit(busy, 60.0)
        assert busy.called.wait(10)
        waiting = Probe()
        executor.submit(waiting, DEADLINE)
        clock.advance(DEADLINE + 0.01)
        assert executor.sweep() == 1
        assert [o[:2] for o in waiting.outcomes] == [("timed_out", False)]
        gate.set()
        assert executor.wait_idle()
        assert not waiting.called.is_set()
        assert busy.outcomes[0][0] == "answered"
        assert sink.drops() == {"queue_full": 0, "timeout": 1}


def test_a_task_found_expired_when_dequeued_is_not_run(
    executor: ShadowExecutor, clock: FakeClock, sink: RecordingMetrics
) -> None:
    # no sweep ran: the worker itself sees the deadline has passed when it takes the task
    late = Probe()
    executor.submit(late, 0.0)
    assert executor.wait_idle()
    assert not late.called.is_set()
    assert [o[:2] for o in late.outcomes] == [("timed_out", False)]
    assert sink.drops() == {"queue_full": 0, "timeout": 1}


def test_a_hung_call_is_timed_out_at_its_deadline_and_its_late_answer_discarded(
    sink: RecordingMetrics, clock: FakeClock, gate: threading.Event
) -> None:
    for executor in make(sink, clock, workers=1, max_stuck=2):
        hung = Probe(gate=gate)
        executor.submit(hung, DEADLINE)
        assert hung.called.wait(10)
        clock.advance(DEADLINE + 0.01)
        assert executor.sweep() == 1
        # counted now, while the call is still blocked
        assert [o[:2] for o in hung.outcomes] == [("timed_out", True)]
        stats = executor.stats()
        assert (stats.abandoned_now, stats.threads, stats.dropped_timeout) == (1, 2, 1)
        # a replacement worker keeps the shadow flowing meanwhile
        fresh = Probe()
        executor.submit(fresh, DEADLINE)
        assert executor.wait_idle()
        assert fresh.outcomes[0][0] == "answered"
        gate.set()  # the hung call returns: its answer must not be compared
        assert eventually(lambda: executor.stats().threads == 1)  # noqa: B023 - called at once
        assert [o[0] for o in hung.outcomes] == ["timed_out"]
        assert executor.stats().abandoned_now == 0
        assert sink.drops() == {"queue_full": 0, "timeout": 1}


def test_threads_stay_bounded_when_the_target_never_returns(
    sink: RecordingMetrics, clock: FakeClock, gate: threading.Event
) -> None:
    workers, max_stuck, queue_size = 2, 3, 4
    for executor in make(sink, clock, workers=workers, max_stuck=max_stuck, queue_size=queue_size):
        probes = []
        accepted = 0
        for _ in range(60):
            probe = Probe(gate=gate)
            probes.append(probe)
            accepted += executor.submit(probe, DEADLINE)
            clock.advance(0.1)  # tasks wait in the queue for 8 rounds: it overflows
            executor.sweep()
            stats = executor.stats()
            assert stats.threads <= workers + max_stuck
            in_calls = sum(p.called.is_set() for p in probes)
            assert in_calls <= workers + max_stuck
        clock.advance(DEADLINE + 1)
        executor.sweep()
        assert executor.wait_idle()
        stats = executor.stats()
        assert stats.threads <= workers + max_stuck
        assert max_stuck <= sum(p.called.is_set() for p in probes) <= workers + max_stuck
        assert stats.accepted == accepted == stats.dropped_timeout
        assert stats.dropped_queue_full == 60 - accepted > 0
        assert all(len(p.outcomes) <= 1 for p in probes)
        assert sum(len(p.outcomes) for p in probes) == accepted
        drops = [r for (r,) in sink.of("shadow_dropped")]
        assert drops.count("timeout") == accepted and drops.count("queue_full") == 60 - accepted
        gate.set()  # the target recovers: the pool shrinks back to its workers
        assert eventually(lambda: executor.stats().threads == workers)  # noqa: B023
        recovered = Probe()
        executor.submit(recovered, DEADLINE)
        assert executor.wait_idle()
        assert recovered.outcomes[0][0] == "answered"


def test_a_failing_callback_does_not_stop_the_worker(
    executor: ShadowExecutor, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def explode() -> None:
        raise ValueError("bug in publishing")

    executor.submit(Probe(on_answer=explode), DEADLINE)
    assert executor.wait_idle()
    after = Probe()
    executor.submit(after, DEADLINE)
    assert executor.wait_idle()
    assert after.outcomes[0][0] == "answered"
    assert any("callback failed" in r.getMessage() for r in caplog.records)


def test_close_stops_accepting_and_forgets_queued_tasks(
    sink: RecordingMetrics, clock: FakeClock, gate: threading.Event
) -> None:
    executor = ShadowExecutor(
        metrics=sink, clock=clock, sizes=ExecutorSizes(workers=1, tick_s=None)
    )
    busy = Probe(gate=gate)
    executor.submit(busy, DEADLINE)
    assert busy.called.wait(10)
    queued = Probe()
    executor.submit(queued, DEADLINE)
    gate.set()
    executor.close()
    assert executor.submit(Probe(), DEADLINE) is False
    assert not queued.called.is_set()
    assert eventually(lambda: executor.stats().threads == 0)


def test_bad_sizes_are_refused() -> None:
    for bad in ({"workers": 0}, {"queue_size": 0}, {"max_stuck": -1}, {"tick_s": 0}, {"nice": 20}):
        with pytest.raises(ValueError, match="must be"):
            ExecutorSizes(**bad)  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_workers_run_at_a_lower_priority_than_the_caller(
    executor: ShadowExecutor, clock: FakeClock
) -> None:
    seen: list[int] = []

    class Priority(Probe):
        def call(self) -> str:
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return "answer"

    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    executor.submit(Priority(), DEADLINE)
    assert executor.wait_idle()
    assert seen == [min(19, caller + executor.sizes.nice)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller


def test_every_accepted_task_has_exactly_one_outcome_with_the_real_watchdog() -> None:
    """Real clock, real watchdog thread, calls that race their deadlines."""
    sink = RecordingMetrics()
    rng = random.Random(5)
    executor = ShadowExecutor(
        metrics=sink,
        clock=SystemClock(),
        sizes=ExecutorSizes(workers=3, queue_size=8, max_stuck=2, tick_s=0.002),
    )
    probes: list[tuple[Probe, bool]] = []

    class Sleeper(Probe):
        def __init__(self, seconds: float, fail: bool) -> None:
            super().__init__(error=RuntimeError("x") if fail else None)
            self.seconds = seconds

        def call(self) -> str:
            time.sleep(self.seconds)
            return super().call()

    try:
        for _ in range(300):
            probe = Sleeper(rng.choice([0.0, 0.001, 0.004, 0.012]), rng.random() < 0.2)
            probes.append((probe, executor.submit(probe, rng.choice([0.002, 0.005, 0.02]))))
            if rng.random() < 0.3:
                time.sleep(0.001)
        assert executor.wait_idle()
    finally:
        executor.close()
    for probe, accepted in probes:
        assert len(probe.outcomes) == (1 if accepted else 0)
    stats = executor.stats()
    outcomes = [p.outcomes[0][0] for p, accepted in probes if accepted]
    assert outcomes.count("answered") == stats.answered
    assert outcomes.count("failed") == stats.failed
    assert outcomes.count("timed_out") == stats.dropped_timeout
    drops = [r for (r,) in sink.of("shadow_dropped")]
    assert drops.count("timeout") == stats.dropped_timeout
    assert drops.count("queue_full") == stats.dropped_queue_full == sum(not a for _, a in probes)

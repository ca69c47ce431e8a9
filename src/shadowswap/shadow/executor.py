"""The shadow executor: runs shadow reads off the caller's thread, each within a deadline,
with a bounded queue and a bounded number of threads, whatever the shadow backend does.

Why this shape
    A shadow read must never slow the caller, and must never take the process down with it
    when the shadow backend misbehaves. The caller only appends a task to a bounded queue
    (`submit`, a few microseconds, never blocks): a full queue drops the task at once with
    reason ``queue_full``. Worker threads take tasks from the queue and run them.

    The deadline (``RETRIEVAL_SHADOW_TIMEOUT_MS``) counts from the moment the task was
    accepted into the queue. A task still queued at its deadline is dropped with reason
    ``timeout`` without being run; an answer that arrives after the deadline is discarded,
    never compared, and the task is dropped with reason ``timeout``.

    Python cannot interrupt a thread blocked inside a call (a hung socket read, a driver
    waiting forever). So a watchdog thread, not the worker, notices deadlines: every tick
    (20 ms by default, only while there is work) it drops overdue queued tasks and marks
    overdue running tasks as timed out *at the deadline*, whether or not their call ever
    returns. A worker left blocked in such a call is *abandoned*: it no longer counts as one
    of the ``workers`` and, if the thread budget allows, a fresh worker replaces it so the
    shadow keeps flowing (a target that hung once and recovered is observed again).

    The budget is the hard bound: at most ``workers + max_stuck`` threads ever exist, so at
    most that many shadow calls are in flight at once. Against a target that hangs forever
    the executor ends with every thread blocked; from then on each accepted task is dropped
    as ``timeout`` at its deadline by the watchdog and the queue overflows into
    ``queue_full`` drops. Memory and threads stay bounded, the caller is unaffected, and the
    drop counters say exactly what is happening. When an abandoned call finally returns, its
    late answer is discarded and the thread rejoins the pool (or exits if the pool is full).

    Shadow work competes with requests for the CPU (and the GIL). Workers therefore lower
    their own scheduling priority (``nice``, 19 by default, Linux only): when cores are
    scarce the kernel runs request threads first, and the shadow slows down, its queue
    fills and it sheds work as counted drops, instead of the caller slowing down. Threads a
    worker creates inherit its priority (for instance a client library's pool started by a
    first shadow call); set ``nice=0`` when that matters more than caller latency.

    Every state change of a task happens under one lock, so each accepted task has exactly
    one outcome: answered (compared), failed (error), or timed out. Callbacks run outside the
    lock and never raise into the executor. Threads are daemons: a hung backend never keeps
    the process from exiting.

Time comes from the injected `Clock` (deadlines, latencies), so tests drive timeouts by
moving a `shadowswap.clock.FakeClock` and calling `sweep`, without sleeping.

>>> from shadowswap.clock import SystemClock
>>> from shadowswap.metrics import Metrics
>>> executor = ShadowExecutor(metrics=Metrics.null(), clock=SystemClock())
>>> executor.close()
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from shadowswap.clock import Clock
from shadowswap.metrics import Metrics

log = logging.getLogger("shadowswap.shadow.executor")

T = TypeVar("T")


class Task(Protocol[T]):
    """One unit of shadow work. `call` is the part that may block or fail (the shadow
    search); exactly one of the three callbacks follows it."""

    def call(self) -> T: ...

    def answered(self, answer: T, seconds: float) -> None:
        """The call returned by the deadline; ``seconds`` is the call's own duration."""

    def failed(self, error: Exception, seconds: float) -> None:
        """The call raised by the deadline."""

    def timed_out(self, waited_s: float, in_call: bool) -> None:
        """The deadline passed: still queued (``in_call`` False) or still in the call."""


@dataclass(frozen=True)
class ExecutorSizes:
    """How much the shadow may hold. ``workers`` threads run tasks; at most ``max_stuck``
    more may exist, replacing workers left blocked past a deadline; ``queue_size`` tasks
    may wait. ``tick_s`` is the watchdog's period (None: no watchdog thread; call `sweep`).
    ``nice`` lowers the workers' scheduling priority by that much (Linux; 0 to keep it)."""

    workers: int = 2
    queue_size: int = 64
    max_stuck: int = 8
    tick_s: float | None = 0.02
    nice: int = 19

    def __post_init__(self) -> None:
        if self.workers < 1 or self.queue_size < 1 or self.max_stuck < 0:
            raise ValueError("workers and queue_size must be >= 1, max_stuck >= 0")
        if self.tick_s is not None and self.tick_s <= 0:
            raise ValueError("tick_s must be > 0 or None")
        if not 0 <= self.nice <= 19:
            raise ValueError("nice must be from 0 to 19")

    @property
    def max_threads(self) -> int:
        return self.workers + self.max_stuck


@dataclass(frozen=True)
class ExecutorStats:
    """A snapshot of the executor, for tests, status pages and benchmarks."""

    queued: int
    running: int  # tasks inside their call, before their deadline
    threads: int  # worker threads alive, abandoned ones included
    abandoned_now: int  # threads still blocked in a call past its deadline
    accepted: int
    answered: int
    failed: int
    dropped_queue_full: int
    dropped_timeout: int
    abandoned_total: int


class _State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    EXPIRED = "expired"


class _Outcome(enum.Enum):
    IN_TIME = "in_time"
    LATE = "late"
    CLAIMED = "claimed"


class _Job:
    __slots__ = ("accepted", "deadline", "state", "task")

    def __init__(self, task: Task[Any], accepted: float, deadline: float) -> None:
        self.task = task
        self.accepted = accepted
        self.deadline = deadline
        self.state = _State.QUEUED


class _Worker:
    __slots__ = ("abandoned", "job", "thread")

    def __init__(self) -> None:
        self.job: _Job | None = None
        self.abandoned = False
        self.thread: threading.Thread | None = None


_ids = itertools.count(1)


def lower_priority(nice: int) -> bool:
    """Lower the calling thread's scheduling priority by ``nice`` (Linux only, where
    ``setpriority`` on a thread id applies to that thread alone). True if it was lowered."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
    except OSError:
        return False
    return True


class ShadowExecutor:
    """Bounded queue + bounded workers + a watchdog for deadlines (see the module docstring).

    ``submit`` is the only method the request path calls; it never blocks and never raises
    for a full queue (it returns False and counts ``queue_full``).
    """

    def __init__(
        self,
        *,
        metrics: Metrics,
        clock: Clock,
        sizes: ExecutorSizes | None = None,
        name: str = "shadow",
    ) -> None:
        self.sizes = sizes or ExecutorSizes()
        self._metrics = metrics
        self._clock = clock
        self._name = f"{name}-{next(_ids)}"
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # workers wait here for tasks
        self._watch = threading.Condition(self._lock)  # the watchdog waits here
        self._idle = threading.Condition(self._lock)  # `wait_idle` waits here
        self._queue: deque[_Job] = deque()
        self._workers: set[_Worker] = set()
        self._live = 0  # workers not abandoned (reserved or running)
        self._threads = 0  # worker threads reserved or alive, abandoned ones included
        self._running = 0  # jobs in RUNNING state
        self._delivering = 0  # outcomes decided whose callbacks have not finished
        self._closed = False
        self._started = False
        self._watchdog: threading.Thread | None = None
        self._accepted = self._answered = self._failed = 0
        self._queue_full = self._timeouts = self._abandoned_total = 0

    # -- the request path -------------------------------------------------------------------
    def submit(self, task: Task[T], timeout_s: float) -> bool:
        """Accept ``task`` with a deadline ``timeout_s`` from now; False if dropped."""
        now = self._clock.monotonic()
        job = _Job(task, now, now + timeout_s)
        spawn = 0
        with self._lock:
            if self._closed:
                return False
            if not self._started:
                spawn = self._start_locked()
            full = len(self._queue) >= self.sizes.queue_size
            if not full:
                self._queue.append(job)
                self._accepted += 1
                self._work.notify()
                if len(self._queue) == 1 and self._running == 0:
                    self._watch.notify()  # the watchdog sleeps while there is no work
            else:
                self._queue_full += 1
        self._spawn(spawn)
        if full:
            self._metrics.shadow_dropped("queue_full")
        return not full

    # -- inspection and control -----------------------------------------------------------
    def stats(self) -> ExecutorStats:
        with self._lock:
            abandoned_now = sum(1 for w in self._workers if w.abandoned)
            return ExecutorStats(
                queued=len(self._queue),
                running=self._running,
                threads=self._threads,
                abandoned_now=abandoned_now,
                accepted=self._accepted,
                answered=self._answered,
                failed=self._failed,
                dropped_queue_full=self._queue_full,
                dropped_timeout=self._timeouts,
                abandoned_total=self._abandoned_total,
            )

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until nothing is queued or running and every outcome has been delivered
        (threads abandoned in a hung call do not count). For tests, benchmarks, shutdown."""
        with self._idle:
            return self._idle.wait_for(self._is_idle_locked, timeout_s)

    def sweep(self) -> int:
        """Time out what is past its deadline now; returns how many tasks it dropped. The
        watchdog calls this every tick; tests with a fake clock call it directly."""
        now = self._clock.monotonic()
        expired: list[tuple[_Job, bool]] = []
        with self._lock:
            if self._queue and any(now >= job.deadline for job in self._queue):
                keep: deque[_Job] = deque()
                for job in self._queue:
                    if now >= job.deadline:
                        job.state = _State.EXPIRED
                        expired.append((job, False))
                    else:
                        keep.append(job)
                self._queue = keep
            for worker in self._workers:
                running = worker.job
                if (
                    running is not None
                    and running.state is _State.RUNNING
                    and now > running.deadline
                ):
                    running.state = _State.EXPIRED
                    self._running -= 1
                    expired.append((running, True))
                    worker.abandoned = True
                    self._live -= 1
                    self._abandoned_total += 1
            self._timeouts += len(expired)
            self._delivering += len(expired)
            spawn = self._replacements_locked() if expired else 0
        self._spawn(spawn)
        abandoned = sum(1 for _, in_call in expired if in_call)
        if abandoned:
            log.warning(
                "shadow workers left blocked in calls past their deadline",
                extra={
                    "executor": self._name,
                    "abandoned": abandoned,
                    "threads": self.stats().threads,
                    "max_threads": self.sizes.max_threads,
                },
            )
        for job, in_call in expired:
            self._deliver_timeout(job, now - job.accepted, in_call)
        return len(expired)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop accepting tasks, forget queued ones, and let the workers finish their
        current call (waiting at most ``timeout_s``; abandoned threads are not waited for)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            forgotten = len(self._queue)
            for job in self._queue:
                job.state = _State.EXPIRED
            self._queue.clear()
            threads = [w.thread for w in self._workers if not w.abandoned and w.thread]
            self._work.notify_all()
            self._watch.notify_all()
            self._idle.notify_all()
        if forgotten:
            log.info(
                "shadow executor closed; queued shadow reads not run",
                extra={"executor": self._name, "count": forgotten},
            )
        deadline = self._clock.monotonic() + timeout_s
        for thread in [*threads, self._watchdog]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - self._clock.monotonic()))

    def __enter__(self) -> ShadowExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- threads ----------------------------------------------------------------------------
    def _start_locked(self) -> int:
        self._started = True
        self._live += self.sizes.workers
        self._threads += self.sizes.workers
        if self.sizes.tick_s is not None:
            self._watchdog = threading.Thread(
                target=self._watch_loop, name=f"{self._name}-watchdog", daemon=True
            )
            self._watchdog.start()
        return self.sizes.workers

    def _replacements_locked(self) -> int:
        """Reserve workers to replace abandoned ones, within the thread budget."""
        if self._closed:
            return 0
        missing = self.sizes.workers - self._live
        room = self.sizes.max_threads - self._threads
        n = max(0, min(missing, room))
        self._live += n
        self._threads += n
        return n

    def _spawn(self, n: int) -> None:
        for _ in range(n):
            worker = _Worker()
            worker.thread = threading.Thread(
                target=self._work_loop, args=(worker,), name=f"{self._name}-worker", daemon=True
            )
            with self._lock:
                self._workers.add(worker)
            worker.thread.start()

    def _is_idle_locked(self) -> bool:
        return not self._queue and self._running == 0 and self._delivering == 0

    def _take(self, me: _Worker) -> _Job | None:
        with self._lock:
            while not self._queue and not self._closed:
                self._work.wait()
            if self._closed:
                self._leave_locked(me)
                return None
            job = self._queue.popleft()
            if self._clock.monotonic() >= job.deadline:
                job.state = _State.EXPIRED
                self._timeouts += 1
                self._delivering += 1
            else:
                job.state = _State.RUNNING
                self._running += 1
                me.job = job
            return job

    def _leave_locked(self, me: _Worker) -> None:
        self._workers.discard(me)
        self._threads -= 1
        if not me.abandoned:
            self._live -= 1

    def _work_loop(self, me: _Worker) -> None:
        lower_priority(self.sizes.nice)
        while True:
            job = self._take(me)
            if job is None:
                return
            if job.state is _State.EXPIRED:
                self._deliver_timeout(job, self._clock.monotonic() - job.accepted, False)
                continue
            started = self._clock.monotonic()
            answer: object = None
            error: Exception | None = None
            try:
                answer = job.task.call()
            except Exception as exc:  # noqa: BLE001 - every shadow failure is an outcome
                error = exc
            ended = self._clock.monotonic()
            outcome, stay = self._finish(me, job, ended)
            if outcome is _Outcome.IN_TIME:
                self._deliver(job, answer, error, ended - started)
            elif outcome is _Outcome.LATE:
                self._deliver_timeout(job, ended - job.accepted, True)
            if not stay:
                return

    def _finish(self, me: _Worker, job: _Job, ended: float) -> tuple[_Outcome, bool]:
        """Record the end of ``job``'s call. Returns what to deliver, and whether ``me``
        stays in the pool (an abandoned worker rejoins only if the pool has room)."""
        with self._lock:
            me.job = None
            if job.state is _State.RUNNING:
                self._running -= 1
                self._delivering += 1
                if ended > job.deadline:  # late, and the watchdog has not seen it yet
                    job.state = _State.EXPIRED
                    self._timeouts += 1
                    outcome = _Outcome.LATE
                else:
                    job.state = _State.DONE
                    outcome = _Outcome.IN_TIME
            else:  # the watchdog timed it out already: the late answer is discarded
                outcome = _Outcome.CLAIMED
            stay = True
            if me.abandoned:
                if not self._closed and self._live < self.sizes.workers:
                    me.abandoned = False
                    self._live += 1
                else:
                    self._workers.discard(me)
                    self._threads -= 1
                    stay = False
            return outcome, stay

    def _deliver(self, job: _Job, answer: object, error: Exception | None, s: float) -> None:
        try:
            if error is None:
                job.task.answered(answer, s)
            else:
                job.task.failed(error, s)
        except Exception:  # publishing must never break the executor
            log.exception("shadow callback failed", extra={"executor": self._name})
        finally:
            with self._lock:
                if error is None:
                    self._answered += 1
                else:
                    self._failed += 1
                self._delivered_locked()

    def _deliver_timeout(self, job: _Job, waited_s: float, in_call: bool) -> None:
        try:
            self._metrics.shadow_dropped("timeout")
            job.task.timed_out(waited_s, in_call)
        except Exception:  # publishing must never break the executor
            log.exception("shadow callback failed", extra={"executor": self._name})
        finally:
            with self._lock:
                self._delivered_locked()

    def _delivered_locked(self) -> None:
        self._delivering -= 1
        if self._is_idle_locked():
            self._idle.notify_all()

    def _watch_loop(self) -> None:
        tick = self.sizes.tick_s
        while True:
            with self._lock:
                if self._closed:
                    return
                if self._queue or self._running:
                    self._watch.wait(tick)
                else:
                    self._watch.wait()
                if self._closed:
                    return
            try:
                self.sweep()
            except Exception:  # the watchdog must outlive any bug
                log.exception("shadow watchdog sweep failed", extra={"executor": self._name})

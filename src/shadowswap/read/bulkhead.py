"""A bulkhead: run a call on a worker thread, wait for it at most a deadline, and never have
more than ``limit`` calls in flight.

Why: a synchronous store call cannot be interrupted in Python. To answer a caller by a
deadline, the call runs on another thread while the caller waits; when the deadline passes
the caller moves on (falls back, or reports the backend unavailable) and the call is left to
finish on its own. If the backend hangs, such calls pile up: the ``limit`` bounds them, and a
call that finds every slot taken fails at once (`BulkheadFull`) instead of waiting or
creating yet another thread. Each backend gets its own bulkhead, so a hung primary cannot
starve the reads that fall back to the target.

Cost: one hand-off to an idle worker (a lock released, a lock acquired), a few tens of
microseconds; threads are created on demand, kept, and never more than ``limit``. They are
daemon threads, so a hung backend never keeps the process from exiting.

>>> bulkhead = Bulkhead("primary", limit=4)
>>> bulkhead.call(lambda: 6 * 7, timeout_s=1.0)
42
>>> bulkhead.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BulkheadFull(Exception):
    """Every slot holds a call that has not returned (the backend is not answering)."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        super().__init__(f"{limit} calls to {name} are already in flight")


class _Call(Generic[T]):
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()


class _Worker:
    __slots__ = ("_call", "_owner", "_wake")

    def __init__(self, owner: Bulkhead) -> None:
        self._owner = owner
        self._call: _Call[object] | None = None
        self._wake = threading.Lock()
        self._wake.acquire()
        thread = threading.Thread(target=self._run, name=f"bulkhead-{owner.name}", daemon=True)
        thread.start()

    def give(self, call: _Call[object] | None) -> None:
        self._call = call
        self._wake.release()

    def _run(self) -> None:
        while True:
            self._wake.acquire()
            call, self._call = self._call, None
            if call is None:
                return
            try:
                call.result = call.fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, re-raised there
                call.error = exc
            alive = self._owner._returned(self)
            call.done.release()
            if not alive:
                return


class Bulkhead:
    """At most ``limit`` calls in flight, each awaited at most its deadline."""

    def __init__(self, name: str, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.name = name
        self.limit = limit
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._threads = 0
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Calls running now, including those whose caller stopped waiting."""
        with self._lock:
            return self._threads - len(self._idle)

    def call(self, fn: Callable[[], T], timeout_s: float) -> T:
        """``fn()``'s result, or its exception; `TimeoutError` when it has not returned
        within ``timeout_s`` (it keeps running); `BulkheadFull` when no slot is free."""
        worker: _Worker | None = None
        with self._lock:
            if self._closed:
                raise RuntimeError(f"bulkhead {self.name} is closed")
            if self._idle:
                worker = self._idle.pop()
            elif self._threads < self.limit:
                self._threads += 1
            else:
                raise BulkheadFull(self.name, self.limit)
        if worker is None:
            try:
                worker = _Worker(self)
            except BaseException:
                with self._lock:
                    self._threads -= 1
                raise
        call: _Call[T] = _Call(fn)
        worker.give(call)  # type: ignore[arg-type]
        if not call.done.acquire(timeout=max(0.0, timeout_s)):
            raise TimeoutError(f"{self.name} did not answer within {timeout_s:g} s")
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the idle workers; busy ones stop when their call returns."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._threads -= len(idle)
        for worker in idle:
            worker.give(None)

    def _returned(self, worker: _Worker) -> bool:
        with self._lock:
            if self._closed:
                self._threads -= 1
                return False
            self._idle.append(worker)
            return True

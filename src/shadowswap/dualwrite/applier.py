"""The dual writer's background applier: one thread that hands the writer's own outbox items
to the deferred backend in batches, so that callers never wait for that backend.

Why one thread with batches: writes arrive one by one on many request threads, but a batch
costs the backend about as much as a single document (one round trip, one commit), so
whatever accumulated while the previous batch was in flight goes in the next one. One thread
also means one batch at a time, in the order of the writes: a change is never applied after
a newer change of the same document that this writer holds (`has_newer` lets the replay
rules rely on it). `mark` and `wait_applied` let a caller wait until every write offered
before a moment was handled, whatever arrives after (the dual writer does so when a
tenant's synchronous backend changes). The backlog is bounded: past ``max_backlog_items``
an offer is refused and the writer leaves the items to ``replay-outbox`` instead of
queueing them in memory; a hung backend holds this thread only, never a caller.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shadowswap.dualwrite.outbox import Item

log = logging.getLogger("shadowswap.dualwrite.applier")

Jobs = list[list[Item]]  # the items of each write call, in order


class Applier:
    """Calls ``apply(jobs)`` on its thread with everything offered since the last call.

    >>> done = []
    >>> applier = Applier(done.extend, name="demo")
    >>> applier.offer([])
    True
    >>> applier.flush(1.0)
    True
    >>> applier.close()
    """

    def __init__(
        self,
        apply: Callable[[Jobs], None],
        *,
        max_batch_items: int = 100,
        max_backlog_items: int = 1000,
        name: str = "dualwrite-applier",
    ) -> None:
        self._apply = apply
        self._max_batch = max_batch_items
        self._max_backlog = max_backlog_items
        self._jobs: Jobs = []
        self._backlog = 0
        self._closed = False
        self._offered = 0  # jobs accepted so far
        self._handled = 0  # jobs handed to ``apply`` and returned (FIFO: a prefix of them)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Items offered and not yet handed to ``apply``."""
        with self._cond:
            return self._backlog

    def has_room(self, items: int) -> bool:
        with self._cond:
            return not self._closed and self._backlog + items <= self._max_backlog

    def has_newer(self, key: tuple[str, str], seq: int) -> bool:
        """Whether a change of document ``key`` newer than ``seq`` waits to be applied."""
        with self._cond:
            return any(i.key == key and i.seq > seq for job in self._jobs for i in job)

    def offer(self, job: list[Item]) -> bool:
        """Queue one write's items; False when closed or the backlog is full."""
        with self._cond:
            if self._closed or self._backlog + len(job) > self._max_backlog:
                return False
            self._jobs.append(job)
            self._offered += 1
            self._backlog += len(job)
            self._cond.notify_all()
            return True

    def mark(self) -> int:
        """A point in the stream of offers, for `wait_applied`."""
        with self._cond:
            return self._offered

    def wait_applied(self, mark: int, timeout_s: float | None = None) -> bool:
        """Wait until every job offered before ``mark`` was handled (applied, or given back
        to the outbox); later offers are not waited for. False on timeout."""
        return self._wait(lambda: self._handled >= mark, timeout_s)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is left to apply, including what is offered meanwhile;
        False on timeout."""
        return self._wait(lambda: self._handled >= self._offered, timeout_s)

    def _wait(self, done: Callable[[], bool], timeout_s: float | None) -> bool:
        if threading.current_thread() is self._thread:
            return False  # called from inside ``apply``: waiting would wait for itself
        with self._cond:
            return self._cond.wait_for(done, timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Apply what is queued (up to ``timeout_s``), then stop the thread."""
        self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _take(self) -> Jobs | None:
        with self._cond:
            self._cond.wait_for(lambda: self._jobs or self._closed)
            if not self._jobs:
                return None
            batch: Jobs = []
            size = 0
            while self._jobs and (not batch or size + len(self._jobs[0]) <= self._max_batch):
                job = self._jobs.pop(0)
                batch.append(job)
                size += len(job)
            self._backlog -= size
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._apply(batch)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one batch
                log.error("background apply failed", extra={"error": type(exc).__name__})
            finally:
                with self._cond:
                    self._handled += len(batch)
                    self._cond.notify_all()

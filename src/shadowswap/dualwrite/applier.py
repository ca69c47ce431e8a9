"""The dual writer's background applier: one long-lived object, built once with the writer,
that owns one thread and applies the writer's own outbox items to the deferred backend in
batches, so that callers never wait for that backend.

The writer hands it the items of each write (`Applier.offer`) and never hears back: the
applier applies them with the stores and the outbox itself, through the breaker, by the
replay rules (one long-lived `shadowswap.dualwrite.replay.Replayer`, without grace: it only
gets items whose synchronous write is done), acks them, and reports errors and the outbox
figures to the metrics sink.

Why one thread with batches: writes arrive one by one on many request threads, but a batch
costs the backend about as much as a single document (one round trip, one commit), so
whatever accumulated while the previous batch was in flight goes in the next one. One thread
also means one batch at a time, in the order of the writes: a change is never applied after
a newer change of the same document that this applier holds (`Applier.has_newer` lets the
replay rules rely on it). `mark` and `wait_applied` let a caller wait until every write
offered before a moment was handled, whatever arrives after (the dual writer does so when a
tenant's synchronous backend changes). The backlog is bounded: past ``max_backlog_items``
an offer is refused and its items are released to ``replay-outbox`` instead of queued in
memory; a hung backend holds this thread only, never a caller.

A batch that fails, or takes longer than ``RETRIEVAL_DUAL_WRITE_TIMEOUT_MS``, counts against
the breaker; a failed batch leaves its items for ``replay-outbox`` (attempts + 1, last error);
a batch whose breaker opened since its writes were made is released to ``replay-outbox`` and
each of its writes counted as skipped (``circuit_open``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from shadowswap.clock import Clock
from shadowswap.dualwrite.breaker import Breaker, BreakerConfig
from shadowswap.dualwrite.figures import OutboxSampler
from shadowswap.dualwrite.logfields import describe
from shadowswap.dualwrite.outbox import Item, Outbox
from shadowswap.dualwrite.replay import Replayer
from shadowswap.errors import ConfigError
from shadowswap.metrics import Metrics
from shadowswap.settings.config import SettingsSource
from shadowswap.shadow.recent import RecentWrites
from shadowswap.stores.base import VectorStore

log = logging.getLogger("shadowswap.dualwrite.applier")
# The lines about a write's deferred leg keep the writer's logger name, as before.
write_log = logging.getLogger("shadowswap.dualwrite.writer")

Jobs = list[list[Item]]  # the items of each write call, in order


class Applier:
    """Applies the items offered to it, on its own thread; see the module docstring.

    ``stores`` are the writer's stores by kind (each item's destination and its source).
    Items are leased to ``owner`` when the writer appends them; this applier acks, fails or
    releases them as that owner.
    """

    def __init__(
        self,
        outbox: Outbox,
        stores: Mapping[str, VectorStore],
        settings: SettingsSource,
        breaker: Breaker,
        sink: Metrics,
        clock: Clock,
        figures: OutboxSampler,
        *,
        owner: str,
        max_batch_items: int = 100,
        max_backlog_items: int = 1000,
        name: str = "dualwrite-applier",
        recent: RecentWrites | None = None,
    ) -> None:
        self.owner = owner
        self._recent = recent
        self._outbox = outbox
        self._stores = dict(stores)
        self._settings = settings
        self._breaker = breaker
        self._sink = sink
        self._clock = clock
        self._figures = figures
        self._replayer = Replayer(
            outbox, self._store_of, settings, sink, clock,
            owner=owner, grace_s=0.0, later=self.has_newer,
        )  # fmt: skip
        self._max_batch = max_batch_items
        self._max_backlog = max_backlog_items
        self._jobs: Jobs = []
        self._backlog = 0
        self._closed = False
        self._offered = 0  # jobs accepted so far
        self._handled = 0  # jobs applied (or given back) so far (FIFO: a prefix of them)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Items offered and not yet taken into a batch."""
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
        """Queue one write's items (leased to `owner`). False when closed or the backlog is
        full: the items are then released to ``replay-outbox``."""
        with self._cond:
            accepted = not self._closed and self._backlog + len(job) <= self._max_backlog
            if accepted:
                self._jobs.append(job)
                self._offered += 1
                self._backlog += len(job)
                self._cond.notify_all()
        if not accepted:
            self._outbox.release(self.owner, [i.seq for i in job])
        return accepted

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
            return False  # called from inside a batch: waiting would wait for itself
        with self._cond:
            return self._cond.wait_for(done, timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Apply what is queued (up to ``timeout_s``), then stop the thread."""
        self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    # -- the thread -----------------------------------------------------------------------
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
                self._settle(batch)
                with self._cond:
                    self._handled += len(batch)
                    self._cond.notify_all()

    def _lag(self, items: list[Item]) -> None:
        """These changes stay in the outbox: the target is behind on them for now."""
        if self._recent is not None:
            for tenant, ids in _by_tenant(items).items():
                self._recent.lag(tenant, ids)

    def _settle(self, jobs: Jobs) -> None:
        """The writer's documents are no longer pending: applied, or left to the replay
        (one `settle` per write, as each write made one `begin`)."""
        if self._recent is not None:
            for job in jobs:
                for tenant, ids in _by_tenant(job).items():
                    self._recent.settle(tenant, ids)

    def _apply(self, jobs: Jobs) -> None:
        """One batch of the writer's items, through the breaker, by the replay rules."""
        items = [item for job in jobs for item in job]
        if not items:
            return
        settings = self._settings.current()
        config = BreakerConfig(settings.cb_threshold, settings.cb_window_s)
        seqs = [i.seq for i in items]
        kinds = ",".join(sorted({i.destination for i in items}))
        fields = {"writes": len(jobs), "items": len(items), "backend": kinds}
        ticket = self._breaker.attempt(config)
        if ticket is None:  # opened since these writes were made: leave them to the replay
            for _ in jobs:
                self._sink.dual_write_skipped("circuit_open")
            self._outbox.release(self.owner, seqs)
            self._lag(items)
            self._figures.report_quietly(self._outbox)
            return
        deadline_s = settings.dual_write_timeout_ms / 1000.0
        started = self._clock.monotonic()
        try:
            report = self._replayer.apply(items)
        except Exception as exc:  # noqa: BLE001 - the items go back to the replay
            problem: str | None = describe(exc)
            failed = len(items)
            self._outbox.release(self.owner, seqs)
        else:
            problem, failed = report.stopped, report.failed
        elapsed = self._clock.monotonic() - started
        slow = elapsed > deadline_s
        # Items the backend refused one by one (a dimension it does not hold) say nothing of
        # its health: only an unreachable, failing or slow backend counts against the breaker.
        self._breaker.record(ticket, ok=problem is None and not slow, config=config)
        if slow and problem is None:
            write_log.warning(
                "deferred write slower than RETRIEVAL_DUAL_WRITE_TIMEOUT_MS",
                extra={**fields, "elapsed_ms": round(elapsed * 1000), "deadline_s": deadline_s},
            )
        if problem is not None or failed:
            self._lag(items)  # which ones failed is the replay's to know: all of them
            for _ in range(len(jobs) if failed == len(items) else 1):
                self._sink.dual_write_error()
            write_log.warning(
                "deferred write failed; the failed changes stay in the outbox for replay-outbox",
                extra={**fields, "failed": failed, "detail": (problem or "items refused")[:300]},
            )
        self._figures.report_quietly(self._outbox)

    def _store_of(self, kind: str) -> VectorStore:
        store = self._stores.get(kind)
        if store is None:
            raise ConfigError(
                "RETRIEVAL_TARGET_BACKEND", kind, "this writer has no store of that kind"
            )
        return store


def _by_tenant(items: list[Item]) -> dict[str, list[str]]:
    """The items' document ids, by tenant."""
    out: dict[str, list[str]] = {}
    for item in items:
        out.setdefault(item.tenant, []).append(item.doc_id)
    return out

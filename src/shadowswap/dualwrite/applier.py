"""The dual writer's background applier: one long-lived object, built once with the writer,
that owns one thread and applies the writer's own outbox items to the deferred backend in
batches, so that callers never wait for that backend; and, whenever it has nothing of its
own to apply and the breaker lets it, drains what else the outbox holds.

The writer hands it the items of each write (`Applier.offer`) and never hears back: the
applier applies them with the stores and the outbox itself, through the breaker, by the
replay rules (one long-lived `shadowswap.dualwrite.replay.Replayer`, without grace: it only
gets items whose synchronous write is done), acks them, and reports errors and the outbox
figures to the metrics sink.

Why one thread with batches: writes arrive one by one on many request threads, but a batch
costs the backend about as much as a single document (one round trip, one commit), so
whatever accumulated while the previous batch was in flight goes in the next one. One thread
also means one batch at a time: a change is never applied after a newer change of the same
document that this applier holds (`Applier.has_newer` lets the replay rules rely on it).

Fair order (issue 16): the items wait in one queue per tenant, cut into chunks of at most a
batch, and a batch takes one chunk from each waiting tenant in turn (round robin). So one
tenant's 10,000 items delay another tenant's single item by one batch, not by 100; a
tenant's own chunks stay in write order, and a document belongs to one tenant, so a
document's changes are still applied in order. The backlog is bounded per tenant: past
``max_backlog_items`` of its own, a tenant's offer is refused and its items released to the
outbox, where the drain below takes them; another tenant's backlog is not touched. (Every
queued item is also an outbox item, so all the queues together hold at most the outbox's
capacity.) `mark` and `wait_applied` let a caller wait until every write offered before a
moment was handled, whatever arrives after (the dual writer does so when a tenant's
synchronous backend changes); writes are numbered, so this holds in round-robin order too.

Continuous drain (issue 16): when its own queues are empty and the breaker does not refuse,
the applier claims what else the outbox holds, as ``replay-outbox`` does (items released
past the backlog, left while the breaker was open or the target down, of a writer that died
once its lease expired) and applies them by the same replay rules, *with* the replay's grace
(an unleased item may belong to a write still in progress) under its own lease owner
(``<owner>:drain``, so it never takes the items this writer holds). After a target outage
the drain's first claim is the breaker's half-open trial, so the outbox empties by itself
once the target is back; ``replay-outbox`` (cron) is the fallback, not the path. Pacing so a
target that just came back is not hammered: one batch (``max_batch_items``) at a time with a
pause (``drain_pause_s``) between, fresh writes always first, a new pass over the outbox at
most every ``drain_poll_s`` when the last one found nothing to do, and items that failed
retried after ``drain_retry_s``. These waits are real time (a condition variable's), not the
injected clock, which stamps leases and runs the breaker. The drain is a replay: its
failures count against the breaker but not as ``dual_write_error`` (no caller's write).

A batch that fails, or takes longer than ``RETRIEVAL_DUAL_WRITE_TIMEOUT_MS``, counts against
the breaker; a failed batch leaves its items in the outbox (attempts + 1, last error); a
batch whose breaker opened since its writes were made is released to the outbox and each of
its writes counted as skipped (``circuit_open``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shadowswap.clock import Clock
from shadowswap.dualwrite.breaker import Breaker, BreakerConfig, Ticket
from shadowswap.dualwrite.figures import OutboxSampler
from shadowswap.dualwrite.logfields import describe, error_fields
from shadowswap.dualwrite.outbox import Item, Outbox
from shadowswap.dualwrite.replay import Replayer
from shadowswap.errors import ConfigError, MissingDependency
from shadowswap.metrics import Metrics
from shadowswap.settings.config import Settings, SettingsSource
from shadowswap.shadow.recent import RecentWrites
from shadowswap.stores.base import VectorStore

log = logging.getLogger("shadowswap.dualwrite.applier")
# The lines about a write's deferred leg keep the writer's logger name, as before.
write_log = logging.getLogger("shadowswap.dualwrite.writer")


@dataclass(frozen=True)
class _Chunk:
    """At most one batch of one write's items (one tenant's); ``write`` numbers the write."""

    write: int
    items: list[Item]


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
        drain: bool = True,
        drain_poll_s: float = 1.0,
        drain_pause_s: float = 0.05,
        drain_retry_s: float = 30.0,
        lease_s: float = 60.0,
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
        self._drainer = Replayer(
            outbox, self._store_of, settings, sink, clock,
            owner=f"{owner}:drain", lease_s=lease_s, later=self.has_newer,
        )  # fmt: skip
        self._drain = drain
        self._drain_poll_s = drain_poll_s
        self._drain_pause_s = drain_pause_s
        self._drain_retry_s = drain_retry_s
        self._lease_s = lease_s
        self._pass: tuple[int, int] | None = None  # (cursor, upto) of the drain's pass
        self._drain_at = 0.0  # time.monotonic() before which the drain waits
        self._max_batch = max(1, max_batch_items)
        self._max_backlog = max_backlog_items
        self._queues: dict[str, deque[_Chunk]] = {}
        self._turns: deque[str] = deque()  # tenants with chunks waiting, in turn
        self._backlogs: dict[str, int] = {}
        self._unhandled: dict[int, int] = {}  # write number -> its chunks not handled yet
        self._next_write = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Items offered and not yet taken into a batch."""
        with self._cond:
            return sum(self._backlogs.values())

    def has_room(self, items: int, tenant: str = "") -> bool:
        """Whether an offer of ``items`` of ``tenant`` would be queued now."""
        with self._cond:
            return not self._closed and self._backlogs.get(tenant, 0) + items <= self._max_backlog

    def has_newer(self, key: tuple[str, str], seq: int) -> bool:
        """Whether a change of document ``key`` newer than ``seq`` waits to be applied."""
        with self._cond:
            queue = self._queues.get(key[0], ())
            return any(i.key == key and i.seq > seq for chunk in queue for i in chunk.items)

    def offer(self, job: list[Item]) -> bool:
        """Queue one write's items (leased to `owner`, all of one tenant). False when closed
        or the tenant's backlog is full: the items are then released to the outbox."""
        tenant = job[0].tenant if job else ""
        with self._cond:
            accepted = (
                not self._closed and self._backlogs.get(tenant, 0) + len(job) <= self._max_backlog
            )
            if accepted and job:
                write = self._next_write
                self._next_write += 1
                queue = self._queues.setdefault(tenant, deque())
                if not queue:
                    self._turns.append(tenant)
                chunks = [job[i : i + self._max_batch] for i in range(0, len(job), self._max_batch)]
                queue.extend(_Chunk(write, chunk) for chunk in chunks)
                self._unhandled[write] = len(chunks)
                self._backlogs[tenant] = self._backlogs.get(tenant, 0) + len(job)
                self._cond.notify_all()
        if not accepted:
            self._outbox.release(self.owner, [i.seq for i in job])
        return accepted

    def mark(self) -> int:
        """A point in the stream of offers, for `wait_applied`."""
        with self._cond:
            return self._next_write

    def wait_applied(self, mark: int, timeout_s: float | None = None) -> bool:
        """Wait until every write offered before ``mark`` was handled (applied, or given back
        to the outbox); later offers are not waited for. False on timeout."""
        return self._wait(lambda: all(w >= mark for w in self._unhandled), timeout_s)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing offered is left to apply, including what is offered meanwhile;
        False on timeout. (What the drain takes from the outbox is not waited for.)"""
        return self._wait(lambda: not self._unhandled, timeout_s)

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
    def _take(self) -> list[_Chunk] | None:
        """The next batch, one chunk per tenant in turn; [] when it is the drain's turn;
        None once closed."""
        with self._cond:
            while not self._turns and not self._closed:
                if self._drain:
                    wait = self._drain_at - time.monotonic()
                    if wait <= 0:
                        return []
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            if not self._turns:
                return None
            batch: list[_Chunk] = []
            size = 0
            while self._turns:
                tenant = self._turns[0]
                queue = self._queues[tenant]
                if batch and size + len(queue[0].items) > self._max_batch:
                    break
                chunk = queue.popleft()
                self._turns.popleft()
                if queue:
                    self._turns.append(tenant)
                else:
                    del self._queues[tenant]
                batch.append(chunk)
                size += len(chunk.items)
                self._backlogs[tenant] -= len(chunk.items)
                if not self._backlogs[tenant]:
                    del self._backlogs[tenant]
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            if not batch:
                self._drain_step()
                continue
            try:
                self._apply(batch)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one batch
                log.error("background apply failed", extra={"error": type(exc).__name__})
            finally:
                self._settle(batch)
                with self._cond:
                    for chunk in batch:
                        left = self._unhandled[chunk.write] - 1
                        if left:
                            self._unhandled[chunk.write] = left
                        else:
                            del self._unhandled[chunk.write]
                    self._cond.notify_all()

    # -- the drain ------------------------------------------------------------------------
    def _drain_step(self) -> None:
        """One drain batch, or the start or end of a pass (module docstring)."""
        try:
            paused = self._drain_batch()
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any one batch
            log.warning("outbox drain failed; retried later", extra=error_fields(exc))
            paused = False
        if not paused:
            self._pass = None
        pause = self._drain_pause_s if paused else self._drain_poll_s
        self._drain_at = time.monotonic() + pause

    def _drain_batch(self) -> bool:
        """True when a batch was claimed and applied (the pass goes on after a pause)."""
        claimed = self._drain_claim()
        if claimed is None:
            return False
        items, settings, ticket = claimed
        return self._drain_apply(items, settings, ticket)

    def _drain_claim(self) -> tuple[tuple[Item, ...], Settings, Ticket] | None:
        """The next items of the pass, leased to the drain, with the breaker's ticket."""
        if len(self._stores) < 2:  # a writer without a target has nothing to drain into
            return None
        settings = self._settings.current()
        config = BreakerConfig(settings.cb_threshold, settings.cb_window_s)
        if self._breaker.refuses(config):
            return None
        if self._pass is None:
            upto = self._outbox.last_seq()
            if upto == 0:
                return None
            self._pass = (0, upto)
        cursor, upto = self._pass
        claim = self._outbox.claim(
            self._drainer.owner, limit=self._max_batch, after=cursor, upto=upto,
            now=self._clock.now(), lease_s=self._lease_s, retry_s=self._drain_retry_s,
        )  # fmt: skip
        self._pass = (claim.cursor, upto)
        if not claim.items:
            return None
        ticket = self._breaker.attempt(config)
        if ticket is None:  # opened meanwhile, or another call holds the half-open trial
            self._outbox.release(self._drainer.owner, [i.seq for i in claim.items])
            return None
        return claim.items, settings, ticket

    def _drain_apply(self, items: tuple[Item, ...], settings: Settings, ticket: Ticket) -> bool:
        """Apply drained items by the replay rules; tell the breaker how the target did."""
        config = BreakerConfig(settings.cb_threshold, settings.cb_window_s)
        owner, seqs = self._drainer.owner, [i.seq for i in items]
        started = self._clock.monotonic()
        problem: str | None
        try:
            report = self._drainer.apply(items)
        except (ConfigError, MissingDependency) as exc:  # not the target's health: no failure
            self._outbox.release(owner, seqs)
            self._breaker.record(ticket, ok=True, config=config)
            log.warning(
                "outbox drain cannot apply these items with this configuration; they stay "
                "for replay-outbox",
                extra={"items": len(seqs), **error_fields(exc)},
            )
            return False
        except Exception as exc:  # noqa: BLE001 - the items stay for the next pass
            problem = describe(exc)
            self._outbox.release(owner, seqs)
        else:
            problem = report.stopped
        slow = self._clock.monotonic() - started > settings.dual_write_timeout_ms / 1000.0
        self._breaker.record(ticket, ok=problem is None and not slow, config=config)
        if problem is not None:
            log.warning(
                "outbox drain stopped: the target failed; the items stay in the outbox",
                extra={"items": len(seqs), "detail": problem[:300]},
            )
        self._figures.report_quietly(self._outbox)
        return problem is None

    def _lag(self, items: list[Item]) -> None:
        """These changes stay in the outbox: the target is behind on them for now."""
        if self._recent is not None:
            for tenant, ids in _by_tenant(items).items():
                self._recent.lag(tenant, ids)

    def _settle(self, chunks: list[_Chunk]) -> None:
        """The writer's documents are no longer pending: applied, or left to the replay
        (each document of a write settled once, as each write made one `begin`)."""
        if self._recent is not None:
            for chunk in chunks:
                for tenant, ids in _by_tenant(chunk.items).items():
                    self._recent.settle(tenant, ids)

    def _apply(self, chunks: list[_Chunk]) -> None:
        """One batch of the writer's items, through the breaker, by the replay rules."""
        items = [item for chunk in chunks for item in chunk.items]
        jobs = {chunk.write for chunk in chunks}  # the writes it holds (some of them in part)
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

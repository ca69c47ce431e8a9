"""The dual writer: every write goes to the backend serving the tenant's reads, and is carried
to the other backend without ever failing, slowing or losing anything because of it.

Which backend is written synchronously and which is *deferred* comes from
`shadowswap.policy.plan` (CONTRACT §1), asked once per call with the settings of that call.
The synchronous write's failure is the caller's failure. The deferred write never is.

Ordering, and why
    1. Each change is appended to the outbox (one commit), then the synchronous
       backend is written. When the synchronous write fails, the appended items are
       discarded. Appending first means a crash between the two leaves an item for a write
       the source may not hold (recognised by the replay rules) rather than a committed
       write that no item describes (drift only reconcile would find). The append runs on
       the caller's thread: running it alongside the synchronous write on another thread
       was measured slower at p99 on a loaded 2-core machine (the hand-off between threads
       costs more than the fsync it overlaps; ``benchmarks/bench_dualwrite.py``).
    2. The caller gets its answer. Nothing else is on its path: a slow, hung or dead target
       costs the caller nothing (``benchmarks/bench_dualwrite.py`` measures it).
    3. Breaker closed: the items were appended *leased to this writer*, and handed to its
       background `shadowswap.dualwrite.applier.Applier` (one, built with the writer; the
       writer never hears back from it), which applies them to the deferred backend within
       milliseconds, one batch (up to 100 changes) at a time, in write order, through the
       breaker, by the replay rules (`shadowswap.dualwrite.replay`), then acks them. A batch
       that fails, or takes longer than ``RETRIEVAL_DUAL_WRITE_TIMEOUT_MS``, counts against
       the breaker; a failed batch leaves its items for ``replay-outbox`` (attempts + 1, last
       error). Breaker open: the items are appended unleased, and the write is counted as
       skipped (``circuit_open``). Whatever is left in the outbox (breaker open, target down,
       a backlog full) the applier drains by itself as soon as the breaker lets it
       (`shadowswap.dualwrite.applier`, "Continuous drain"); ``replay-outbox`` is the
       fallback. The outbox is shared fairly: every tenant has a reserved share
       (``RETRIEVAL_DUAL_WRITE_OUTBOX_TENANT_SHARE``, `shadowswap.dualwrite.outbox`).

Why not write the deferred backend inline after the synchronous write: the caller would wait
for the target on every write (a 300 ms target under a 500 ms deadline would add 300 ms to
each write, forever, without ever opening the breaker), which runbook 000 forbids ("none of
that may fail or slow the caller's write"). Why the deadline is not a cancellation: a batch
is never abandoned, so batches never overlap and changes of one document are applied in
order; a hung backend holds the applier's thread (until the adapter's own timeout, 10 s for
Chroma), its backlog fills, and later writes go to the outbox for ``replay-outbox``.
Why append *before* acknowledging rather than keep the change in memory: a crash right after
the acknowledgement would lose it (``tests/dualwrite/test_crash.py``). Why the lease: a
replay (cron) leaves the items the writer is applying alone; if the writer dies, its leases
expire (60 s) and the replay takes them.

Which store plays which role follows the *kinds* the settings name, as the read router does:
after a swap (runbook 001: ``RETRIEVAL_BACKEND`` and ``RETRIEVAL_TARGET_BACKEND`` exchanged)
the store the writer was built with as target is the one written synchronously.

When a tenant's synchronous backend changes (a cutover step takes it, a swap, a rollback)
    the first write of that tenant under the new plan waits until the applier has handled
    every write offered before it (at most 10 s; milliseconds when the backends are healthy),
    then writes. Why: those pending items carry older changes *to the backend that is now
    written synchronously*, copied from the backend that was. Applied after the new write,
    one would overwrite it, and the replay rules could not tell (the old source still holds
    the old change); ``tests/dualwrite/test_flip.py`` shows the write it would lose. The
    pending items all go to the new synchronous backend, so a wait that lasts is a slow new
    synchronous backend, which the write would wait for anyway. The plan is remembered per
    tenant in this process; processes reload settings independently, so two processes that
    write the *same document* within the reload skew (about one poll interval) with
    different plans are not ordered: docs/dual-write.md says what to do at a flip.

A batch too large to defer (issue 16)
    A write with more changes than one tenant may ever hold in the outbox
    (`shadowswap.dualwrite.outbox.max_deferrable`: ``RETRIEVAL_DUAL_WRITE_OUTBOX_MAX`` minus
    one tenant share, 900 by default) is refused whole, before anything is written, with
    `shadowswap.errors.BatchTooLarge` (HTTP 413), which says the limit and how to split.
    Stored in part, the rest would be dropped even with a healthy target and an empty
    outbox: a silent half-write that only reconcile repairs. Splitting it here instead would
    make the caller wait for the target to apply each part (the outbox has no room for the
    next one until then), and the target's speed must never slow a write. The limit depends
    only on the settings, never on the target's health or the outbox's fill, so retrying
    the same batch gets the same answer (no ``Retry-After``: smaller batches are the fix).
    Below that limit, while the target is behind and the tenant's share is full, that
    tenant's further changes are dropped, counted and recorded for reconcile (outcome
    ``dropped``); another tenant's share is never used for them.

If the process dies between the append and the synchronous commit, an item may describe a
change the synchronous backend never committed: replay applies a change only while the
source backend still holds it and leaves mismatching items alone while they are younger than
its in-flight grace.

Every document is canonicalised (unit vectors under cosine) before its content hash is put in
the outbox, so the hash is the one both stores hold: the idempotency key
``(tenant, doc_id, content_hash)`` of runbook 000.

Metrics: ``dual_write_error`` for each write whose deferred apply failed (or whose change could
not be recorded), ``dual_write_skipped("circuit_open")`` for each write the breaker refused,
and the outbox size and oldest age after every append and applied batch, for listeners (the
rehearsal's timeline). The exposition reads the outbox's stored figures at scrape time
(`DualWriter.outbox_stats`), so size and drops made by another process (a replay expiring
items) show too.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from shadowswap.clock import Clock
from shadowswap.dualwrite.applier import Applier
from shadowswap.dualwrite.breaker import Breaker, BreakerConfig
from shadowswap.dualwrite.figures import OutboxSampler
from shadowswap.dualwrite.logfields import error_fields
from shadowswap.dualwrite.outbox import (
    Appended,
    Change,
    Item,
    Key,
    Op,
    Outbox,
    OutboxStats,
    max_deferrable,
    tenant_share,
)
from shadowswap.errors import BatchTooLarge, ConfigError, InvalidInput, ShadowswapError
from shadowswap.metrics import Metrics
from shadowswap.policy import Role, plan
from shadowswap.settings.config import Settings, SettingsSource
from shadowswap.shadow.recent import RecentWrites
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore, canonical_batch
from shadowswap.values import Document, check_doc_ids, check_tenant

log = logging.getLogger("shadowswap.dualwrite.writer")

#: What happened to the deferred write of one call.
#: none        dual write does not apply to this tenant (or is off)
#: deferred    in the outbox, being applied by this writer in the background
#: queued      in the outbox for replay-outbox (breaker open, or the applier is backlogged)
#: dropped     some changes were refused by a full outbox: recorded for reconcile
#: unrecorded  the outbox itself failed: tried on the backend directly, logged with doc ids
Outcome = Literal["none", "deferred", "queued", "dropped", "unrecorded"]
_LOGGED_IDS = 20
#: How long the first write after a change of synchronous backend waits for older deferred
#: changes (module docstring). Past it the write goes on and a warning says so.
FLIP_WAIT_S = 10.0


@dataclass(frozen=True)
class WriteResult:
    """The answer to one dual write. ``written``/``unchanged`` are the synchronous backend's
    (for a delete, ``written`` is the number of documents it removed)."""

    tenant: str
    op: Op
    sync: str
    written: int
    unchanged: int
    deferred: str | None
    outcome: Outcome
    queued: int = 0
    dropped: int = 0
    trace_id: str | None = None


class DualWriter:
    """Writes to the synchronous backend and carries each change to the other one.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from shadowswap.clock import SystemClock
    >>> from shadowswap.settings.config import StaticSettings, load_settings
    >>> from shadowswap.dualwrite import Breaker, SqliteOutbox
    >>> from shadowswap.metrics import Metrics
    >>> from shadowswap.stores.faiss import FaissStore
    >>> from shadowswap.stores.memory import MemoryStore
    >>> settings = StaticSettings(load_settings(environ={
    ...     "RETRIEVAL_BACKEND": "memory", "RETRIEVAL_TARGET_BACKEND": "faiss",
    ...     "FF_RETRIEVAL_DUAL_WRITE": "ON"}))
    >>> clock, sink = SystemClock(), Metrics.null()
    >>> target = FaissStore(tempfile.mkdtemp())
    >>> outbox = SqliteOutbox(Path(tempfile.mkdtemp()) / "outbox.sqlite3")
    >>> writer = DualWriter(MemoryStore(), target, settings, outbox,
    ...                     Breaker(clock, sink.breaker_state), sink, clock)
    >>> writer.upsert("acme", [Document("acme", "a", [1.0, 0.0])]).outcome
    'deferred'
    >>> writer.flush(5.0), target.count("acme")
    (True, 1)
    >>> writer.close(); outbox.close()
    """

    def __init__(
        self,
        primary: VectorStore,
        target: VectorStore | None,
        settings: SettingsSource,
        outbox: Outbox,
        breaker: Breaker,
        sink: Metrics,
        clock: Clock,
        *,
        lease_s: float = 60.0,
        max_batch_items: int = 100,
        max_backlog_items: int = 1000,
        recent: RecentWrites | None = None,
        drain_retry_s: float = 30.0,
    ) -> None:
        if target is not None and target.metric != primary.metric:
            raise ConfigError(
                "RETRIEVAL_METRIC",
                primary.metric.value,
                f"the target store uses {target.metric.value!r}; both stores must use one metric "
                "so that a document has one content hash",
            )
        if target is not None and target.kind == primary.kind:
            raise ConfigError(
                "RETRIEVAL_TARGET_BACKEND", target.kind, "the target must be another kind of store"
            )
        self._stores: dict[Role, VectorStore | None] = {"primary": primary, "target": target}
        self._by_kind = {s.kind: s for s in (primary, target) if s is not None}
        self._metric: Metric = primary.metric
        self._settings = settings
        self._outbox = outbox
        self._breaker = breaker
        self._sink = sink
        self._clock = clock
        self._lease_s = lease_s
        #: the process's write sequence the shadow comparison reads (`shadowswap.shadow.recent`)
        self.recent = recent if recent is not None else RecentWrites()
        self.owner = f"writer:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dualwrite-direct")
        self._figures = OutboxSampler(sink, clock)
        self._applier = Applier(
            outbox, self._by_kind, settings, breaker, sink, clock, self._figures,
            owner=self.owner, max_batch_items=max_batch_items, max_backlog_items=max_backlog_items,
            recent=self.recent, drain_retry_s=drain_retry_s, lease_s=lease_s,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._sync_kinds: dict[str, str] = {}  # tenant -> kind its last write went to
        try:
            self._figures.report(outbox.stats())
        except ShadowswapError as exc:
            log.error(
                "cannot read the outbox", extra={"outbox": outbox.location, "error": str(exc)}
            )

    # -- the boundary ---------------------------------------------------------------------
    def upsert(
        self, tenant: str, documents: Sequence[Document], trace_id: str | None = None
    ) -> WriteResult:
        """Write ``documents`` of ``tenant``; raises only when the synchronous backend fails
        (or the input is bad)."""
        check_tenant(tenant)
        settings = self._settings.current()
        sync, deferred = self._plan(settings, tenant)
        if deferred is None:
            ids = [d.doc_id for d in documents]
            self.recent.begin(tenant, ids)
            try:
                report = sync.upsert(tenant, documents)
            finally:
                self.recent.settle(tenant, ids)
            return WriteResult(
                tenant, "upsert", sync.kind, report.written, report.unchanged, None, "none",
                trace_id=trace_id,
            )  # fmt: skip
        docs, _ = canonical_batch(tenant, documents, self._metric, kind=sync.kind)
        _check_deferrable(settings, "documents", len(docs))
        written = unchanged = 0

        def write_sync() -> None:
            nonlocal written, unchanged
            report = sync.upsert(tenant, docs)
            written, unchanged = report.written, report.unchanged

        job = _Job(
            settings, tenant, "upsert", [Change.upsert(d, deferred.kind, trace_id) for d in docs],
            write_sync, lambda: deferred.upsert(tenant, docs), deferred.kind, trace_id,
        )  # fmt: skip
        outcome, queued, dropped = self._dual(job)
        return WriteResult(
            tenant, "upsert", sync.kind, written, unchanged, deferred.kind, outcome, queued,
            dropped, trace_id,
        )  # fmt: skip

    def delete(
        self, tenant: str, doc_ids: Sequence[str], trace_id: str | None = None
    ) -> WriteResult:
        """Delete ``doc_ids`` of ``tenant``; deletes travel exactly as upserts do."""
        check_tenant(tenant)
        ids = check_doc_ids(doc_ids)
        settings = self._settings.current()
        sync, deferred = self._plan(settings, tenant)
        if deferred is None:
            self.recent.begin(tenant, ids)
            try:
                removed = sync.delete(tenant, ids)
            finally:
                self.recent.settle(tenant, ids)
            return WriteResult(
                tenant, "delete", sync.kind, removed, 0, None, "none", trace_id=trace_id
            )
        _check_deferrable(settings, "doc_ids", len(ids))
        removed = 0

        def write_sync() -> None:
            nonlocal removed
            removed = sync.delete(tenant, ids)

        changes = [Change.delete(tenant, d, deferred.kind, trace_id) for d in ids]
        job = _Job(
            settings, tenant, "delete", changes, write_sync,
            lambda: deferred.delete(tenant, ids), deferred.kind, trace_id,
        )  # fmt: skip
        outcome, queued, dropped = self._dual(job)
        return WriteResult(
            tenant, "delete", sync.kind, removed, 0, deferred.kind, outcome, queued, dropped,
            trace_id,
        )  # fmt: skip

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the background applier has handled every write made so far (applied,
        or left for replay-outbox); False on timeout. For tests and graceful shutdown."""
        return self._applier.flush(timeout_s)

    def outbox_stats(self) -> OutboxStats:
        """Expire old items, then the stored outbox size, oldest age and drops (also those
        made by other processes). Read by ``/metrics`` at scrape time and by ``/status``;
        raises `shadowswap.errors.StoreError` when the outbox cannot be read."""
        settings = self._settings.current()
        expired = self._outbox.expire(now=self._clock.now(), ttl_s=settings.outbox_ttl_s)
        _log_expired(expired, settings)
        stats = self._outbox.stats()
        self._figures.report(stats)
        if stats.size == 0:  # every change left to the outbox has reached its backend
            self.recent.caught_up()
        return stats

    @property
    def breaker(self) -> Breaker:
        return self._breaker

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def close(self, timeout_s: float = 30.0) -> None:
        """Apply what is pending (up to ``timeout_s``), then stop the worker threads. Items
        still leased to this writer are taken by replay-outbox once their lease expires."""
        self._pool.shutdown(wait=True)
        self._applier.close(timeout_s)

    # -- the caller's path ----------------------------------------------------------------
    def _plan(self, settings: Settings, tenant: str) -> tuple[VectorStore, VectorStore | None]:
        """The policy, asked once: the synchronous store and the deferred one (or None)."""
        p = plan(settings, tenant)
        has_target = p.other_kind is not None
        sync = self._store(p.read, p.sync_kind, has_target)
        deferred = (
            self._store(p.other, p.deferred_kind, has_target)
            if p.deferred_kind is not None
            else None
        )
        self._follow(tenant, sync.kind)
        return sync, deferred

    def _store(self, role: Role, kind: str, has_target: bool) -> VectorStore:
        """The store of the kind the settings give ``role`` (they may name the two kinds the
        other way round from how this writer was built: a swap); else the one built for it."""
        store = self._by_kind.get(kind) if has_target else None
        store = store or self._stores[role]
        if store is None:
            raise ConfigError(
                "RETRIEVAL_TARGET_BACKEND",
                "",
                "dual write needs the target store, but this writer was built without one",
            )
        return store

    def _follow(self, tenant: str, kind: str) -> None:
        """Remember the tenant's synchronous backend; when it changed, wait for the older
        deferred changes first (module docstring)."""
        with self._lock:
            previous = self._sync_kinds.get(tenant)
            self._sync_kinds[tenant] = kind
        if previous is None or previous == kind:
            return
        started = time.monotonic()
        applied = self._applier.wait_applied(self._applier.mark(), FLIP_WAIT_S)
        try:  # and for a direct write the outbox could not record (one worker: FIFO)
            left = max(0.0, FLIP_WAIT_S - (time.monotonic() - started))
            self._pool.submit(_nothing).result(left)
        except (RuntimeError, TimeoutError):  # shut down, or still busy
            applied = False
        fields = {"tenant": tenant, "from_backend": previous, "to_backend": kind}
        waited_ms = round((time.monotonic() - started) * 1000, 1)
        if applied:
            log.debug("synchronous backend changed", extra={**fields, "waited_ms": waited_ms})
        else:
            log.warning(
                "synchronous backend changed while older deferred changes were still being "
                "applied to it; writing anyway: run shadowswap reconcile for this tenant",
                extra={**fields, "waited_ms": waited_ms},
            )

    def _dual(self, job: _Job) -> tuple[Outcome, int, int]:
        """Append, write synchronously, hand the deferred side on. The documents are pending
        in `recent` from before the synchronous write until whoever carries the deferred
        side has settled them (the applier, the direct path, or this call)."""
        ids = [c.doc_id for c in job.changes]
        self.recent.begin(job.tenant, ids)
        handed: set[str] = set()  # settled later, by the applier or the direct path
        outcome: Outcome | None = None
        try:
            outcome, queued, dropped = self._dual_write(job, handed)
            return outcome, queued, dropped
        finally:
            left = [d for d in ids if d not in handed] if handed else ids
            if left:
                if outcome is not None and outcome != "deferred":  # left to the outbox
                    self.recent.lag(job.tenant, left)
                self.recent.settle(job.tenant, left)

    def _dual_write(self, job: _Job, handed: set[str]) -> tuple[Outcome, int, int]:
        settings = job.settings
        refused = self._breaker.refuses(BreakerConfig(settings.cb_threshold, settings.cb_window_s))
        own = not refused and self._applier.has_room(len(job.changes), job.tenant)
        appended = self._append(job, self.owner if own else None)
        try:
            job.write_sync()
        except BaseException:
            self._discard(appended)
            raise
        if refused:
            self._sink.dual_write_skipped("circuit_open")
        if appended is None:
            if not refused:
                self._pool.submit(self._direct, job)
                handed.update(c.doc_id for c in job.changes)
            return "unrecorded", 0, 0
        queued, dropped = len(appended.seqs), len(appended.refused)
        outcome: Outcome = "queued"
        if own and appended.seqs:
            stored = zip(appended.seqs, job.changes[:queued], strict=True)
            items = [Item.of(seq, change, appended.created_at) for seq, change in stored]
            if self._applier.offer(items):  # else closed or backlogged meanwhile: the
                outcome = "deferred"  # applier released them, replay-outbox will take them
                handed.update(i.doc_id for i in items)
        return ("dropped" if dropped else outcome), queued, dropped

    def _append(self, job: _Job, owner: str | None) -> Appended | None:
        settings, changes, fields = job.settings, job.changes, job.fields()
        try:
            appended = self._outbox.append(
                changes,
                now=self._clock.now(),
                capacity=settings.outbox_max,
                ttl_s=settings.outbox_ttl_s,
                lease_owner=owner,
                lease_s=self._lease_s,
                share=tenant_share(settings.outbox_max, settings.outbox_tenant_share),
            )
        except Exception as exc:  # noqa: BLE001 - the deferred side never fails the caller
            self._sink.dual_write_error()
            log.error(
                "outbox append failed: the change is recorded nowhere but here; run "
                "shadowswap reconcile for these documents",
                extra={**fields, **error_fields(exc), **_ids(changes)},
            )
            return None
        if appended.refused:
            log.warning(
                "outbox full: change dropped and recorded for reconcile",
                extra={
                    **fields,
                    **_ids(list(appended.refused)),
                    "capacity": settings.outbox_max,
                    "tenant_share": tenant_share(settings.outbox_max, settings.outbox_tenant_share),
                    "reason": "full",
                },
            )
        _log_expired(appended.expired, settings)
        self._figures.report(appended.stats)
        return appended

    def _discard(self, appended: Appended | None) -> None:
        """The synchronous write failed: take back what was appended for it."""
        try:
            if appended is not None and appended.seqs:
                self._outbox.discard(appended.seqs)
        except Exception as exc:  # noqa: BLE001 - replay recognises such items anyway
            log.warning("could not discard outbox items of a failed write", extra=error_fields(exc))

    # -- when the outbox failed ------------------------------------------------------------
    def _direct(self, job: _Job) -> None:
        """The outbox failed: try the backend directly, once, so the change may still land."""
        ids = [c.doc_id for c in job.changes]
        applied = False
        try:
            applied = self._try_direct(job)
        finally:
            if not applied:  # recorded nowhere: the target is behind until a reconcile
                self.recent.lag(job.tenant, ids)
            self.recent.settle(job.tenant, ids)

    def _try_direct(self, job: _Job) -> bool:
        settings = job.settings
        config = BreakerConfig(settings.cb_threshold, settings.cb_window_s)
        ticket = self._breaker.attempt(config)
        if ticket is None:
            return False
        try:
            job.write_deferred()
        except Exception as exc:  # noqa: BLE001 - logged; the change is lost for this backend
            self._breaker.record(ticket, ok=isinstance(exc, InvalidInput), config=config)
            self._sink.dual_write_error()
            log.error(
                "direct deferred write failed too: run shadowswap reconcile for these documents",
                extra={**job.fields(), **error_fields(exc), **_ids(job.changes)},
            )
            return False
        self._breaker.record(ticket, ok=True, config=config)
        return True


@dataclass(frozen=True)
class _Job:
    """One dual write: the settings it read, what to write where, and its log fields."""

    settings: Settings
    tenant: str
    op: Op
    changes: list[Change]
    write_sync: Callable[[], None]
    write_deferred: Callable[[], object]
    deferred_kind: str
    trace_id: str | None

    def fields(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "trace_id": self.trace_id,
            "op": self.op,
            "backend": self.deferred_kind,
        }


def _ids(changes: Sequence[Change]) -> dict[str, object]:
    """Doc ids for a log line (ids are not content), at most a few, and how many in all."""
    return {
        "doc_ids": [c.doc_id for c in changes[:_LOGGED_IDS]],
        "documents": len(changes),
        "tenants": sorted({c.tenant for c in changes}),
    }


def _check_deferrable(settings: Settings, field: str, changes: int) -> None:
    """Refuse, before anything is written, a write whose changes could never all wait in the
    outbox for one tenant (module docstring, "A batch too large to defer")."""
    capacity = settings.outbox_max
    share = tenant_share(capacity, settings.outbox_tenant_share)
    limit = max_deferrable(capacity, share)
    if changes > limit:
        raise BatchTooLarge(field, changes, limit, capacity, share)


def _nothing() -> None:
    """A task that marks a point in the direct-write pool's queue."""


def _log_expired(expired: Sequence[Key], settings: Settings) -> None:
    if expired:
        log.warning(
            "outbox items older than RETRIEVAL_DUAL_WRITE_OUTBOX_TTL_S dropped and recorded "
            "for reconcile",
            extra={
                "reason": "ttl",
                "ttl_s": settings.outbox_ttl_s,
                "documents": len(expired),
                "doc_ids": [k[1] for k in expired[:_LOGGED_IDS]],
                "tenants": sorted({k[0] for k in expired}),
            },
        )

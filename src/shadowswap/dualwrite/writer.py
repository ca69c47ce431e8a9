"""The dual writer: every write goes to the backend serving the tenant's reads, and is carried
to the other backend without ever failing or slowing the caller's write because of it.

Which backend is written synchronously and which is *deferred* comes from
`shadowswap.rollout.decisions.write_plan` (CONTRACT §1), asked once per call with the
settings of that call. The synchronous write's failure is the caller's failure. The deferred
write never is: any failure, a deadline passed (``RETRIEVAL_DUAL_WRITE_TIMEOUT_MS``), or an
open breaker puts the change in the outbox, from which ``shadowswap replay-outbox`` applies it.

Ordering, and why
    1. The synchronous write runs first, on the caller's thread.
    2. Breaker closed: the deferred write runs *inline*, after it, bounded by the deadline
       (`shadowswap.dualwrite.deadline`). Not in the background: a background write that was
       not recorded durably first would be lost by a crash right after the caller's
       acknowledgement, and recording every write first would cost an fsync per write while
       the target is healthy and keep ``retrieval_dual_write_outbox_size`` above zero in
       normal operation, hiding the signal runbook 000 watches. A failed or late inline write
       is then appended to the outbox before the call returns.
    3. Breaker open (the target is down): the change must be durable before the
       acknowledgement, so the outbox append (one fsync) runs *in parallel with* the
       synchronous write (which does its own): the caller waits for the slower of the two,
       not their sum, which keeps the write p99 with the target down near primary-only
       (``benchmarks/bench_dualwrite.py``). If the synchronous write fails, the appended
       items are discarded. If the process dies in between, an item may describe a change the
       synchronous backend never committed: replay applies a change only while the
       synchronous backend still holds it, and leaves such an item alone while it is younger
       than its in-flight grace (`shadowswap.dualwrite.replay`).

Every document is canonicalised (unit vectors under cosine) before its content hash is put in
the outbox, so the hash is the one both stores hold: the idempotency key
``(tenant, doc_id, content_hash)`` of runbook 000.

Metrics: ``dual_write_error`` for each deferred write that failed (or could not be recorded),
``dual_write_skipped("circuit_open")`` for each write the breaker refused, the outbox size
and oldest age after every append and at most every second (`DualWriter.refresh_metrics` on
demand, for ``/metrics``), and drops by reason, taken from the outbox's stored totals so that
drops made by another process (a replay expiring items) are counted too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from shadowswap.clock import Clock
from shadowswap.config import Settings, SettingsSource
from shadowswap.dualwrite.breaker import Breaker, BreakerConfig
from shadowswap.dualwrite.deadline import BoundedCalls
from shadowswap.dualwrite.outbox import Appended, Change, Key, Op, Outbox, OutboxStats
from shadowswap.errors import ConfigError, InvalidInput, ShadowswapError
from shadowswap.metrics import MetricsSink
from shadowswap.rollout.decisions import Role, write_plan
from shadowswap.similarity import Metric, canonical_vector
from shadowswap.stores.base import VectorStore
from shadowswap.values import Document, check_doc_ids, check_tenant

log = logging.getLogger("shadowswap.dualwrite.writer")

#: What happened to the deferred write of one call.
#: none        dual write does not apply to this tenant (or is off)
#: applied     written to the deferred backend inline
#: queued      in the outbox (failure, deadline, or breaker open)
#: dropped     some changes were refused by a full outbox: recorded for reconcile
#: unrecorded  the outbox itself failed: the change is only in the log (doc ids)
Outcome = Literal["none", "applied", "queued", "dropped", "unrecorded"]
_LOGGED_IDS = 20


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

    >>> from shadowswap.clock import FakeClock
    >>> from shadowswap.config import StaticSettings, load_settings
    >>> from shadowswap.dualwrite import Breaker, MemoryOutbox
    >>> from shadowswap.metrics import NullSink
    >>> from shadowswap.stores.memory import MemoryStore
    >>> settings = StaticSettings(load_settings(environ={
    ...     "RETRIEVAL_BACKEND": "memory", "RETRIEVAL_TARGET_BACKEND": "faiss",
    ...     "FF_RETRIEVAL_DUAL_WRITE": "ON"}))
    >>> clock, sink = FakeClock(), NullSink()
    >>> writer = DualWriter(MemoryStore(), MemoryStore(location="target"), settings,
    ...                     MemoryOutbox(), Breaker(clock, sink), sink, clock)
    >>> writer.upsert("acme", [Document("acme", "a", [1.0, 0.0])]).outcome
    'applied'
    >>> writer.close()
    """

    def __init__(  # noqa: PLR0917 - the seven collaborators, in the order the design names them
        self,
        primary: VectorStore,
        target: VectorStore | None,
        settings: SettingsSource,
        outbox: Outbox,
        breaker: Breaker,
        sink: MetricsSink,
        clock: Clock,
        *,
        workers: int = 4,
        maintenance_every_s: float = 1.0,
    ) -> None:
        if target is not None and target.metric != primary.metric:
            raise ConfigError(
                "RETRIEVAL_METRIC",
                primary.metric.value,
                f"the target store uses {target.metric.value!r}; both stores must use one metric "
                "so that a document has one content hash",
            )
        self._stores: dict[Role, VectorStore | None] = {"primary": primary, "target": target}
        self._metric: Metric = primary.metric
        self._settings = settings
        self._outbox = outbox
        self._breaker = breaker
        self._sink = sink
        self._clock = clock
        self._deferred_calls = BoundedCalls(workers, "dualwrite-deferred")
        self._outbox_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dualwrite-outbox")
        self._lock = threading.Lock()
        self._maintenance_every_s = maintenance_every_s
        self._last_maintenance = clock.monotonic()
        self._drops_seen: OutboxStats | None = None
        try:
            self._report(outbox.stats())
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
            report = sync.upsert(tenant, documents)
            return WriteResult(
                tenant, "upsert", sync.kind, report.written, report.unchanged, None, "none",
                trace_id=trace_id,
            )  # fmt: skip
        docs = _canonical(tenant, documents, self._metric)
        changes = [Change.upsert(d, deferred.kind, trace_id) for d in docs]
        written = unchanged = 0

        def write_sync() -> None:
            nonlocal written, unchanged
            report = sync.upsert(tenant, docs)
            written, unchanged = report.written, report.unchanged

        outcome, queued, dropped = self._dual(
            _Job(
                settings, tenant, "upsert", changes, write_sync,
                lambda: deferred.upsert(tenant, docs), deferred.kind, trace_id,
            )
        )  # fmt: skip
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
            removed = sync.delete(tenant, ids)
            return WriteResult(
                tenant, "delete", sync.kind, removed, 0, None, "none", trace_id=trace_id
            )
        changes = [Change.delete(tenant, d, deferred.kind, trace_id) for d in ids]
        removed = 0

        def write_sync() -> None:
            nonlocal removed
            removed = sync.delete(tenant, ids)

        outcome, queued, dropped = self._dual(
            _Job(
                settings, tenant, "delete", changes, write_sync,
                lambda: deferred.delete(tenant, ids), deferred.kind, trace_id,
            )
        )  # fmt: skip
        return WriteResult(
            tenant, "delete", sync.kind, removed, 0, deferred.kind, outcome, queued, dropped,
            trace_id,
        )  # fmt: skip

    def refresh_metrics(self) -> OutboxStats:
        """Expire old items and report the stored outbox size, oldest age and drops (also
        those made by other processes). For ``/metrics`` and ``/status``; raises
        `shadowswap.errors.StoreError` when the outbox cannot be read."""
        settings = self._settings.current()
        expired = self._outbox.expire(now=self._clock.now(), ttl_s=settings.outbox_ttl_s)
        _log_expired(expired, settings)
        stats = self._outbox.stats()
        self._report(stats)
        return stats

    @property
    def breaker(self) -> Breaker:
        return self._breaker

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def close(self) -> None:
        """Stop the worker threads (pending outbox appends finish first)."""
        self._deferred_calls.close()
        self._outbox_pool.shutdown(wait=True)

    # -- the two paths --------------------------------------------------------------------
    def _plan(self, settings: Settings, tenant: str) -> tuple[VectorStore, VectorStore | None]:
        plan = write_plan(settings, tenant)
        sync = self._store(plan.sync)
        return sync, (self._store(plan.deferred) if plan.deferred is not None else None)

    def _store(self, role: Role) -> VectorStore:
        store = self._stores[role]
        if store is None:
            raise ConfigError(
                "RETRIEVAL_TARGET_BACKEND",
                "",
                "dual write needs the target store, but this writer was built without one",
            )
        return store

    def _dual(self, job: _Job) -> tuple[Outcome, int, int]:
        settings = job.settings
        config = BreakerConfig(settings.cb_threshold, settings.cb_window_s)
        if self._breaker.refuses(config):
            self._sink.dual_write_skipped("circuit_open")
            pending = self._outbox_pool.submit(self._append, job)
            try:
                job.write_sync()
            except BaseException:
                self._discard(pending)
                raise
            return self._queued(pending.result())
        job.write_sync()
        ticket = self._breaker.attempt(config)
        if ticket is None:  # another call took the half-open trial meanwhile
            self._sink.dual_write_skipped("circuit_open")
            return self._queued(self._append(job))
        try:
            self._deferred_calls.run(
                job.write_deferred,
                timeout_s=settings.dual_write_timeout_ms / 1000.0,
                store=job.deferred_kind,
                op=job.op,
                tenant=job.tenant,
            )
        except Exception as exc:  # noqa: BLE001 - the deferred side never fails the caller
            # Bad input for the other backend (a dimension it does not hold) says nothing
            # about its health: it answered. Everything else counts against the breaker.
            self._breaker.record(ticket, ok=isinstance(exc, InvalidInput), config=config)
            self._sink.dual_write_error()
            log.warning(
                "deferred write failed; the change goes to the outbox",
                extra={**job.fields(), **_error_fields(exc), "documents": len(job.changes)},
            )
            return self._queued(self._append(job))
        self._breaker.record(ticket, ok=True, config=config)
        self._maintain_later()
        return "applied", 0, 0

    # -- the outbox -----------------------------------------------------------------------
    def _append(self, job: _Job) -> Appended | None:
        settings, changes, fields = job.settings, job.changes, job.fields()
        try:
            appended = self._outbox.append(
                changes,
                now=self._clock.now(),
                capacity=settings.outbox_max,
                ttl_s=settings.outbox_ttl_s,
            )
        except Exception as exc:  # noqa: BLE001 - the deferred side never fails the caller
            self._sink.dual_write_error()
            log.error(
                "outbox append failed: the change is recorded nowhere but here; run "
                "shadowswap reconcile for these documents",
                extra={
                    **fields,
                    **_error_fields(exc),
                    **_ids(changes),
                    "outbox": self._outbox.location,
                },
            )
            return None
        if appended.refused:
            log.warning(
                "outbox full: change dropped and recorded for reconcile",
                extra={
                    **fields,
                    **_ids(list(appended.refused)),
                    "capacity": settings.outbox_max,
                    "reason": "full",
                },
            )
        _log_expired(appended.expired, settings)
        self._report(appended.stats)
        return appended

    def _discard(self, pending: Future[Appended | None]) -> None:
        """The synchronous write failed: take back what was appended for it."""
        try:
            appended = pending.result()
            if appended is not None and appended.seqs:
                self._outbox.discard(appended.seqs)
        except Exception as exc:  # noqa: BLE001 - replay recognises such items anyway
            log.warning(
                "could not discard outbox items of a failed write", extra=_error_fields(exc)
            )

    @staticmethod
    def _queued(appended: Appended | None) -> tuple[Outcome, int, int]:
        if appended is None:
            return "unrecorded", 0, 0
        queued, dropped = len(appended.seqs), len(appended.refused)
        return ("dropped" if dropped else "queued"), queued, dropped

    def _report(self, stats: OutboxStats) -> None:
        """Size and age as stored; drops as the increase of the stored totals."""
        self._sink.outbox_size(stats.size, stats.oldest_age_s(self._clock.now()))
        with self._lock:
            seen, self._drops_seen = self._drops_seen, stats
        if seen is None:
            return
        for reason in ("full", "ttl"):
            delta = stats.dropped(reason) - seen.dropped(reason)
            if delta > 0:
                self._sink.outbox_dropped(reason, delta)

    def _maintain_later(self) -> None:
        now = self._clock.monotonic()
        with self._lock:
            if now - self._last_maintenance < self._maintenance_every_s:
                return
            self._last_maintenance = now
        self._outbox_pool.submit(self._maintain_quietly)

    def _maintain_quietly(self) -> None:
        try:
            self.refresh_metrics()
        except Exception as exc:  # noqa: BLE001 - a metrics refresh must never raise
            log.warning("outbox metrics refresh failed", extra=_error_fields(exc))


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


def _canonical(tenant: str, documents: Sequence[Document], metric: Metric) -> list[Document]:
    """The documents as the stores will keep them (unit vectors under cosine), last of
    duplicate ids kept: their content hashes are the ones both stores will hold."""
    if isinstance(documents, Document) or not isinstance(documents, Sequence):
        raise InvalidInput("documents", "expected a list of documents")
    by_id: dict[str, Document] = {}
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise InvalidInput(f"documents[{i}]", "expected a Document")
        if doc.tenant != tenant:
            raise InvalidInput(
                f"documents[{i}].tenant",
                f"document belongs to tenant {doc.tenant!r}, not {tenant!r}",
            )
        vector = canonical_vector(doc.vector, metric, f"documents[{i}].vector")
        by_id[doc.doc_id] = doc if vector is doc.vector else doc.with_vector(vector)
    return list(by_id.values())


def _ids(changes: Sequence[Change]) -> dict[str, object]:
    """Doc ids for a log line (ids are not content), at most a few, and how many in all."""
    return {
        "doc_ids": [c.doc_id for c in changes[:_LOGGED_IDS]],
        "documents": len(changes),
        "tenants": sorted({c.tenant for c in changes}),
    }


def _error_fields(exc: BaseException) -> dict[str, object]:
    """Our errors' messages never hold content; anything else is logged by type only."""
    detail = str(exc)[:300] if isinstance(exc, ShadowswapError) else ""
    return {"error": type(exc).__name__, "detail": detail}


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

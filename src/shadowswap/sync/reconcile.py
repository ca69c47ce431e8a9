"""Reconcile: compare two stores document by document, and repair or purge the difference.

Nobody may take it on faith that the target holds what the primary holds: a final count can
match while documents differ. Reconcile compares every document of every tenant by content
hash and sorts each difference into one of three kinds, relative to the tenant's *source of
truth* (by default the backend serving the tenant's reads, `shadowswap.rollout.decisions.
read_role`; or the primary or the target for every tenant):

    missing   the source has the document, the other store does not
    extra     the other store has it, the source does not
    stale     both have it, with different content hashes

Design: per tenant, a streamed sorted merge of both stores' ``(doc_id, content_hash)``
listings (`shadowswap.sync.diff`): one pass, memory bounded by one page per store plus one
batch of ids to repair, independent of the tenant's size (Chroma's adapter, which lists a
tenant's ids once, is the exception; see `shadowswap.sync.diff`). Differences are acted on
while the merge runs, a batch at a time, on ids both listings have already passed, so a
repair never disturbs the pages still to come.

Actions
    ``repair``  makes the other store equal to the source: missing and stale documents are
                copied, extra ones deleted.
    ``purge``   deletes the extra documents only ("purge the inconsistent delta on the
                target", runbook 002); missing and stale ones are reported, not touched.
    Each batch is applied with verify-after-write (`shadowswap.sync.converge`, with the
    other store read back), so a repair running beside dual write never puts an old
    version over a new one, and a purge never removes a document the source gained
    meanwhile. ``remaining`` counts what is still different afterwards.

The last complete result is written atomically to ``<RETRIEVAL_STATE_DIR>/reconcile_last.json``
(`save_last`), for the phase command and the status endpoint; its format is `as_dict`, also
described in ``docs/sync.md``. Logs carry tenant ids, doc ids and counts, never content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shadowswap.clock import Clock, SystemClock
from shadowswap.errors import InvalidInput
from shadowswap.rollout.decisions import Role
from shadowswap.stores.base import VectorStore
from shadowswap.sync.converge import Converger, Outcome
from shadowswap.sync.diff import KINDS, Kind, compared
from shadowswap.sync.pacing import StopSignal, never_stop
from shadowswap.sync.progress import NullProgress, Progress
from shadowswap.sync.retry import DEFAULT_RETRY, Retry
from shadowswap.sync.statefile import read_json, write_json_atomic
from shadowswap.values import check_tenant

log = logging.getLogger("shadowswap.sync.reconcile")

LAST_RESULT = "reconcile_last.json"
FORMAT = 1
DEFAULT_BATCH = 1000
MAX_BATCH = 10_000
MAX_EXAMPLES = 10
MAX_FAILED_IDS = 100

SourceChoice = Literal["primary", "target"] | Callable[[str], Role]


@dataclass(frozen=True)
class TenantDrift:
    """The comparison of one tenant, and what repair or purge did to it."""

    tenant: str
    source: str
    replica: str
    source_role: Role
    source_docs: int = 0
    replica_docs: int = 0
    missing: int = 0
    extra: int = 0
    stale: int = 0
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)
    written: int = 0
    deleted: int = 0
    not_fixed: tuple[str, ...] = ()
    remaining: int = 0

    @property
    def drift(self) -> int:
        return self.missing + self.extra + self.stale

    def as_dict(self) -> dict[str, Any]:
        return {
            "missing": self.missing,
            "extra": self.extra,
            "stale": self.stale,
            "drift": self.drift,
            "remaining": self.remaining,
            "source": self.source,
            "replica": self.replica,
            "source_role": self.source_role,
            "source_docs": self.source_docs,
            "replica_docs": self.replica_docs,
            "written": self.written,
            "deleted": self.deleted,
            "not_fixed": list(self.not_fixed),
            "examples": {k: list(self.examples.get(k, ())) for k in KINDS},
        }


@dataclass(frozen=True)
class ReconcileReport:
    """The result of one reconcile over the selected tenants."""

    started_at: float
    finished_at: float
    duration_s: float
    primary: str
    target: str
    source: str
    scope: tuple[str, ...] | None
    repair: bool
    purge: bool
    deep: bool
    tenants: tuple[TenantDrift, ...]
    complete: bool = True

    @property
    def missing(self) -> int:
        return sum(t.missing for t in self.tenants)

    @property
    def extra(self) -> int:
        return sum(t.extra for t in self.tenants)

    @property
    def stale(self) -> int:
        return sum(t.stale for t in self.tenants)

    @property
    def drift(self) -> int:
        """Differences found (CONTRACT §6), before any repair."""
        return self.missing + self.extra + self.stale

    @property
    def remaining(self) -> int:
        """Differences still there after repair or purge (equal to `drift` without them)."""
        return sum(t.remaining for t in self.tenants)

    @property
    def ok(self) -> bool:
        """No drift, or none left after repair: the command's exit code 0."""
        return self.complete and self.remaining == 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``reconcile --json`` and of ``reconcile_last.json``."""
        return {
            "format": FORMAT,
            "ok": self.ok,
            "complete": self.complete,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_s": round(self.duration_s, 3),
            "stores": {"primary": self.primary, "target": self.target},
            "source": self.source,
            "scope": "all" if self.scope is None else list(self.scope),
            "repair": self.repair,
            "purge_delta": self.purge,
            "deep": self.deep,
            "missing": self.missing,
            "extra": self.extra,
            "stale": self.stale,
            "drift": self.drift,
            "remaining": self.remaining,
            "written": sum(t.written for t in self.tenants),
            "deleted": sum(t.deleted for t in self.tenants),
            "tenants": {t.tenant: t.as_dict() for t in self.tenants},
        }


class _Stopped(Exception):
    """Raised inside the merge when a stop was requested; never leaves this module."""


@dataclass
class Reconcile:
    """One reconcile of ``primary`` and ``target``; `run` compares (and repairs).

    ``source`` picks each tenant's source of truth: ``"primary"``, ``"target"``, or a
    function of the tenant (the CLI passes the backend serving the tenant's reads).

    >>> from shadowswap.stores.memory import MemoryStore
    >>> from shadowswap.values import Document
    >>> a, b = MemoryStore(), MemoryStore()
    >>> _ = a.upsert("acme", [Document("acme", "x", [1.0, 0.0])])
    >>> Reconcile(a, b).run().drift
    1
    """

    primary: VectorStore
    target: VectorStore
    tenants: Sequence[str] | None = None
    source: SourceChoice = "primary"
    repair: bool = False
    purge: bool = False
    batch_size: int = DEFAULT_BATCH
    deep: bool = False
    examples: int = MAX_EXAMPLES
    clock: Clock = field(default_factory=SystemClock)
    progress: Progress = field(default_factory=NullProgress)
    stop: StopSignal = field(default_factory=never_stop)
    retry: Retry = DEFAULT_RETRY

    def __post_init__(self) -> None:
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or not 1 <= self.batch_size <= MAX_BATCH
        ):
            raise InvalidInput("batch_size", f"use a whole number from 1 to {MAX_BATCH}")
        if not callable(self.source) and self.source not in ("primary", "target"):
            raise InvalidInput("source", "use primary or target")
        if self.tenants is not None:
            self.tenants = list(dict.fromkeys(check_tenant(t) for t in self.tenants))

    def run(self) -> ReconcileReport:
        started_at, started = self.clock.now(), self.clock.monotonic()
        names = (
            list(self.tenants)
            if self.tenants
            else sorted(set(self.primary.tenants()) | set(self.target.tenants()))
        )
        results: list[TenantDrift] = []
        complete = True
        for tenant in names:
            if self.stop.is_set():
                complete = False
                break
            result, finished = self._tenant(tenant)
            results.append(result)
            if not finished:
                complete = False
                break
        report = ReconcileReport(
            started_at=started_at,
            finished_at=self.clock.now(),
            duration_s=self.clock.monotonic() - started,
            primary=self.primary.kind,
            target=self.target.kind,
            source=self.source if isinstance(self.source, str) else "serving",
            scope=tuple(self.tenants) if self.tenants else None,
            repair=self.repair,
            purge=self.purge,
            deep=self.deep,
            tenants=tuple(results),
            complete=complete,
        )
        log.info(
            "reconcile finished" if complete else "reconcile stopped before the end",
            extra={
                "tenants": len(results),
                "missing": report.missing,
                "extra": report.extra,
                "stale": report.stale,
                "remaining": report.remaining,
                "duration_s": round(report.duration_s, 3),
            },
        )
        return report

    def _role(self, tenant: str) -> Role:
        if callable(self.source):
            return self.source(tenant)
        return self.source

    def _tenant(self, tenant: str) -> tuple[TenantDrift, bool]:
        role = self._role(tenant)
        truth, replica = self.primary, self.target
        if role == "target":
            truth, replica = replica, truth
        counts: dict[Kind, int] = dict.fromkeys(KINDS, 0)
        examples: dict[str, list[str]] = {k: [] for k in KINDS}
        sizes = {"source": 0, "replica": 0}
        acting: set[Kind] = (
            {"missing", "extra", "stale"} if self.repair else {"extra"} if self.purge else set()
        )
        converger = Converger(
            truth, replica, tenant, clock=self.clock, retry=self.retry, read_back=True
        )
        outcome = Outcome()
        pending: list[str] = []

        def on_source_page(n: int) -> None:
            sizes["source"] += n
            self.progress.advance(n)
            if self.stop.is_set():
                raise _Stopped

        def on_replica_page(n: int) -> None:
            sizes["replica"] += n
            if self.stop.is_set():
                raise _Stopped

        finished = True
        self.progress.begin(tenant, truth.count(tenant))
        try:
            for diff in compared(
                truth,
                replica,
                tenant,
                batch_size=self.batch_size,
                deep=self.deep,
                on_source_page=on_source_page,
                on_other_page=on_replica_page,
            ):
                counts[diff.kind] += 1
                if len(examples[diff.kind]) < self.examples:
                    examples[diff.kind].append(diff.doc_id)
                if diff.kind in acting:
                    pending.append(diff.doc_id)
                    if len(pending) >= self.batch_size:
                        outcome += self._fix(converger, pending)
                        pending = []
            if pending:
                outcome += self._fix(converger, pending)
        except _Stopped:
            finished = False
        finally:
            self.progress.end()
        drift = sum(counts.values())
        not_fixed = outcome.failed + outcome.unsettled + outcome.skipped
        if acting:
            remaining = sum(counts[k] for k in KINDS if k not in acting) + len(not_fixed)
        else:
            remaining = drift
        result = TenantDrift(
            tenant=tenant,
            source=truth.kind,
            replica=replica.kind,
            source_role=role,
            source_docs=sizes["source"],
            replica_docs=sizes["replica"],
            missing=counts["missing"],
            extra=counts["extra"],
            stale=counts["stale"],
            examples={k: tuple(v) for k, v in examples.items()},
            written=outcome.written,
            deleted=outcome.deleted,
            not_fixed=not_fixed[:MAX_FAILED_IDS],
            remaining=remaining,
        )
        log.info(
            "reconcile tenant",
            extra={
                "tenant": tenant,
                "source": truth.kind,
                "replica": replica.kind,
                "missing": result.missing,
                "extra": result.extra,
                "stale": result.stale,
                "written": result.written,
                "deleted": result.deleted,
                "remaining": result.remaining,
            },
        )
        if not_fixed:
            log.warning(
                "documents left different",
                extra={"tenant": tenant, "doc_ids": list(not_fixed[:20])},
            )
        return result, finished

    def _fix(self, converger: Converger, ids: list[str]) -> Outcome:
        if self.repair:
            return converger.apply(ids, write=True, delete=True)
        return converger.apply(ids, write=False, delete=True)


def reconcile(primary: VectorStore, target: VectorStore, **options: Any) -> ReconcileReport:
    """Compare (and repair) ``primary`` and ``target``; ``options`` are `Reconcile`'s fields."""
    return Reconcile(primary, target, **options).run()


def purge_delta(
    source: VectorStore,
    target: VectorStore,
    tenants: Sequence[str] | None = None,
    **options: Any,
) -> ReconcileReport:
    """Delete from ``target`` every document ``source`` does not have (all tenants, or
    ``tenants``), verified against concurrent writes. Missing and stale documents are only
    reported. The rollback procedure calls this after dual write is switched off.

    Returns the report; ``report.extra`` documents were found, ``deleted`` were removed,
    ``remaining`` counts every difference still there (including missing and stale ones).
    """
    return Reconcile(source, target, tenants=tenants, source="primary", purge=True, **options).run()


def last_result_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / LAST_RESULT


def save_last(report: ReconcileReport, state_dir: str | Path) -> Path:
    """Write ``report`` as the last reconcile result (atomically); returns the path."""
    path = last_result_path(state_dir)
    write_json_atomic(path, report.as_dict())
    return path


def load_last(state_dir: str | Path) -> dict[str, Any] | None:
    """The last reconcile result written by `save_last`, or None when there is none yet."""
    return read_json(last_result_path(state_dir))


def iso(epoch: float) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``."""
    whole = int(epoch)
    millis = round((epoch - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"

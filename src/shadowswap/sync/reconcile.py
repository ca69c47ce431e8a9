"""Reconcile: compare two stores document by document, and repair or purge the difference.

Nobody may take it on faith that the target holds what the primary holds: a final count can
match while documents differ. Reconcile compares every document of every tenant by content
hash and sorts each difference into one of three kinds, relative to the tenant's *source of
truth* (by default the backend serving the tenant's reads, ``plan(settings, tenant).read``
from `shadowswap.policy`, asked once per tenant; or the primary or the target for every
tenant):

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
    meanwhile.
    Then the batch is *verified* (issue 16): its ids are read again from both stores and
    hashed the way the comparison hashes them (`shadowswap.sync.verify`), not by the hash a
    store keeps beside what it was sent; ids still different are applied once more and read
    again, and what differs then is what the run reports left. So a store that acknowledges
    a write and keeps something else (Chroma turned ``-0.0`` into ``0.0``) leaves drift the
    report counts, exit code 1, instead of a ``drift: 0`` the next run contradicts.

Counts: ``found`` is what the comparison found; ``missing``, ``extra``, ``stale`` and ``drift``
(CONTRACT §6) count what is still different when the run ends: the ids acted on as the
verification read them, plus the kinds the run did not act on (after a purge the missing and
stale documents remain). Without repair or purge both are the same. ``verified`` counts the
ids read again after acting, ``repaired`` those found equal then, ``left_after_repair`` those
still different (so ``verified = repaired + left_after_repair``). So ``drift`` in
``reconcile_last.json`` is always the state of the stores as last read, which gates and
dashboards need, and exit code 0 means ``drift == 0``.

The CLI writes the last complete run over every tenant atomically to
``<RETRIEVAL_STATE_DIR>/reconcile_last.json`` (`save_last`), for the phase command and the
status endpoint (a run over some tenants never speaks for all of them); its format is
`as_dict`, described in ``docs/sync.md``. Logs carry tenant ids, doc ids and counts, never
content.

What it was taken under (issue 15): given the ``settings`` in force, a run records the write
plan (`shadowswap.policy.write_plan_fingerprint` and the variables behind it) and, per
tenant, whether dual write kept the other store in step for it (``dual_write``). Writes made
after the run under another plan, or to a tenant dual write did not cover, can make the
stores drift again without the file knowing: `shadowswap.sync.freshness` decides from these
records whether the last result still speaks for the stores.
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
from shadowswap.policy import Role, in_step, write_plan_fingerprint, write_plan_variables
from shadowswap.settings.config import Settings
from shadowswap.stores.base import VectorStore
from shadowswap.sync.converge import Converger
from shadowswap.sync.diff import KINDS, Kind, compared
from shadowswap.sync.pacing import StopSignal, never_stop
from shadowswap.sync.progress import NullProgress, Progress
from shadowswap.sync.retry import DEFAULT_RETRY, Retry
from shadowswap.sync.statefile import read_json, write_json_atomic
from shadowswap.sync.verify import still_different
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
class Counts:
    """Documents out of step, by kind."""

    missing: int = 0
    extra: int = 0
    stale: int = 0

    @property
    def total(self) -> int:
        return self.missing + self.extra + self.stale

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.missing + other.missing, self.extra + other.extra, self.stale + other.stale
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "missing": self.missing,
            "extra": self.extra,
            "stale": self.stale,
            "drift": self.total,
        }


class _LeftCounts:
    """``missing``, ``extra``, ``stale`` and ``drift`` of a result: those of ``left``, what is
    still different when the run ends (CONTRACT §6: ``drift`` is the total of the three)."""

    left: Counts

    @property
    def missing(self) -> int:
        return self.left.missing

    @property
    def extra(self) -> int:
        return self.left.extra

    @property
    def stale(self) -> int:
        return self.left.stale

    @property
    def drift(self) -> int:
        return self.left.total


@dataclass(frozen=True)
class TenantDrift(_LeftCounts):
    """The comparison of one tenant, and what repair or purge did to it.

    ``found``: the differences the comparison found; ``left``: those still there when the
    run ended (the same without repair or purge). ``missing``, ``extra``, ``stale`` and
    ``drift`` read ``left``: the state of the stores, which is what gates and dashboards need.
    """

    tenant: str
    source: str
    replica: str
    source_role: Role
    found: Counts
    left: Counts
    source_docs: int = 0
    replica_docs: int = 0
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)
    written: int = 0
    deleted: int = 0
    not_fixed: tuple[str, ...] = ()
    dual_write: bool | None = None  # kept in step by dual write during the run (None: unknown)
    verified: int = 0  # ids acted on and read again from both stores afterwards
    left_after_repair: int = 0  # of those, still different when read again

    @property
    def repaired(self) -> int:
        """Ids acted on and found equal in both stores when read again."""
        return self.verified - self.left_after_repair

    def as_dict(self) -> dict[str, Any]:
        known = {} if self.dual_write is None else {"dual_write": self.dual_write}
        return {
            **self.left.as_dict(),
            **known,
            "found": self.found.as_dict(),
            "source": self.source,
            "replica": self.replica,
            "source_role": self.source_role,
            "source_docs": self.source_docs,
            "replica_docs": self.replica_docs,
            "written": self.written,
            "deleted": self.deleted,
            "verified": self.verified,
            "repaired": self.repaired,
            "left_after_repair": self.left_after_repair,
            "not_fixed": list(self.not_fixed),
            "examples": {k: list(self.examples.get(k, ())) for k in KINDS},
        }


@dataclass(frozen=True)
class ReconcileReport(_LeftCounts):
    """The result of one reconcile over the selected tenants.

    ``missing``, ``extra``, ``stale`` and ``drift`` count what is still different at the end of
    the run (after repair or purge, if asked); ``found`` what the comparison found. Without
    repair or purge they are equal. ``ok`` (exit code 0) is ``complete and drift == 0``.
    """

    # Totals first: a generic summary of this record (``dataclasses.asdict``, as the
    # rollback journal does) starts with what matters.
    left: Counts
    found: Counts
    complete: bool
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
    write_plan: dict[str, Any] | None = None  # fingerprint and variables; None: not told

    @property
    def ok(self) -> bool:
        """Complete, and no drift left: the command's exit code 0."""
        return self.complete and self.drift == 0

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
            "write_plan": self.write_plan,
            "repair": self.repair,
            "purge_delta": self.purge,
            "deep": self.deep,
            **self.left.as_dict(),
            "found": self.found.as_dict(),
            "written": sum(t.written for t in self.tenants),
            "deleted": sum(t.deleted for t in self.tenants),
            "verified": sum(t.verified for t in self.tenants),
            "repaired": sum(t.repaired for t in self.tenants),
            "left_after_repair": sum(t.left_after_repair for t in self.tenants),
            "tenants": {t.tenant: t.as_dict() for t in self.tenants},
        }


class _Stopped(Exception):
    """Raised inside the merge when a stop was requested; never leaves this module."""


@dataclass
class Reconcile:
    """One reconcile of ``primary`` and ``target``; `run` compares (and repairs).

    ``source`` picks each tenant's source of truth: ``"primary"``, ``"target"``, or a
    function of the tenant (the CLI passes the backend serving the tenant's reads).
    ``settings``, the settings in force when the run starts, are recorded in the result (the
    write plan, and dual write per tenant; module doc); without them nothing is recorded and
    the result cannot open a swap.

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
    settings: Settings | None = None

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
            left=sum((t.left for t in results), Counts()),
            found=sum((t.found for t in results), Counts()),
            complete=complete,
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
            write_plan=None if self.settings is None else write_plan_record(self.settings),
        )
        log.info(
            "reconcile finished" if complete else "reconcile stopped before the end",
            extra={
                "tenants": len(results),
                "found": report.found.total,
                "drift": report.drift,
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
        fixer = _Fixer(
            Converger(truth, replica, tenant, clock=self.clock, retry=self.retry, read_back=True),
            repair=self.repair,
            verify=lambda ids: still_different(
                truth, replica, tenant, ids, deep=self.deep, retry=self.retry, clock=self.clock
            ),
        )
        pending: dict[str, Kind] = {}

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
                    pending[diff.doc_id] = diff.kind
                    if len(pending) >= self.batch_size:
                        fixer.fix(pending)
                        pending = {}
            if pending:
                fixer.fix(pending)
        except _Stopped:
            finished = False
        finally:
            self.progress.end()
        found = Counts(counts["missing"], counts["extra"], counts["stale"])
        # the kinds not acted on as found, plus what verification found left of those acted on
        left = Counts(*((0 if k in acting else counts[k]) + fixer.unfixed[k] for k in KINDS))
        if not finished:
            left = found  # what a stopped run left is not known: report what it found
        result = TenantDrift(
            tenant=tenant,
            source=truth.kind,
            replica=replica.kind,
            source_role=role,
            found=found,
            left=left,
            source_docs=sizes["source"],
            replica_docs=sizes["replica"],
            examples={k: tuple(v) for k, v in examples.items()},
            written=fixer.written,
            deleted=fixer.deleted,
            not_fixed=tuple(fixer.not_fixed),
            dual_write=None if self.settings is None else in_step(self.settings, tenant),
            verified=fixer.verified,
            left_after_repair=sum(fixer.unfixed.values()),
        )
        log.info(
            "reconcile tenant",
            extra={
                "tenant": tenant,
                "source": truth.kind,
                "replica": replica.kind,
                "missing": found.missing,
                "extra": found.extra,
                "stale": found.stale,
                "written": result.written,
                "deleted": result.deleted,
                "verified": result.verified,
                "drift_left": left.total,
            },
        )
        if fixer.not_fixed:
            log.warning(
                "documents left different",
                extra={"tenant": tenant, "doc_ids": fixer.not_fixed[:20]},
            )
        return result, finished


class _Fixer:
    """Applies repair or purge batches of one tenant, verifies each (module docstring) and
    keeps bounded totals of the result. ``unfixed`` counts, by the kind verification saw,
    the ids still different after the batch."""

    def __init__(
        self,
        converger: Converger,
        *,
        repair: bool,
        verify: Callable[[Sequence[str]], dict[str, Kind]],
    ) -> None:
        self._converger = converger
        self._repair = repair
        self._verify = verify
        self.written = 0
        self.deleted = 0
        self.verified = 0
        self.unfixed: dict[Kind, int] = dict.fromkeys(KINDS, 0)
        self.not_fixed: list[str] = []  # the first MAX_FAILED_IDS ids only

    def fix(self, batch: dict[str, Kind]) -> None:
        ids = list(batch)
        self._apply(ids)
        left = self._verify(ids)
        if left:  # once more: a write racing ours, or a store that needed a second try
            self._apply(list(left))
            left = self._verify(list(left))
        self.verified += len(ids)
        for doc_id, kind in left.items():
            self.unfixed[kind] += 1
            if len(self.not_fixed) < MAX_FAILED_IDS:
                self.not_fixed.append(doc_id)

    def _apply(self, ids: list[str]) -> None:
        # A purge may only delete; a repair copies and deletes.
        outcome = self._converger.apply(ids, write=self._repair, delete=True)
        self.written += outcome.written
        self.deleted += outcome.deleted


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

    Returns the report: ``report.found.extra`` documents were found, ``report.tenants[i].
    deleted`` removed; ``report.drift`` counts every difference still there (missing and stale
    documents included), ``report.extra`` the extra ones a concurrent writer kept from going.
    """
    return Reconcile(source, target, tenants=tenants, source="primary", purge=True, **options).run()


def write_plan_record(settings: Settings) -> dict[str, Any]:
    """The ``write_plan`` of a result: the fingerprint and the variables behind it."""
    return {
        "fingerprint": write_plan_fingerprint(settings),
        "variables": write_plan_variables(settings),
    }


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

"""Backfill: copy every document of every tenant from one store to another, resumably.

Dual write only carries changes made after it was switched on; backfill brings over
everything written before. For each tenant it streams the source's scan (ascending doc id,
one page at a time, read ahead in a thread) and applies each page to the destination:

idempotent
    the destination's upsert compares content hashes and rewrites nothing it already holds
    (``skipped`` in the summary), so a second run, or the batch that was in flight when a
    run was killed, costs reads, not writes.
resumable
    after each page is written and verified, a checkpoint records its last doc id
    (`shadowswap.sync.checkpoint`, atomic). A run killed at any instant, SIGKILL included,
    resumes the unfinished pass: tenants it finished are not read again, the interrupted
    one resumes after its last recorded page, and no page is skipped because the checkpoint
    never runs ahead of what was written.
safe under dual write
    every page is verified after it is written (`shadowswap.sync.converge`): a document the
    source changed or deleted while it was being copied is rewritten or deleted, so an older
    copied version never overwrites a newer one. Documents *created* in the source behind
    the scan's cursor are not seen by this pass; dual write carries them, and reconcile
    finds anything that went missing.
bounded
    memory holds a few pages (``batch_size`` documents each), whatever the tenant's size.
paced
    ``max_rate`` caps documents per second (`shadowswap.sync.pacing.Throttle`).

Failures: transient store errors are retried with backoff; a document the destination
refuses is counted in ``failed`` (its id is kept) and the copy goes on; anything else stops
the run with the checkpoint at the last finished page. A stop request (SIGTERM, Ctrl-C in
the CLI) ends the run after the current page.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shadowswap.clock import Clock, SystemClock
from shadowswap.errors import InvalidInput
from shadowswap.settings.masking import mask_secrets
from shadowswap.stores.base import VectorStore
from shadowswap.sync.checkpoint import Checkpoint, Checkpoints, MemoryCheckpoints, Pass
from shadowswap.sync.converge import Converger
from shadowswap.sync.pacing import StopSignal, Throttle, never_stop
from shadowswap.sync.prefetch import prefetched
from shadowswap.sync.progress import NullProgress, Progress
from shadowswap.sync.retry import DEFAULT_RETRY, Retry, resilient_scan
from shadowswap.values import check_tenant

log = logging.getLogger("shadowswap.sync.backfill")

DEFAULT_BATCH = 500
MAX_BATCH = 5000


@dataclass(frozen=True)
class TenantCopy:
    """What one run did for one tenant. ``resumed_after_docs``: what earlier runs of the same
    pass had done; ``failed_in_pass`` and ``failed_ids`` (at most 100) cover the whole pass,
    so a resumed run does not hide documents an earlier run could not copy."""

    tenant: str
    source_docs: int
    processed: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    failed_in_pass: int = 0
    failed_ids: tuple[str, ...] = ()
    resumed_after_docs: int = 0
    complete: bool = False
    done_earlier: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_docs": self.source_docs,
            "processed": self.processed,
            "copied": self.written,
            "skipped": self.unchanged,
            "deleted": self.deleted,
            "failed": self.failed,
            "failed_in_pass": self.failed_in_pass,
            "failed_ids": list(self.failed_ids),
            "resumed_after_docs": self.resumed_after_docs,
            "complete": self.complete,
            "done_earlier": self.done_earlier,
        }


@dataclass(frozen=True)
class BackfillReport:
    """The summary of one backfill run."""

    source: tuple[str, str]
    destination: tuple[str, str]
    tenants: tuple[TenantCopy, ...] = ()
    duration_s: float = 0.0
    interrupted: bool = False
    batch_size: int = DEFAULT_BATCH
    max_rate: float | None = None

    @property
    def copied(self) -> int:
        return sum(t.written for t in self.tenants)

    @property
    def skipped(self) -> int:
        return sum(t.unchanged for t in self.tenants)

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.tenants)

    @property
    def failed_in_pass(self) -> int:
        return sum(t.failed_in_pass for t in self.tenants)

    @property
    def processed(self) -> int:
        return sum(t.processed for t in self.tenants)

    @property
    def rate(self) -> float:
        """Documents handled per second in this run (copied, skipped or failed)."""
        return self.processed / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def complete(self) -> bool:
        return not self.interrupted and all(t.complete for t in self.tenants)

    @property
    def ok(self) -> bool:
        """Complete, and no document of the pass failed (this run or an earlier one)."""
        return self.complete and self.failed_in_pass == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "source": {"kind": self.source[0], "location": mask_secrets(self.source[1])},
            "destination": {
                "kind": self.destination[0],
                "location": mask_secrets(self.destination[1]),
            },
            "copied": self.copied,
            "skipped": self.skipped,
            "deleted": sum(t.deleted for t in self.tenants),
            "failed": self.failed,
            "failed_in_pass": self.failed_in_pass,
            "processed": self.processed,
            "duration_s": round(self.duration_s, 3),
            "rate_docs_per_s": round(self.rate, 1),
            "batch_size": self.batch_size,
            "max_rate": self.max_rate,
            "tenants": {t.tenant: t.as_dict() for t in self.tenants},
        }


@dataclass
class Backfill:
    """One backfill from ``source`` to ``destination``; `run` copies, returns the summary.

    >>> from shadowswap.stores.memory import MemoryStore
    >>> from shadowswap.values import Document
    >>> src, dst = MemoryStore(), MemoryStore()
    >>> _ = src.upsert("acme", [Document("acme", "a", [1.0, 0.0])])
    >>> Backfill(src, dst).run().copied
    1
    """

    source: VectorStore
    destination: VectorStore
    tenants: Sequence[str] | None = None
    batch_size: int = DEFAULT_BATCH
    max_rate: float | None = None
    checkpoints: Checkpoints = field(default_factory=MemoryCheckpoints)
    restart: bool = False
    clock: Clock = field(default_factory=SystemClock)
    progress: Progress = field(default_factory=NullProgress)
    stop: StopSignal = field(default_factory=never_stop)
    retry: Retry = DEFAULT_RETRY
    prefetch_depth: int = 2

    def __post_init__(self) -> None:
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or not 1 <= self.batch_size <= MAX_BATCH
        ):
            raise InvalidInput("batch_size", f"use a whole number from 1 to {MAX_BATCH}")
        if self.max_rate is not None and not self.max_rate > 0:
            raise InvalidInput("max_rate", "must be a positive number of documents per second")
        if self.tenants is not None:
            self.tenants = list(dict.fromkeys(check_tenant(t) for t in self.tenants))

    def run(self) -> BackfillReport:
        started = self.clock.monotonic()
        throttle = Throttle(self.max_rate, self.clock)
        copies: list[TenantCopy] = []
        interrupted = False
        with self.checkpoints.locked():
            current = self._pass()
            names = list(self.tenants) if self.tenants else self.source.tenants()
            for tenant in names:
                copy = self._tenant(tenant, throttle, current.id)
                copies.append(copy)
                if not copy.complete:
                    interrupted = True
                    break
            if not interrupted:
                self.checkpoints.save_pass(replace(current, complete=True))
        report = BackfillReport(
            (self.source.kind, self.source.location),
            (self.destination.kind, self.destination.location),
            tuple(copies),
            self.clock.monotonic() - started,
            interrupted,
            self.batch_size,
            self.max_rate,
        )
        log.info(
            "backfill finished" if report.complete else "backfill stopped; run again to resume",
            extra={
                "source": self.source.kind,
                "destination": self.destination.kind,
                "copied": report.copied,
                "skipped": report.skipped,
                "failed": report.failed,
                "duration_s": round(report.duration_s, 3),
            },
        )
        return report

    def _pass(self) -> Pass:
        """The unfinished pass over the same tenants, or a new one."""
        scope = tuple(self.tenants) if self.tenants else None
        current = self.checkpoints.load_pass()
        if current is not None and not current.complete and not self.restart:
            if current.scope == scope:
                log.info("backfill resumes an unfinished pass", extra={"pass_id": current.id})
                return current
            log.warning(
                "an unfinished backfill pass over other tenants is abandoned",
                extra={"pass_id": current.id},
            )
        current = Pass(uuid.uuid4().hex[:16], scope, self.clock.now())
        self.checkpoints.save_pass(current)
        return current

    def _tenant(self, tenant: str, throttle: Throttle, pass_id: str) -> TenantCopy:
        checkpoint = self.checkpoints.load(tenant)
        if checkpoint is not None and checkpoint.pass_id == pass_id and checkpoint.complete:
            log.info("backfill tenant already done in this pass", extra={"tenant": tenant})
            return TenantCopy(
                tenant,
                checkpoint.processed,
                failed_in_pass=checkpoint.failed,
                failed_ids=checkpoint.failed_ids,
                resumed_after_docs=checkpoint.processed,
                complete=True,
                done_earlier=True,
            )
        if checkpoint is None or checkpoint.pass_id != pass_id:
            checkpoint = Checkpoint(tenant, pass_id, updated_at=self.clock.now())
        total = self.source.count(tenant)
        copy = TenantCopy(tenant, total, resumed_after_docs=checkpoint.processed)
        if checkpoint.after is not None:
            log.info(
                "backfill resumes from checkpoint",
                extra={"tenant": tenant, "after": checkpoint.after, "done": checkpoint.processed},
            )
        converger = Converger(
            self.source, self.destination, tenant, clock=self.clock, retry=self.retry
        )
        pages = resilient_scan(
            self.source,
            tenant,
            batch_size=self.batch_size,
            after=checkpoint.after,
            retry=self.retry,
            clock=self.clock,
        )
        self.progress.begin(tenant, total, checkpoint.processed)
        stopped = False
        try:
            with prefetched(pages, self.prefetch_depth) as ahead:
                for page in ahead:
                    if self.stop.is_set() or not throttle.wait(len(page), self.stop):
                        stopped = True
                        break
                    ids = [d.doc_id for d in page]
                    outcome = converger.apply(ids, seed={d.doc_id: d for d in page})
                    not_done = outcome.failed + outcome.unsettled
                    checkpoint = checkpoint.advanced(
                        ids[-1],
                        processed=len(page),
                        written=outcome.written,
                        unchanged=outcome.unchanged,
                        deleted=outcome.deleted,
                        failed_ids=not_done,
                        now=self.clock.now(),
                    )
                    self.checkpoints.save(checkpoint)
                    copy = replace(
                        copy,
                        processed=copy.processed + len(page),
                        written=copy.written + outcome.written,
                        unchanged=copy.unchanged + outcome.unchanged,
                        deleted=copy.deleted + outcome.deleted,
                        failed=copy.failed + len(not_done),
                        failed_in_pass=checkpoint.failed,
                        failed_ids=checkpoint.failed_ids,
                    )
                    if not_done:
                        log.warning(
                            "documents not copied",
                            extra={"tenant": tenant, "doc_ids": list(not_done)[:20]},
                        )
                    self.progress.advance(len(page))
        finally:
            self.progress.end()
        copy = replace(copy, failed_in_pass=checkpoint.failed, failed_ids=checkpoint.failed_ids)
        if stopped:
            return copy
        self.checkpoints.save(replace(checkpoint, complete=True, updated_at=self.clock.now()))
        log.info(
            "backfill tenant done",
            extra={
                "tenant": tenant,
                "copied": copy.written,
                "skipped": copy.unchanged,
                "failed": copy.failed,
            },
        )
        return replace(copy, complete=True)


def backfill(source: VectorStore, destination: VectorStore, **options: Any) -> BackfillReport:
    """Copy ``source`` into ``destination``; ``options`` are `Backfill`'s fields."""
    return Backfill(source, destination, **options).run()


__all__ = ["Backfill", "BackfillReport", "TenantCopy", "backfill"]

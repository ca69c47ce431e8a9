"""The outbox boundary: changes that the deferred backend has not received yet, kept durably
until a replay applies them. This module holds the values and the `Outbox` Protocol only; it
imports no implementation, so the implementations import it without a cycle, and
`shadowswap.dualwrite.outbox_url.open_outbox` picks one from ``RETRIEVAL_DUAL_WRITE_OUTBOX_URL``.

Why an outbox at all: the deferred backend will be slow, down or restarted, and none of that
may fail the caller's write or lose the change (runbook 000). A change that could not be
written inline is *appended* here; ``shadowswap replay-outbox`` (cron) *claims* items, applies
them and *acks* them. Two implementations share the semantics below and one contract suite
(``tests/dualwrite/test_outbox_contract.py``):

* `shadowswap.dualwrite.sqlite_outbox.SqliteOutbox` — the default, a SQLite file in WAL mode
  (also what tests and demos use, in a temporary directory);
* `shadowswap.dualwrite.postgres_outbox.PostgresOutbox` — when ``RETRIEVAL_DUAL_WRITE_OUTBOX_URL``
  is a ``postgresql://`` DSN, so that several replicas share one outbox.

Content
    An item says *which* document changed (tenant, doc id), how (upsert or delete), for which
    backend, and for an upsert the content hash the document has now: runbook 000's
    idempotency key. Never the content itself: the replay copies the document from the
    backend that received the write synchronously, and applies it only while that backend
    still holds that very hash. So the outbox holds no vectors, text or metadata (nothing to
    protect, nothing to leak), stays small, and an append costs little more than its commit.

Semantics
    seq         every item gets a sequence number that only grows and is never reused; it
                orders the changes of one document (only the newest is applied).
    capacity    ``append`` stores changes while the outbox holds fewer than ``capacity``
                items and refuses the rest (reason ``full``), within the tenants' shares:
    shares      with ``share`` s > 0 (`tenant_share`), every tenant has s items reserved.
                A change of a tenant that holds fewer than s items is stored while the
                outbox is not full. A change of a tenant that holds s or more is stored only
                while it leaves free what the others' reserves need: the rest of the share of
                every *other* tenant in the outbox below its share, plus one whole share for
                a tenant that has no item yet. Counted and decided in the transaction that
                inserts (SQLite: under the file's write lock, exact; PostgreSQL: see its
                module). So no tenant's flood can take another's share, a tenant that has not
                written yet still finds one share free, and a tenant alone may use all but
                one share (`max_deferrable`: a write with more changes can never be stored
                whole, and the writer refuses it before writing anything). Several tenants
                new at the same moment share that one free share; ``s = 0`` turns shares
                off (first come, first served).
    age         items older than ``ttl_s`` are deleted (reason ``ttl``) by every ``append``
                and ``expire`` (a replay expires before it claims).
    dropped     every refused or expired change is counted (totals in `OutboxStats`, and
                per tenant in `Outbox.tenants`) and its
                ``(tenant, doc_id, destination)`` recorded (`Outbox.dropped`), so that
                reconcile can repair exactly those documents; never its content.
    claim       takes *whole documents*: every item of each claimed (tenant, doc_id), leased
                to one owner for ``lease_s`` seconds. A document with an item leased by
                another owner is not claimed, so two replays never work on the same document
                at once; a replay that dies leaves leases that expire. ``append`` may lease
                new items to their writer at once: it applies them itself, in the background,
                and a replay takes them only if the writer died.
    ack/fail    only the lease owner can ack (delete) or fail (attempts + 1, last error kept)
                its items.
    durability  an item is stored when ``append`` returns (SQLite: in the WAL, surviving any
                process crash; with ``?synchronous=full`` also a power cut; PostgreSQL: its
                commit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from shadowswap.values import Document

Op = Literal["upsert", "delete"]
Reason = Literal["full", "ttl"]
DEFAULT_LEASE_S = 300.0


def tenant_share(capacity: int, fraction: float) -> int:
    """Items of an outbox of ``capacity`` reserved for each tenant: ``fraction`` of it
    (``RETRIEVAL_DUAL_WRITE_OUTBOX_TENANT_SHARE``) rounded up, at least 1 when the fraction is
    not 0, and never more than half the capacity (a tenant alone keeps the other half)."""
    if fraction <= 0 or capacity <= 1:
        return 0
    return min(capacity // 2, max(1, math.ceil(capacity * fraction)))


def max_deferrable(capacity: int, share: int) -> int:
    """The most changes one tenant may ever hold in the outbox (all but the one share kept
    for a tenant that has not written yet): a write with more can never be deferred whole."""
    return capacity - share


@dataclass(frozen=True)
class TenantUse:
    """One tenant's use of the outbox: items stored now, and the changes of this tenant
    dropped since the outbox was created (history, as `OutboxStats`' totals)."""

    tenant: str
    items: int
    dropped_full: int
    dropped_ttl: int


@dataclass(frozen=True)
class Change:
    """One change of one document, bound for the backend of kind ``destination``: which
    document, which operation, and for an upsert the content hash the document has now (as
    the stores keep it). Never its content. Build one with `Change.upsert` or `Change.delete`.
    """

    tenant: str
    doc_id: str
    destination: str
    op: Op
    content_hash: str | None = None
    trace_id: str | None = None

    @classmethod
    def upsert(cls, document: Document, destination: str, trace_id: str | None = None) -> Change:
        return cls(
            document.tenant, document.doc_id, destination, "upsert", document.content_hash, trace_id
        )

    @classmethod
    def delete(
        cls, tenant: str, doc_id: str, destination: str, trace_id: str | None = None
    ) -> Change:
        return cls(tenant, doc_id, destination, "delete", None, trace_id)


@dataclass(frozen=True)
class Item:
    """A stored change, as a claim returns it."""

    seq: int
    tenant: str
    doc_id: str
    destination: str
    op: Op
    content_hash: str | None
    trace_id: str | None
    created_at: float
    attempts: int
    last_error: str | None

    @classmethod
    def of(cls, seq: int, change: Change, created_at: float) -> Item:
        """The item ``append`` stored for ``change`` under ``seq``, without reading it back."""
        return cls(
            seq, change.tenant, change.doc_id, change.destination, change.op,
            change.content_hash, change.trace_id, created_at, 0, None,
        )  # fmt: skip

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.doc_id)


@dataclass(frozen=True)
class OutboxStats:
    """The stored state, whoever changed it: size, oldest item, drop totals since creation."""

    size: int
    oldest_created_at: float | None
    dropped_full: int
    dropped_ttl: int

    def oldest_age_s(self, now: float) -> float | None:
        return None if self.oldest_created_at is None else max(0.0, now - self.oldest_created_at)

    def dropped(self, reason: Reason) -> int:
        return self.dropped_full if reason == "full" else self.dropped_ttl


Key = tuple[str, str, str]  # (tenant, doc_id, destination)


@dataclass(frozen=True)
class Appended:
    """What `Outbox.append` did: sequence numbers of the changes stored (the first
    ``len(seqs)`` of those given, in order), changes refused because the outbox was full,
    items it expired on the way (their keys), the stored state after, and the time stamped."""

    seqs: tuple[int, ...]
    refused: tuple[Change, ...]
    expired: tuple[Key, ...]
    stats: OutboxStats
    created_at: float = 0.0


@dataclass(frozen=True)
class Claim:
    """Items leased to one owner, and how far the scan went (pass it back as ``after``)."""

    items: tuple[Item, ...]
    cursor: int


@dataclass(frozen=True)
class Dropped:
    """A change that was dropped and must be repaired by reconcile (no content kept)."""

    tenant: str
    doc_id: str
    destination: str
    reason: Reason
    dropped_at: float


@dataclass(frozen=True)
class Pending:
    """One line of a dry run: items of one tenant and operation."""

    tenant: str
    op: Op
    items: int
    documents: int
    oldest_created_at: float
    failing: int


class Outbox(Protocol):
    """See the module docstring for the semantics every implementation keeps."""

    @property
    def location(self) -> str:
        """The file or DSN (password masked), for messages."""

    def append(
        self,
        changes: Sequence[Change],
        *,
        now: float,
        capacity: int,
        ttl_s: float,
        lease_owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        share: int = 0,
    ) -> Appended:
        """Store ``changes`` (leased to ``lease_owner`` for ``lease_s`` when given: the dual
        writer applies its own items at once, and a replay takes them only if it died),
        within ``capacity`` and the tenants' ``share`` (module docstring); the others are
        refused, counted and recorded (reason ``full``)."""

    def discard(self, seqs: Sequence[int]) -> int:
        """Delete items whatever their lease (the write they belong to failed)."""

    def expire(self, *, now: float, ttl_s: float) -> tuple[Key, ...]:
        """Delete items older than ``ttl_s``; their (tenant, doc_id, destination)."""

    def stats(self) -> OutboxStats: ...

    def tenants(self) -> list[TenantUse]:
        """Every tenant with items stored or drops counted, by tenant id."""

    def last_seq(self) -> int:
        """The highest sequence number stored now (0 when empty)."""

    def claim(
        self,
        owner: str,
        *,
        limit: int,
        after: int,
        upto: int,
        now: float,
        lease_s: float = DEFAULT_LEASE_S,
        retry_s: float = 0.0,
    ) -> Claim:
        """Lease whole documents whose items have ``after < seq <= upto``, oldest first,
        until about ``limit`` items (a document is never split; the first one is always
        taken). Documents with an item at ``seq <= after`` are passed over: this run has
        already seen them; so are documents with an item that failed less than ``retry_s``
        ago (the writer's continuous drain backs off from them; the cron replay passes 0)."""

    def ack(self, owner: str, seqs: Sequence[int]) -> int: ...

    def fail(self, owner: str, seqs: Sequence[int], error: str, *, now: float) -> int: ...

    def release(self, owner: str, seqs: Sequence[int]) -> int:
        """Give items back untouched (no attempt counted)."""

    def pending(self, *, limit: int | None = None) -> list[Pending]:
        """The ``limit`` oldest items grouped by tenant and operation (for a dry run)."""

    def dropped(self, *, limit: int = 1000) -> list[Dropped]: ...

    def forget_dropped(self, keys: Sequence[Key]) -> int:
        """Forget dropped records (tenant, doc_id, destination) once reconcile repaired them."""

    def close(self) -> None: ...

"""The outbox algorithms once, in SQL that SQLite and PostgreSQL both run.

The two SQL outboxes differ only in how a transaction starts (SQLite ``BEGIN IMMEDIATE``
takes the file's write lock; PostgreSQL claims also take an advisory lock and lock item rows
``FOR UPDATE SKIP LOCKED``), how the size is counted (a counter kept by triggers in SQLite; a
``count(*)`` in PostgreSQL, where one hot counter row would serialise every replica's
appends), their DDL and their errors. Everything else — capacity, age, drop records, whole-
document claims with leases, ack and fail by the lease owner only — lives here, so both keep
exactly the semantics of `shadowswap.dualwrite.outbox`.

SQL is written with ``?`` placeholders and ``{items}``, ``{dropped}``, ``{counters}``,
``{tenants}`` table names; each dialect fills them in.

Tenants' shares (`shadowswap.dualwrite.outbox`, "shares") are decided in the transaction
that inserts, from the items each tenant holds (`SqlOutbox._per_tenant`): SQLite reads
counters kept by triggers (one row per tenant, as its ``size``), so an append costs the same
whatever the outbox holds; PostgreSQL counts them (``GROUP BY tenant`` through the
``(tenant, doc_id, seq)`` index), because a counter row would make every append of a tenant
wait on one hot row, which is what its ``count(*)`` avoids already. Drops are
also counted per tenant in ``{tenants}`` (one row per tenant that ever lost a change): the
status page shows them, and the metric keeps its one ``reason`` label (a label per tenant
would make its cardinality the number of tenants).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

from shadowswap.dualwrite.outbox import (
    DEFAULT_LEASE_S,
    Appended,
    Change,
    Claim,
    Dropped,
    Item,
    Key,
    OutboxStats,
    Pending,
    Reason,
    TenantUse,
)

_CHUNK = 400  # bound parameters per IN list
_ITEM_COLUMNS = (
    "seq, tenant, doc_id, destination, op, content_hash, trace_id, created_at, attempts, last_error"
)


class Query(Protocol):
    """What a dialect's transaction offers the shared code."""

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; the number of rows changed."""


def _chunks(values: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _item(row: tuple[Any, ...]) -> Item:
    return Item(
        seq=int(row[0]),
        tenant=row[1],
        doc_id=row[2],
        destination=row[3],
        op=row[4],
        content_hash=row[5],
        trace_id=row[6],
        created_at=float(row[7]),
        attempts=int(row[8]),
        last_error=row[9],
    )


class SqlOutbox(abc.ABC):
    """Shared implementation of `shadowswap.dualwrite.outbox.Outbox` over SQL."""

    #: table names, filled into the SQL by `_sql`
    tables: ClassVar[dict[str, str]]
    #: appended to the claim's row selection (PostgreSQL: FOR UPDATE SKIP LOCKED)
    lock_rows: ClassVar[str] = ""

    # -- what a dialect provides ----------------------------------------------------------
    @property
    @abc.abstractmethod
    def location(self) -> str: ...

    @abc.abstractmethod
    def _tx(self, op: str, *, write: bool = True) -> AbstractContextManager[Query]:
        """A transaction (exclusive for writers in SQLite); errors mapped to ours."""

    @abc.abstractmethod
    def _size(self, q: Query) -> int: ...

    def _claim_lock(self, q: Query) -> None:  # noqa: B027 - only PostgreSQL needs it
        """Serialise claimers (SQLite's BEGIN IMMEDIATE already does)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def _sql(self, text: str) -> str:
        return text.format(**self.tables)

    # -- appending ------------------------------------------------------------------------
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
        lease_until = None if lease_owner is None else now + lease_s
        with self._tx("append") as q:
            expired = self._expire(q, now, ttl_s)
            admitted, refused_list = self._admit(q, changes, capacity, share)
            insert = self._sql(
                "INSERT INTO {items} (tenant, doc_id, destination, op, content_hash, trace_id, "
                "created_at, attempts, lease_owner, lease_until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?) RETURNING seq"
            )
            seqs: list[int] = []
            for change in admitted:
                row = q.one(
                    insert,
                    (
                        change.tenant,
                        change.doc_id,
                        change.destination,
                        change.op,
                        change.content_hash,
                        change.trace_id,
                        now,
                        lease_owner,
                        lease_until,
                    ),
                )
                assert row is not None
                seqs.append(int(row[0]))
            refused = tuple(refused_list)
            if refused:
                keys = [(c.tenant, c.doc_id, c.destination) for c in refused]
                self._record_dropped(q, keys, "full", now)
            stats = self._stats(q)
        return Appended(tuple(seqs), refused, expired, stats, now)

    def _admit(
        self, q: Query, changes: Sequence[Change], capacity: int, share: int
    ) -> tuple[list[Change], list[Change]]:
        """Which of ``changes`` fit, in order (`shadowswap.dualwrite.outbox`, "shares")."""
        if not changes:
            return [], []
        size = self._size(q)
        if share <= 0:
            room = max(0, capacity - size)
            return list(changes[:room]), list(changes[room:])
        held = self._per_tenant(q)
        # what the tenants below their share may still claim, all together
        owed = sum(share - n for n in held.values() if n < share)
        admitted: list[Change] = []
        refused: list[Change] = []
        for change in changes:
            mine = held.get(change.tenant, 0)
            # within its share: while not full; beyond it: leave the others' reserves and
            # one new share free
            limit = capacity if mine < share else capacity - owed - share
            if size + 1 > limit:
                refused.append(change)
                continue
            admitted.append(change)
            size += 1
            held[change.tenant] = mine + 1
            if mine == 0:  # a tenant arrives: the rest of its share is reserved from now on
                owed += share - 1
            elif mine < share:
                owed -= 1
        return admitted, refused

    def _per_tenant(self, q: Query) -> dict[str, int]:
        """Items stored per tenant (tenants holding none are left out)."""
        rows = q.all(self._sql("SELECT tenant, COUNT(*) FROM {items} GROUP BY tenant"))
        return {str(tenant): int(n) for tenant, n in rows}

    def discard(self, seqs: Sequence[int]) -> int:
        if not seqs:
            return 0
        removed = 0
        with self._tx("discard") as q:
            for chunk in _chunks(seqs):
                removed += q.run(
                    self._sql(f"DELETE FROM {{items}} WHERE seq IN ({_marks(len(chunk))})"),
                    tuple(chunk),
                )
        return removed

    def expire(self, *, now: float, ttl_s: float) -> tuple[Key, ...]:
        with self._tx("expire") as q:
            return self._expire(q, now, ttl_s)

    def _expire(self, q: Query, now: float, ttl_s: float) -> tuple[Key, ...]:
        rows = q.all(
            self._sql(
                "DELETE FROM {items} WHERE created_at < ? RETURNING tenant, doc_id, destination"
            ),
            (now - ttl_s,),
        )
        keys = tuple((str(r[0]), str(r[1]), str(r[2])) for r in rows)
        if keys:
            self._record_dropped(q, keys, "ttl", now)
        return keys

    def _record_dropped(self, q: Query, keys: Sequence[Key], reason: Reason, now: float) -> None:
        record = self._sql(
            "INSERT INTO {dropped} (tenant, doc_id, destination, reason, dropped_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, doc_id, destination) DO UPDATE SET "
            "reason = excluded.reason, dropped_at = excluded.dropped_at"
        )
        for tenant, doc_id, destination in dict.fromkeys(keys):
            q.run(record, (tenant, doc_id, destination, reason, now))
        q.run(
            self._sql("UPDATE {counters} SET value = value + ? WHERE name = ?"),
            (len(keys), f"dropped_{reason}"),
        )
        per_tenant: dict[str, int] = {}
        for tenant, _, _ in keys:
            per_tenant[tenant] = per_tenant.get(tenant, 0) + 1
        count = self._sql(
            "INSERT INTO {tenants} AS t (tenant, dropped_full, dropped_ttl) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant) DO UPDATE SET dropped_full = t.dropped_full + "
            "excluded.dropped_full, dropped_ttl = t.dropped_ttl + excluded.dropped_ttl"
        )
        for tenant, n in sorted(per_tenant.items()):
            q.run(count, (tenant, n if reason == "full" else 0, n if reason == "ttl" else 0))

    # -- reading --------------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        with self._tx("stats", write=False) as q:
            return self._stats(q)

    def _stats(self, q: Query) -> OutboxStats:
        size = self._size(q)
        row = q.one(self._sql("SELECT MIN(created_at) FROM {items}"))
        counters = {
            str(name): int(value)
            for name, value in q.all(self._sql("SELECT name, value FROM {counters}"))
        }
        return OutboxStats(
            size=size,
            oldest_created_at=None if row is None or row[0] is None else float(row[0]),
            dropped_full=counters.get("dropped_full", 0),
            dropped_ttl=counters.get("dropped_ttl", 0),
        )

    def tenants(self) -> list[TenantUse]:
        with self._tx("tenants", write=False) as q:
            held = self._per_tenant(q)
            drops = {
                str(r[0]): (int(r[1]), int(r[2]))
                for r in q.all(self._sql("SELECT tenant, dropped_full, dropped_ttl FROM {tenants}"))
            }
        return [
            TenantUse(tenant, held.get(tenant, 0), *drops.get(tenant, (0, 0)))
            for tenant in sorted(held.keys() | drops.keys())
            if held.get(tenant, 0) or any(drops.get(tenant, (0, 0)))
        ]

    def last_seq(self) -> int:
        with self._tx("last_seq", write=False) as q:
            row = q.one(self._sql("SELECT COALESCE(MAX(seq), 0) FROM {items}"))
        return 0 if row is None else int(row[0])

    def pending(self, *, limit: int | None = None) -> list[Pending]:
        due = "SELECT tenant, doc_id, op, created_at, attempts FROM {items} ORDER BY seq"
        params: tuple[Any, ...] = ()
        if limit is not None:
            due += " LIMIT ?"
            params = (limit,)
        sql = self._sql(
            "SELECT tenant, op, COUNT(*), COUNT(DISTINCT doc_id), MIN(created_at), "
            "SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) "
            f"FROM ({due}) AS due GROUP BY tenant, op ORDER BY tenant, op"
        )
        with self._tx("pending", write=False) as q:
            rows = q.all(sql, params)
        return [
            Pending(r[0], r[1], int(r[2]), int(r[3]), float(r[4]), int(r[5] or 0)) for r in rows
        ]

    def dropped(self, *, limit: int = 1000) -> list[Dropped]:
        with self._tx("dropped", write=False) as q:
            rows = q.all(
                self._sql(
                    "SELECT tenant, doc_id, destination, reason, dropped_at FROM {dropped} "
                    "ORDER BY dropped_at, tenant, doc_id LIMIT ?"
                ),
                (limit,),
            )
        return [Dropped(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]

    def forget_dropped(self, keys: Sequence[Key]) -> int:
        forgotten = 0
        with self._tx("forget_dropped") as q:
            for tenant, doc_id, destination in keys:
                forgotten += q.run(
                    self._sql(
                        "DELETE FROM {dropped} WHERE tenant = ? AND doc_id = ? AND destination = ?"
                    ),
                    (tenant, doc_id, destination),
                )
        return forgotten

    # -- claiming -------------------------------------------------------------------------
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
        scan = self._sql(
            "SELECT seq, tenant, doc_id FROM {items} WHERE seq > ? AND seq <= ? "
            "ORDER BY seq LIMIT ?"
        )
        blocked = self._sql(
            "SELECT 1 FROM {items} WHERE tenant = ? AND doc_id = ? AND (seq <= ? OR "
            "(lease_until > ? AND lease_owner <> ?) OR "
            "(attempts > 0 AND last_attempt_at > ?)) LIMIT 1"
        )
        whole = self._sql(
            f"SELECT {_ITEM_COLUMNS} FROM {{items}} WHERE tenant = ? AND doc_id = ? "
            f"AND seq <= ? ORDER BY seq{self.lock_rows}"
        )
        page = max(64, 4 * limit)
        taken: list[Item] = []
        seen: set[tuple[str, str]] = set()
        cursor = after
        with self._tx("claim") as q:
            self._claim_lock(q)
            while len(taken) < limit:
                rows = q.all(scan, (cursor, upto, page))
                for seq, tenant, doc_id in rows:
                    cursor = int(seq)
                    if (tenant, doc_id) in seen:
                        continue
                    seen.add((tenant, doc_id))
                    hit = q.one(blocked, (tenant, doc_id, after, now, owner, now - retry_s))
                    if hit is not None:
                        continue
                    taken += [_item(r) for r in q.all(whole, (tenant, doc_id, upto))]
                    if len(taken) >= limit:
                        break
                if len(rows) < page:
                    break
            lease = self._sql("UPDATE {items} SET lease_owner = ?, lease_until = ? WHERE seq IN ")
            for chunk in _chunks([i.seq for i in taken]):
                q.run(f"{lease}({_marks(len(chunk))})", (owner, now + lease_s, *chunk))
        return Claim(tuple(sorted(taken, key=lambda i: i.seq)), cursor)

    def ack(self, owner: str, seqs: Sequence[int]) -> int:
        return self._owned("ack", "DELETE FROM {items}", (), owner, seqs)

    def fail(self, owner: str, seqs: Sequence[int], error: str, *, now: float) -> int:
        return self._owned(
            "fail",
            "UPDATE {items} SET attempts = attempts + 1, last_error = ?, last_attempt_at = ?, "
            "lease_owner = NULL, lease_until = NULL",
            (error[:1000], now),
            owner,
            seqs,
        )

    def release(self, owner: str, seqs: Sequence[int]) -> int:
        return self._owned(
            "release", "UPDATE {items} SET lease_owner = NULL, lease_until = NULL", (), owner, seqs
        )

    def _owned(
        self, op: str, head: str, params: tuple[Any, ...], owner: str, seqs: Sequence[int]
    ) -> int:
        if not seqs:
            return 0
        changed = 0
        with self._tx(op) as q:
            for chunk in _chunks(seqs):
                sql = self._sql(head) + f" WHERE lease_owner = ? AND seq IN ({_marks(len(chunk))})"
                changed += q.run(sql, (*params, owner, *chunk))
        return changed

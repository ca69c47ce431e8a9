"""An outbox in this process's memory: the same semantics as the SQL outboxes (the contract
suite runs against all three), nothing durable. For tests, demos and the benchmark's
baseline; never for production, where a crash would lose every pending change."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

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
)


@dataclass
class _Row:
    item: Item
    lease_owner: str | None = None
    lease_until: float | None = None


class MemoryOutbox:
    """See the module docstring.

    >>> box = MemoryOutbox()
    >>> box.stats().size
    0
    """

    def __init__(self, location: str = "memory") -> None:
        self._location = location
        self._lock = threading.Lock()
        self._rows: dict[int, _Row] = {}
        self._seq = 0
        self._dropped: dict[Key, Dropped] = {}
        self._drops = {"full": 0, "ttl": 0}

    @property
    def location(self) -> str:
        return self._location

    def append(
        self,
        changes: Sequence[Change],
        *,
        now: float,
        capacity: int,
        ttl_s: float,
        lease_owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> Appended:
        lease_until = None if lease_owner is None else now + lease_s
        with self._lock:
            expired = self._expire(now, ttl_s)
            room = max(0, capacity - len(self._rows))
            seqs = []
            for change in changes[:room]:
                self._seq += 1
                self._rows[self._seq] = _Row(
                    Item.of(self._seq, change, now), lease_owner, lease_until
                )
                seqs.append(self._seq)
            refused = tuple(changes[room:])
            self._record([(c.tenant, c.doc_id, c.destination) for c in refused], "full", now)
            return Appended(tuple(seqs), refused, expired, self._stats(), now)

    def discard(self, seqs: Sequence[int]) -> int:
        with self._lock:
            return sum(1 for s in seqs if self._rows.pop(s, None) is not None)

    def expire(self, *, now: float, ttl_s: float) -> tuple[Key, ...]:
        with self._lock:
            return self._expire(now, ttl_s)

    def _expire(self, now: float, ttl_s: float) -> tuple[Key, ...]:
        old = sorted(s for s, r in self._rows.items() if r.item.created_at < now - ttl_s)
        keys = tuple(
            (self._rows[s].item.tenant, self._rows[s].item.doc_id, self._rows[s].item.destination)
            for s in old
        )
        for s in old:
            del self._rows[s]
        self._record(list(keys), "ttl", now)
        return keys

    def _record(self, keys: list[Key], reason: Reason, now: float) -> None:
        if not keys:
            return
        self._drops[reason] += len(keys)
        for key in keys:
            self._dropped[key] = Dropped(key[0], key[1], key[2], reason, now)

    def stats(self) -> OutboxStats:
        with self._lock:
            return self._stats()

    def _stats(self) -> OutboxStats:
        oldest = min((r.item.created_at for r in self._rows.values()), default=None)
        return OutboxStats(len(self._rows), oldest, self._drops["full"], self._drops["ttl"])

    def last_seq(self) -> int:
        with self._lock:
            return max(self._rows, default=0)

    def claim(
        self,
        owner: str,
        *,
        limit: int,
        after: int,
        upto: int,
        now: float,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> Claim:
        with self._lock:
            by_key: dict[tuple[str, str], list[int]] = {}
            for seq in sorted(self._rows):
                by_key.setdefault(self._rows[seq].item.key, []).append(seq)
            taken: list[int] = []
            cursor = after
            seen: set[tuple[str, str]] = set()
            for seq in sorted(s for s in self._rows if after < s <= upto):
                cursor = seq
                key = self._rows[seq].item.key
                if key in seen:
                    continue
                seen.add(key)
                if any(s <= after or self._leased_by_other(s, owner, now) for s in by_key[key]):
                    continue
                taken += [s for s in by_key[key] if s <= upto]
                if len(taken) >= limit:
                    break
            for seq in taken:
                self._rows[seq].lease_owner = owner
                self._rows[seq].lease_until = now + lease_s
            return Claim(tuple(self._rows[s].item for s in sorted(taken)), cursor)

    def _leased_by_other(self, seq: int, owner: str, now: float) -> bool:
        row = self._rows[seq]
        return row.lease_until is not None and row.lease_until > now and row.lease_owner != owner

    def _owned(self, owner: str, seqs: Sequence[int]) -> list[int]:
        return [s for s in seqs if s in self._rows and self._rows[s].lease_owner == owner]

    def ack(self, owner: str, seqs: Sequence[int]) -> int:
        with self._lock:
            mine = self._owned(owner, seqs)
            for s in mine:
                del self._rows[s]
            return len(mine)

    def fail(self, owner: str, seqs: Sequence[int], error: str, *, now: float) -> int:
        with self._lock:
            mine = self._owned(owner, seqs)
            for s in mine:
                item = self._rows[s].item
                self._rows[s] = _Row(
                    replace(item, attempts=item.attempts + 1, last_error=error[:1000])
                )
            return len(mine)

    def release(self, owner: str, seqs: Sequence[int]) -> int:
        with self._lock:
            mine = self._owned(owner, seqs)
            for s in mine:
                self._rows[s] = _Row(self._rows[s].item)
            return len(mine)

    def pending(self, *, limit: int | None = None) -> list[Pending]:
        with self._lock:
            due = [self._rows[s].item for s in sorted(self._rows)][:limit]
        groups: dict[tuple[str, str], list[Item]] = {}
        for item in due:
            groups.setdefault((item.tenant, item.op), []).append(item)
        return [
            Pending(
                tenant,
                items[0].op,
                len(items),
                len({i.doc_id for i in items}),
                min(i.created_at for i in items),
                sum(1 for i in items if i.attempts > 0),
            )
            for (tenant, _op), items in sorted(groups.items())
        ]

    def dropped(self, *, limit: int = 1000) -> list[Dropped]:
        with self._lock:
            rows = sorted(self._dropped.values(), key=lambda d: (d.dropped_at, d.tenant, d.doc_id))
        return rows[:limit]

    def forget_dropped(self, keys: Sequence[Key]) -> int:
        with self._lock:
            return sum(1 for k in keys if self._dropped.pop(k, None) is not None)

    def close(self) -> None:
        pass

"""Which documents changed while a shadow read was under way: the process's write sequence.

A shadow read compares two answers taken at two moments: the primary's, when the caller was
served, and the target's, a few milliseconds later. A client that writes right after it
searches (RAG ingestion beside queries) changes the stores in between; the target's answer
then holds a document the primary's could not (written after it answered), or lacks one
(deleted since). Judged as of two moments, a faithful target looks like a faulty one.

`RecentWrites` lets the comparison put both answers back at the same moment:

    sequence    one counter per process, bumped at every change of a document: when the
                writer begins a write (before the synchronous store is written) and when the
                write has settled in both stores (the deferred store applied it, or it was
                left to the outbox). Each document remembers the sequence of its last bump.
    pending     documents whose write began and has not settled (the deferred store may
                not hold it yet).
    lagging     documents whose change was left to the outbox (the breaker was open, the
                deferred write failed, the outbox was full): the target is behind on them
                until the outbox is drained (`caught_up`, called when the writer sees an empty
                outbox). A target that lags is not a target that is wrong: the breaker and
                outbox criteria say so, the comparison leaves those documents out.
    the read    takes `now` before the primary is searched; after the target answered,
                `changed_since` names every document of the two answers that was bumped
                after that, or is pending now. Those are left out of both lists before the
                measures are computed (`shadowswap.shadow.read`).

Why not timestamps: two writes within one clock tick, and clocks that step, would make
"after" ambiguous; a sequence under one lock is exact within the process.

Limits: the sequence is per process. With several workers or replicas, a write made through
another process is not seen here: a document it adds is still found in the primary by the
lookup (an ordinary ranking difference, not a fault), but its agreement counts as a
difference. Memory is bounded: the last ``max_docs`` documents changed are remembered; a
read whose start is older than the oldest forgotten change (more than ``max_docs`` changes
during one shadow read) treats every document of its answers as possibly changed.

>>> recent = RecentWrites()
>>> start = recent.now()
>>> recent.begin("acme", ["d1"])
>>> sorted(recent.changed_since("acme", ["d1", "d2"], start))
['d1']
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

DEFAULT_MAX_DOCS = 100_000


class RecentWrites:
    """The process's write sequence and the documents changing now (module docstring)."""

    def __init__(self, max_docs: int = DEFAULT_MAX_DOCS) -> None:
        if max_docs < 1:
            raise ValueError("max_docs must be at least 1")
        self._max = max_docs
        self._lock = threading.Lock()
        self._seq = 0
        self._forgotten = 0  # the largest sequence of a document no longer remembered
        self._stamps: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._pending: dict[tuple[str, str], int] = {}
        self._lagging: set[tuple[str, str]] = set()

    def now(self) -> int:
        """The current sequence: take it before the primary is searched."""
        with self._lock:
            return self._seq

    def begin(self, tenant: str, doc_ids: Iterable[str]) -> None:
        """A write of these documents begins (before any store is written)."""
        with self._lock:
            self._seq += 1
            for doc_id in doc_ids:
                key = (tenant, doc_id)
                self._stamp_locked(key)
                self._pending[key] = self._pending.get(key, 0) + 1

    def settle(self, tenant: str, doc_ids: Iterable[str]) -> None:
        """The write that began for these documents is over, in both stores (or left to the
        outbox, or failed). Call once per `begin`."""
        with self._lock:
            self._seq += 1
            for doc_id in doc_ids:
                key = (tenant, doc_id)
                self._stamp_locked(key)
                left = self._pending.get(key, 0) - 1
                if left > 0:
                    self._pending[key] = left
                else:
                    self._pending.pop(key, None)

    def lag(self, tenant: str, doc_ids: Iterable[str]) -> None:
        """These documents' changes were left to the outbox: the target is behind on them."""
        with self._lock:
            self._seq += 1
            for doc_id in doc_ids:
                key = (tenant, doc_id)
                self._stamp_locked(key)
                self._lagging.add(key)

    def caught_up(self) -> None:
        """The outbox is empty: every change left to it has reached the target."""
        with self._lock:
            if not self._lagging:
                return
            self._seq += 1
            for key in self._lagging:
                self._stamp_locked(key)
            self._lagging.clear()

    def changed_since(self, tenant: str, doc_ids: Sequence[str], seq: int) -> set[str]:
        """Those of ``doc_ids`` changed after ``seq`` (a `now`), or being written now."""
        with self._lock:
            if seq < self._forgotten:
                return set(doc_ids)
            out: set[str] = set()
            for doc_id in doc_ids:
                key = (tenant, doc_id)
                if key in self._pending or key in self._lagging or self._stamps.get(key, -1) > seq:
                    out.add(doc_id)
            return out

    def pending(self) -> int:
        """Documents whose write has not settled, or whose change waits in the outbox."""
        with self._lock:
            return len(self._pending) + len(self._lagging - self._pending.keys())

    def _stamp_locked(self, key: tuple[str, str]) -> None:
        self._stamps[key] = self._seq
        self._stamps.move_to_end(key)
        while len(self._stamps) > self._max:
            _, stamp = self._stamps.popitem(last=False)
            self._forgotten = max(self._forgotten, stamp)

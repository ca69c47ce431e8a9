"""The live writes: a thread that inserts, updates (re-embeds) and deletes documents through
the dual writer while the ladder's other steps run, as the application would.

Each write call holds 1 to 4 documents of one tenant; the mix is 30 % inserts, 50 % updates,
20 % deletes, at a steady ``rate`` of calls per second (a slower machine simply gets fewer).
Every acknowledged call goes into the `Ledger`; a call that raised is marked uncertain.
`pause` waits until the thread is between two writes and keeps it there (for the quiet
moments a reconcile needs); `resume` lets it go on; `stop` ends it.

The writer only updates and deletes documents it may touch: the rehearsal's own data, or,
against the user's stores, the documents it inserted itself (``rehearsal-live-…``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shadowswap.clock import Clock
from shadowswap.dualwrite.writer import DualWriter, WriteResult
from shadowswap.errors import ShadowswapError
from shadowswap.rehearsal.data import LIVE_PREFIX, FreshVector
from shadowswap.rehearsal.ledger import Ledger
from shadowswap.similarity import Metric, canonical_vector
from shadowswap.values import Document

log = logging.getLogger("shadowswap.rehearsal.workload")

_MIX = (("insert", 0.3), ("update", 0.5), ("delete", 0.2))
_MAX_BATCH = 4
_REEMBED_NOISE = 0.15


@dataclass(frozen=True)
class WriterStats:
    """Counts so far. ``calls`` acknowledged write calls; documents by operation."""

    calls: int
    inserted: int
    updated: int
    deleted: int
    failed_calls: int
    outcomes: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "acknowledged_calls": self.calls,
            "inserted": self.inserted,
            "updated": self.updated,
            "deleted": self.deleted,
            "failed_calls": self.failed_calls,
            "deferred_outcomes": dict(self.outcomes),
        }


class LiveWriter:
    """Writes through ``writer`` on its own thread; see the module docstring."""

    def __init__(
        self,
        writer: DualWriter,
        ledger: Ledger,
        *,
        tenants: Sequence[str],
        touchable: Mapping[str, Sequence[Document]],
        fresh: FreshVector,
        metric: Metric,
        clock: Clock,
        seed: int,
        rate: float,
    ) -> None:
        self._writer = writer
        self._ledger = ledger
        self._tenants = list(tenants)
        self._docs: dict[str, dict[str, Document]] = {
            t: {d.doc_id: d for d in touchable.get(t, ())} for t in self._tenants
        }
        self._ids: dict[str, list[str]] = {t: list(self._docs[t]) for t in self._tenants}
        self._pos: dict[str, dict[str, int]] = {
            t: {doc_id: i for i, doc_id in enumerate(ids)} for t, ids in self._ids.items()
        }
        self._fresh = fresh
        self._metric = metric
        self._clock = clock
        self._gen = np.random.default_rng(seed)
        self._interval = 1.0 / rate
        self._next_id = 0
        self._counts: Counter[str] = Counter()
        self._outcomes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rehearsal-writer", daemon=True)

    # -- control ----------------------------------------------------------------------------
    def start(self) -> None:
        self._running.set()
        self._thread.start()

    def pause(self, timeout_s: float = 30.0) -> bool:
        """Hold the thread between two writes; True once it is there."""
        self._idle.clear()
        self._running.clear()
        if not self._thread.is_alive():
            return True
        return self._idle.wait(timeout_s)

    def resume(self) -> None:
        self._running.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._running.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def stats(self) -> WriterStats:
        with self._lock:
            c = self._counts
            return WriterStats(
                c["calls"], c["insert"], c["update"], c["delete"], c["failed"], dict(self._outcomes)
            )

    # -- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        due = self._clock.monotonic()
        while not self._stop.is_set():
            if not self._running.is_set():
                self._idle.set()
                self._running.wait()
                due = self._clock.monotonic()
                continue
            self._write_once()
            due += self._interval
            delay = due - self._clock.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                due = self._clock.monotonic()  # behind: no burst to catch up
        self._idle.set()

    def _write_once(self) -> None:
        tenant = self._tenants[int(self._gen.integers(len(self._tenants)))]
        op = self._pick_op(tenant)
        n = int(self._gen.integers(1, _MAX_BATCH + 1))
        try:
            if op == "delete":
                ids = self._pick_ids(tenant, n)
                result = self._writer.delete(tenant, ids)
                self._ledger.deleted(tenant, ids)
                for doc_id in ids:
                    self._forget(tenant, doc_id)
            else:
                docs = self._inserts(tenant, n) if op == "insert" else self._updates(tenant, n)
                result = self._writer.upsert(tenant, docs)
                self._ledger.upserted(docs)
                for doc in docs:
                    self._remember(doc)
        except ShadowswapError as exc:
            affected = ids if op == "delete" else [d.doc_id for d in docs]
            self._ledger.failed(tenant, affected)
            with self._lock:
                self._counts["failed"] += 1
            log.warning(
                "live write failed",
                extra={"tenant": tenant, "op": op, "error": type(exc).__name__},
            )
            return
        self._count(op, len(ids) if op == "delete" else len(docs), result)

    def _count(self, op: str, documents: int, result: WriteResult) -> None:
        with self._lock:
            self._counts["calls"] += 1
            self._counts[op] += documents
            self._outcomes[result.outcome] += 1

    def _pick_op(self, tenant: str) -> str:
        draw = float(self._gen.random())
        op = _MIX[-1][0]
        for name, share in _MIX:
            if draw < share:
                op = name
                break
            draw -= share
        if op != "insert" and len(self._ids[tenant]) < _MAX_BATCH:
            return "insert"  # nothing (or too little) this writer may touch yet
        return op

    def _pick_ids(self, tenant: str, n: int) -> list[str]:
        ids = self._ids[tenant]
        picks = {ids[int(self._gen.integers(len(ids)))] for _ in range(n)}
        return sorted(picks)

    def _inserts(self, tenant: str, n: int) -> list[Document]:
        out = []
        for _ in range(n):
            vector, text = self._fresh(self._gen)
            self._next_id += 1
            doc_id = f"{LIVE_PREFIX}{self._next_id:07d}"
            out.append(self._canonical(Document(tenant, doc_id, vector, {"rev": 0}, text)))
        return out

    def _updates(self, tenant: str, n: int) -> list[Document]:
        out = []
        for doc_id in self._pick_ids(tenant, n):
            old = self._docs[tenant][doc_id]
            noise = self._gen.normal(size=old.dimension) * (_REEMBED_NOISE / np.sqrt(old.dimension))
            vector = (old.vector.astype(np.float64) + noise).astype(np.float32)
            rev = old.metadata.get("rev", 0)
            metadata = {**old.metadata, "rev": (rev if isinstance(rev, int) else 0) + 1}
            out.append(self._canonical(Document(tenant, doc_id, vector, metadata, old.text)))
        return out

    def _canonical(self, doc: Document) -> Document:
        vector = canonical_vector(doc.vector, self._metric)
        return doc if vector is doc.vector else doc.with_vector(vector)

    def _remember(self, doc: Document) -> None:
        known = self._docs[doc.tenant]
        if doc.doc_id not in known:
            ids = self._ids[doc.tenant]
            self._pos[doc.tenant][doc.doc_id] = len(ids)
            ids.append(doc.doc_id)
        known[doc.doc_id] = doc

    def _forget(self, tenant: str, doc_id: str) -> None:
        known = self._docs[tenant]
        if known.pop(doc_id, None) is None:
            return
        ids, pos = self._ids[tenant], self._pos[tenant]
        i = pos.pop(doc_id)
        last = ids.pop()
        if last != doc_id:  # move the last id into the hole
            ids[i] = last
            pos[last] = i

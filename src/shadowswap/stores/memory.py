"""The reference store: exact search over documents held in memory.

It ships in the package for tests, demos and as the yardstick every engine is compared with
(``tests/stores/test_congruence.py``). Scores are computed exactly in float64. Nothing is
persisted; ``location`` is only a label.

>>> store = MemoryStore()
>>> store.upsert("acme", [Document("acme", "a", [1.0, 0.0])]).written
1
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shadowswap.similarity import Metric, exact_scores
from shadowswap.stores.base import BaseStore, matches
from shadowswap.values import Document, Filter, Hit, Vector

#: Below this many ids, a write or delete updates the sorted id list id by id (a bisect and a
#: memmove each); above it, in one pass (a merge of sorted runs, or a filter).
_ONE_BY_ONE = 64


@dataclass(frozen=True)
class _Snapshot:
    """What a search reads, consistent and immutable: the ids in order, their documents and
    their vectors as one matrix (row i is ids[i])."""

    ids: tuple[str, ...]
    docs: tuple[Document, ...]
    matrix: npt.NDArray[np.float32]


class _Tenant:
    """One tenant's documents, their ids kept sorted as they are written (so scans never sort),
    and a search snapshot rebuilt lazily after writes."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}
        self.ids: list[str] = []
        self._snapshot: _Snapshot | None = None

    def put(self, documents: Sequence[Document]) -> None:
        new = [d.doc_id for d in documents if d.doc_id not in self.docs]
        for doc in documents:
            self.docs[doc.doc_id] = doc
        if len(new) <= _ONE_BY_ONE:
            for doc_id in new:
                bisect.insort(self.ids, doc_id)
        else:  # two sorted runs: list.sort merges them in one pass
            new.sort()
            self.ids.extend(new)
            self.ids.sort()
        self._snapshot = None

    def remove(self, doc_ids: Sequence[str]) -> int:
        gone = [d for d in doc_ids if self.docs.pop(d, None) is not None]
        if len(gone) <= _ONE_BY_ONE:
            for doc_id in gone:
                del self.ids[bisect.bisect_left(self.ids, doc_id)]
        else:
            dropped = set(gone)
            self.ids = [d for d in self.ids if d not in dropped]
        if gone:
            self._snapshot = None
        return len(gone)

    def snapshot(self) -> _Snapshot:
        if self._snapshot is None:
            docs = tuple(self.docs[d] for d in self.ids)
            self._snapshot = _Snapshot(tuple(self.ids), docs, np.stack([d.vector for d in docs]))
        return self._snapshot


class MemoryStore(BaseStore):
    """Exact, in-memory, thread-safe."""

    kind = "memory"

    def __init__(self, location: str = "memory", metric: Metric = Metric.COSINE) -> None:
        super().__init__(location, metric)
        self._lock = threading.RLock()
        self._tenants_data: dict[str, _Tenant] = {}
        self._dim: int | None = None

    def _stored_dimension(self) -> int | None:
        return self._dim

    def _fix_dimension(self, dimension: int) -> int:
        with self._lock:
            if self._dim is None:
                self._dim = dimension
            return self._dim

    def _tenant(self, tenant: str) -> _Tenant | None:
        return self._tenants_data.get(tenant)

    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            t = self._tenant(tenant)
            if t is None:
                return {}
            return {d: t.docs[d].content_hash for d in doc_ids if d in t.docs}

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        with self._lock:
            self._tenants_data.setdefault(tenant, _Tenant()).put(documents)

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        with self._lock:
            t = self._tenant(tenant)
            if t is None:
                return 0
            removed = t.remove(doc_ids)
            if not t.docs:
                del self._tenants_data[tenant]
            return removed

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        with self._lock:
            t = self._tenant(tenant)
            if t is None:
                return []
            snap = t.snapshot()
        scores = exact_scores(snap.matrix, vector, self._metric)
        rows = np.arange(len(snap.ids))
        if filter:
            keep = [i for i, d in enumerate(snap.docs) if matches(d.metadata, filter)]
            rows = np.asarray(keep, dtype=np.int64)
        if rows.size > k:  # keep everything tied with the k-th best, then order exactly
            kth = np.partition(-scores[rows], k - 1)[k - 1]
            rows = rows[-scores[rows] <= kth]
        order = np.lexsort((rows, -scores[rows]))  # best score first, then doc id order
        return [Hit(snap.ids[i], float(scores[i]), snap.docs[i].metadata) for i in rows[order][:k]]

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        with self._lock:
            t = self._tenant(tenant)
            if t is None:
                return {}
            return {d: t.docs[d] for d in doc_ids if d in t.docs}

    def _scan_page(self, tenant: str, after: str | None, limit: int) -> list[Document]:
        with self._lock:
            t = self._tenant(tenant)
            if t is None:
                return []
            start = 0 if after is None else bisect.bisect_right(t.ids, after)
            return [t.docs[d] for d in t.ids[start : start + limit]]

    def _count(self, tenant: str) -> int:
        with self._lock:
            t = self._tenant(tenant)
            return 0 if t is None else len(t.docs)

    def _tenants(self) -> list[str]:
        with self._lock:
            return [name for name, t in self._tenants_data.items() if t.docs]

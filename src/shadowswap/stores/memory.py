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

import numpy as np

from shadowswap.similarity import Metric, exact_scores
from shadowswap.stores.base import BaseStore, matches
from shadowswap.values import Document, Filter, Hit, Vector


class _Tenant:
    """One tenant's documents plus a sorted id list and a matrix, rebuilt after writes."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}
        self._ids: list[str] | None = None
        self._matrix: np.ndarray | None = None

    def invalidate(self) -> None:
        self._ids = None
        self._matrix = None

    def sorted_ids(self) -> list[str]:
        if self._ids is None:
            self._ids = sorted(self.docs)
        return self._ids

    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            self._matrix = np.stack([self.docs[i].vector for i in self.sorted_ids()])
        return self._matrix


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
            t = self._tenants_data.setdefault(tenant, _Tenant())
            for doc in documents:
                t.docs[doc.doc_id] = doc
            t.invalidate()

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        with self._lock:
            t = self._tenant(tenant)
            if t is None:
                return 0
            removed = sum(1 for d in doc_ids if t.docs.pop(d, None) is not None)
            if removed:
                t.invalidate()
            if not t.docs:
                del self._tenants_data[tenant]
            return removed

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        with self._lock:
            t = self._tenant(tenant)
            if t is None:
                return []
            ids = t.sorted_ids()
            matrix = t.matrix()
            docs = t.docs
        scores = exact_scores(matrix, vector, self._metric)
        rows = np.arange(len(ids))
        if filter:
            keep = [i for i, d in enumerate(ids) if matches(docs[d].metadata, filter)]
            rows = np.asarray(keep, dtype=np.int64)
        if rows.size > k:  # keep everything tied with the k-th best, then order exactly
            kth = np.partition(-scores[rows], k - 1)[k - 1]
            rows = rows[-scores[rows] <= kth]
        order = np.lexsort((rows, -scores[rows]))  # best score first, then doc id order
        return [Hit(ids[i], float(scores[i]), docs[ids[i]].metadata) for i in rows[order][:k]]

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
            keys = t.sorted_ids()
            start = 0 if after is None else bisect.bisect_right(keys, after)
            return [t.docs[d] for d in keys[start : start + limit]]

    def _count(self, tenant: str) -> int:
        with self._lock:
            t = self._tenant(tenant)
            return 0 if t is None else len(t.docs)

    def _tenants(self) -> list[str]:
        with self._lock:
            return [name for name, t in self._tenants_data.items() if t.docs]

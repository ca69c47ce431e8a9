"""The ledger of acknowledged writes, and the check that none was lost.

Every write the live writer made and the dual writer acknowledged (it returned) is recorded
in order, so each document's expected final state is its last acknowledged write: a content
hash for an upsert, absent for a delete. At the end, every such document is read back from
*both* stores by id: a document missing, holding another content hash, or present although
its last acknowledged write deleted it, is a lost write. ``lost_writes`` counts the
documents wrong in at least one store; the per-store numbers say where.

A write that raised was not acknowledged: the caller knows it failed, so its document's
state is uncertain and it is left out of the check (counted apart, as ``uncertain``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shadowswap.similarity import Metric, canonical_vector
from shadowswap.stores.base import VectorStore
from shadowswap.values import Document

_BATCH = 500
_EXAMPLES = 10
Key = tuple[str, str]


@dataclass(frozen=True)
class StoreLoss:
    """What one store got wrong: documents missing, stale (another hash), resurrected."""

    kind: str
    missing: int = 0
    stale: int = 0
    resurrected: int = 0

    @property
    def total(self) -> int:
        return self.missing + self.stale + self.resurrected

    def as_dict(self) -> dict[str, int]:
        return {
            "missing": self.missing,
            "stale": self.stale,
            "resurrected": self.resurrected,
            "total": self.total,
        }


@dataclass(frozen=True)
class LostWrites:
    """The result of the check. ``lost`` is CONTRACT §6's ``lost_writes``."""

    documents_checked: int
    lost: int
    stores: tuple[StoreLoss, ...]
    uncertain: int
    examples: tuple[str, ...] = field(default=())  # "tenant/doc_id", ids only

    def as_dict(self) -> dict[str, Any]:
        return {
            "lost_writes": self.lost,
            "documents_checked": self.documents_checked,
            "uncertain": self.uncertain,
            "stores": {s.kind: s.as_dict() for s in self.stores},
            "examples": list(self.examples),
        }


class Ledger:
    """Acknowledged writes in order; thread-safe. Hashes are those of the documents as the
    stores keep them (vectors canonical for ``metric``: unit length under cosine)."""

    def __init__(self, metric: Metric = Metric.COSINE) -> None:
        self._metric = metric
        self._expected: dict[Key, str | None] = {}
        self._uncertain: set[Key] = set()
        self._lock = threading.Lock()
        self.upserted_docs = 0
        self.deleted_docs = 0

    def upserted(self, documents: Iterable[Document]) -> None:
        """An upsert of these documents was acknowledged."""
        hashes = [(d.tenant, d.doc_id, self._stored_hash(d)) for d in documents]
        with self._lock:
            for tenant, doc_id, digest in hashes:
                key = (tenant, doc_id)
                self._expected[key] = digest
                self._uncertain.discard(key)
                self.upserted_docs += 1

    def deleted(self, tenant: str, doc_ids: Iterable[str]) -> None:
        """A delete of these ids was acknowledged."""
        with self._lock:
            for doc_id in doc_ids:
                key = (tenant, doc_id)
                self._expected[key] = None
                self._uncertain.discard(key)
                self.deleted_docs += 1

    def failed(self, tenant: str, doc_ids: Iterable[str]) -> None:
        """A write of these ids raised: their state is unknown until acknowledged again."""
        with self._lock:
            for doc_id in doc_ids:
                self._uncertain.add((tenant, doc_id))

    def _stored_hash(self, doc: Document) -> str:
        vector = canonical_vector(doc.vector, self._metric)
        return (doc if vector is doc.vector else doc.with_vector(vector)).content_hash

    @property
    def documents(self) -> int:
        with self._lock:
            return len(self._expected)

    def expected(self) -> dict[Key, str | None]:
        """Each document's state after its last acknowledged write (uncertain ones left out)."""
        with self._lock:
            return {k: v for k, v in self._expected.items() if k not in self._uncertain}

    def check(self, stores: Sequence[VectorStore]) -> LostWrites:
        """Read every acknowledged document back from each store and count what is wrong."""
        expected = self.expected()
        by_tenant: dict[str, list[str]] = {}
        for tenant, doc_id in expected:
            by_tenant.setdefault(tenant, []).append(doc_id)
        wrong: set[Key] = set()
        losses = []
        for store in stores:
            loss, bad = _check_store(store, by_tenant, expected)
            losses.append(loss)
            wrong |= bad
        with self._lock:
            uncertain = len(self._uncertain)
        examples = tuple(f"{t}/{d}" for t, d in sorted(wrong)[:_EXAMPLES])
        return LostWrites(len(expected), len(wrong), tuple(losses), uncertain, examples)


def _check_store(
    store: VectorStore, by_tenant: Mapping[str, list[str]], expected: Mapping[Key, str | None]
) -> tuple[StoreLoss, set[Key]]:
    missing = stale = resurrected = 0
    bad: set[Key] = set()
    for tenant, ids in sorted(by_tenant.items()):
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            held = store.get(tenant, chunk)
            for doc_id in chunk:
                want = expected[(tenant, doc_id)]
                doc = held.get(doc_id)
                if want is None and doc is None:
                    continue
                if want is None:
                    resurrected += 1
                elif doc is None:
                    missing += 1
                elif doc.content_hash != want:
                    stale += 1
                else:
                    continue
                bad.add((tenant, doc_id))
    return StoreLoss(store.kind, missing, stale, resurrected), bad

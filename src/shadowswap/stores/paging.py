"""Scanning for engines that cannot return documents ordered by id: list the tenant's ids
once, sort them in code point order, then fetch them in batches. One mechanism for every such
adapter (Chroma, Qdrant, Milvus, Weaviate, Pinecone): each only says how to list ids
(`SortedIdScan._all_ids`) and how to fetch documents by id (``_get``).

Memory grows with the number of ids (not with vectors). A document deleted between the
listing and its batch is skipped; one written after the listing is not seen by this scan
(a scan is a snapshot of ids, as a backfill or reconcile expects).
"""

from __future__ import annotations

import abc
import bisect
from collections.abc import Iterator, Sequence

from shadowswap.stores.base import BaseStore
from shadowswap.values import Document


class SortedIdScan(BaseStore):
    """A `BaseStore` whose ``scan`` lists ids with `_all_ids` and fetches them with `_get`."""

    @abc.abstractmethod
    def _all_ids(self, tenant: str) -> list[str]:
        """Every doc id the tenant holds, in any order."""

    def _scan_pages(
        self, tenant: str, batch_size: int, after: str | None
    ) -> Iterator[list[Document]]:
        with self._edge("scan", tenant):
            ids = sorted(self._all_ids(tenant))
        start = 0 if after is None else bisect.bisect_right(ids, after)
        for i in range(start, len(ids), batch_size):
            chunk: Sequence[str] = ids[i : i + batch_size]
            with self._edge("scan", tenant):
                docs = self._get(tenant, chunk)
            page = [docs[d] for d in chunk if d in docs]  # deleted meanwhile: skipped
            if page:
                yield page

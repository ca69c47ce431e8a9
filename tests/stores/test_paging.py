"""`SortedIdScan`, the scan of every engine that cannot page by id (Chroma, Qdrant, Milvus,
Weaviate, Pinecone): code point order whatever order ids are listed in, resumable, and a
snapshot of the ids listed when it starts."""

from __future__ import annotations

from collections.abc import Sequence

from shadowswap.stores.memory import MemoryStore
from shadowswap.stores.paging import SortedIdScan
from shadowswap.values import Document


class ListedStore(SortedIdScan, MemoryStore):
    """The memory store, scanned the way id-listing engines are (ids listed in reverse)."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[Sequence[str]] = []

    def _all_ids(self, tenant: str) -> list[str]:
        held = self._tenants_data.get(tenant)
        return [] if held is None else sorted(held.docs, reverse=True)

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        self.fetches.append(list(doc_ids))
        return super()._get(tenant, doc_ids)


def doc(doc_id: str) -> Document:
    return Document("t", doc_id, [1.0, 0.0])


def ids(pages: list[list[Document]]) -> list[list[str]]:
    return [[d.doc_id for d in page] for page in pages]


def test_pages_are_in_code_point_order_and_resume_after_an_id() -> None:
    store = ListedStore()
    store.upsert("t", [doc(i) for i in ["b", "é", "a", "Z", "c", "aa"]])
    assert ids(list(store.scan("t", batch_size=2))) == [["Z", "a"], ["aa", "b"], ["c", "é"]]
    assert ids(list(store.scan("t", batch_size=4, after="aa"))) == [["b", "c", "é"]]
    assert ids(list(store.scan("t", after="é"))) == []


def test_a_scan_is_a_snapshot_of_the_ids_listed_when_it_starts() -> None:
    store = ListedStore()
    store.upsert("t", [doc(i) for i in ["a", "b", "c", "d", "e"]])
    pages = store.scan("t", batch_size=2)
    first = next(pages)
    store.delete("t", ["c"])  # listed, deleted before its batch: skipped
    store.upsert("t", [doc("bb")])  # written after the listing: not seen
    assert ids([first, *pages]) == [["a", "b"], ["d"], ["e"]]
    assert store.fetches[-2:] == [["c", "d"], ["e"]]  # fetched in batches of the listing

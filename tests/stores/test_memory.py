"""The memory store's own bookkeeping: a sorted id list kept up to date write by write (so a
repair that interleaves writes and scans stays n log n), and searches that read a snapshot."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shadowswap.stores.memory import MemoryStore
from shadowswap.values import Document


class CountedId(str):
    """A doc id that counts the ordering comparisons made on it."""

    __slots__ = ()
    comparisons = 0

    def __lt__(self, other: str) -> bool:
        CountedId.comparisons += 1
        return str.__lt__(self, other)


def scanned(store: MemoryStore, batch_size: int = 7) -> list[str]:
    return [d.doc_id for page in store.scan("t", batch_size=batch_size) for d in page]


operations = st.lists(
    st.tuples(st.booleans(), st.lists(st.text("abcé", min_size=1, max_size=3), max_size=150)),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_scans_follow_every_write_and_delete_small_or_large(
    ops: list[tuple[bool, list[str]]],
) -> None:
    store, model = MemoryStore(), set()
    for write, ids in ops:
        if write:
            store.upsert("t", [Document("t", i, [1.0, float(len(i))]) for i in ids])
            model |= set(ids)
        else:
            store.delete("t", ids)
            model -= set(ids)
        assert scanned(store) == sorted(model)
        if model:
            assert sorted(store.search("t", [1.0, 0.0], 1000).doc_ids) == sorted(model)


def test_a_repair_interleaving_writes_and_scans_does_not_sort_again_and_again() -> None:
    n = 4000
    ids = [CountedId(f"doc-{i:05d}") for i in range(n)]
    random.Random(7).shuffle(ids)
    docs = [Document("t", i, [1.0, 0.0]) for i in ids]
    for batch in (40, 250):  # id by id, and merged in one pass
        store = MemoryStore()
        CountedId.comparisons = 0
        for start in range(0, n, batch):
            store.upsert("t", docs[start : start + batch])
            next(store.scan("t", batch_size=batch, after=docs[start].doc_id), None)
        # sorting every id again before each scan costs 2 million comparisons at a batch of
        # 40 and 340,000 at 250; keeping the list sorted costs 43,000 and 86,000 (n log2 n is
        # 48,000)
        assert CountedId.comparisons < 150_000, (batch, CountedId.comparisons)
        assert scanned(store, 1000) == sorted(ids)

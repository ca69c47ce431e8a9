"""The streamed sorted merge: every difference found, in the right kind, in one pass."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowswap.errors import StoreError
from shadowswap.stores.memory import MemoryStore
from shadowswap.sync.diff import Difference, compared, digest_stream, merge
from shadowswap.values import Document
from tests.sync.conftest import Opener, changed, load

ids = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=6)
listing = st.dictionaries(ids, st.sampled_from(["h1", "h2", "h3"]), max_size=40)


def stream(d: dict[str, str]) -> Iterator[tuple[str, str]]:
    return iter(sorted(d.items()))


@given(listing, listing)
def test_merge_equals_the_set_computation(source: dict[str, str], other: dict[str, str]) -> None:
    found = list(merge(stream(source), stream(other)))
    expected = (
        {Difference("missing", i) for i in source.keys() - other.keys()}
        | {Difference("extra", i) for i in other.keys() - source.keys()}
        | {Difference("stale", i) for i in source.keys() & other.keys() if source[i] != other[i]}
    )
    assert set(found) == expected
    assert len(found) == len(expected)  # each difference once
    assert [d.doc_id for d in found] == sorted(d.doc_id for d in found)  # streamed in id order


def test_code_point_order_across_stores(open_store_of: Opener) -> None:
    """Ids that sort differently by bytes-vs-UTF-16 or case still merge cleanly: SQLite's
    BINARY collation on UTF-8 equals Python's code point order."""
    odd = ["B", "a", "é", "z", "\U0001f600", "\uff41", "a b", "A"]
    faiss, memory = open_store_of("faiss"), MemoryStore()
    docs = [Document("t", i, [1.0, float(n)]) for n, i in enumerate(odd)]
    faiss.upsert("t", docs)
    memory.upsert("t", docs)
    assert [i for i, _ in digest_stream(faiss, "t", batch_size=3)] == sorted(odd)
    assert list(compared(faiss, memory, "t", batch_size=2)) == []


def test_faiss_digests_equal_recomputed_hashes(open_store_of: Opener) -> None:
    store = open_store_of("faiss")
    load(store, "t", 700)
    fast = list(digest_stream(store, "t", batch_size=128))
    deep = list(digest_stream(store, "t", batch_size=128, deep=True))
    assert fast == deep and len(fast) == 700


def test_deep_mode_catches_a_catalog_edited_behind_shadowswap(open_store_of: Opener) -> None:
    a, b = open_store_of("faiss", "a"), open_store_of("faiss", "b")
    docs = load(a, "t", 50)
    load(b, "t", 50)
    # Change one stored vector without touching its stored hash.
    b._db.execute(  # type: ignore[attr-defined]
        "UPDATE docs SET vector = ? WHERE doc_id = ?",
        (changed(docs[3]).vector[::-1].copy().tobytes(), docs[3].doc_id),
    )
    assert list(compared(a, b, "t")) == []  # stored hashes agree...
    assert list(compared(a, b, "t", deep=True)) == [Difference("stale", docs[3].doc_id)]


class Unordered(MemoryStore):
    def _scan_page(self, tenant: str, after: str | None, limit: int) -> list[Document]:
        page = super()._scan_page(tenant, after, limit)
        return list(reversed(page))


def test_a_store_breaking_the_order_promise_is_refused() -> None:
    store = Unordered()
    store.upsert("t", [Document("t", i, [1.0]) for i in "abc"])
    with pytest.raises(StoreError, match="out of order"):
        list(digest_stream(store, "t", batch_size=10))


@pytest.mark.parametrize("kind", ["memory", "faiss", "chroma"])
def test_hashes_and_digests_agree_with_the_documents(open_store_of: Opener, kind: str) -> None:
    store = open_store_of(kind)
    docs = load(store, "t", 300)
    held = {d.doc_id: d.content_hash for d in docs}
    listed = dict(digest_stream(store, "t", batch_size=64))
    assert listed == held
    some = [d.doc_id for d in docs[::7]] + ["absent"]
    assert store.hashes("t", some) == {i: held[i] for i in some if i in held}
    assert store.hashes("t", []) == {} and store.hashes("nobody", some) == {}

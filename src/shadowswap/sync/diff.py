"""What differs between two stores for one tenant: a streamed merge of two sorted id lists.

Both stores list a tenant's ``(doc_id, content_hash)`` pairs in ascending doc id order (code
point order, the store boundary's promise), one page at a time. Walking the two lists side by
side like the merge step of merge sort finds every difference in one pass:

    id only in the source        -> ``missing`` (the other store lacks it)
    id only in the other store   -> ``extra``   (the other store should not have it)
    id in both, hashes differ    -> ``stale``   (the other store holds another version)

Memory holds one page of each side (``batch_size`` pairs), whatever the tenant's size; time
is linear in the number of documents. Hashing into buckets would also bound memory, but
needs a second pass or spilled files and cannot name the differing ids as cheaply; the store
boundary already hands out sorted pages, so the merge is the simplest correct design.

Limits: the Chroma adapter cannot page by id and lists a tenant's ids once, so on Chroma the
memory of a scan grows with the number of ids (tens of bytes each, never vectors). A store
that broke the order promise would make the merge report nonsense, so the order is checked
as the pages arrive and a violation stops the comparison with a `StoreError`.

Hashes: `BaseStore.digests` lists stored hashes where an adapter keeps one beside the content
(FAISS: written by shadowswap, in the same statement as the content; its scanned documents
carry that hash too) and recomputes them from the documents elsewhere. ``deep=True``
recomputes them from the content on every store, which also catches a catalog edited outside
shadowswap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from shadowswap.errors import StoreError
from shadowswap.stores.base import BaseStore, VectorStore
from shadowswap.values import content_hash

Kind = Literal["missing", "extra", "stale"]
KINDS: tuple[Kind, ...] = ("missing", "extra", "stale")


@dataclass(frozen=True)
class Difference:
    """One document that is not the same in both stores."""

    kind: Kind
    doc_id: str


def digest_stream(
    store: VectorStore,
    tenant: str,
    *,
    batch_size: int,
    deep: bool = False,
    on_page: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, str]]:
    """Every ``(doc_id, content_hash)`` of the tenant, in strictly ascending id order;
    ``on_page`` hears the size of each page as it arrives (progress, counts)."""
    pages: Iterator[list[tuple[str, str]]]
    if isinstance(store, BaseStore) and not deep:
        pages = store.digests(tenant, batch_size=batch_size)
    else:
        # content_hash() from the parts, not Document.content_hash: a store may hand back the
        # hash it keeps beside the content (FAISS does), and deep mode must not trust it
        pages = (
            [(d.doc_id, content_hash(d.vector, d.metadata, d.text)) for d in page]
            for page in store.scan(tenant, batch_size=batch_size)
        )
    previous: str | None = None
    for page in pages:
        if on_page is not None:
            on_page(len(page))
        for pair in page:
            if previous is not None and not pair[0] > previous:
                raise StoreError(
                    store.kind,
                    "scan",
                    f"ids out of order ({previous!r} then {pair[0]!r}): the store broke the "
                    "ascending doc id promise, so no comparison is possible",
                    tenant,
                )
            previous = pair[0]
            yield pair


def merge(
    source: Iterator[tuple[str, str]], other: Iterator[tuple[str, str]]
) -> Iterator[Difference]:
    """The differences between two sorted digest streams (see the module docstring)."""
    a = next(source, None)
    b = next(other, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield Difference("missing", a[0])
            a = next(source, None)
        elif a is None or b[0] < a[0]:
            yield Difference("extra", b[0])
            b = next(other, None)
        else:
            if a[1] != b[1]:
                yield Difference("stale", a[0])
            a = next(source, None)
            b = next(other, None)


def compared(
    source: VectorStore,
    other: VectorStore,
    tenant: str,
    *,
    batch_size: int = 1000,
    deep: bool = False,
    on_source_page: Callable[[int], None] | None = None,
    on_other_page: Callable[[int], None] | None = None,
) -> Iterator[Difference]:
    """The differences of ``other`` with respect to ``source`` for one tenant."""
    return merge(
        digest_stream(source, tenant, batch_size=batch_size, deep=deep, on_page=on_source_page),
        digest_stream(other, tenant, batch_size=batch_size, deep=deep, on_page=on_other_page),
    )

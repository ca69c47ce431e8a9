"""Stores and corpora for the sync tests: real FAISS and Chroma (embedded or server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shadowswap.similarity import Metric, canonical_vector
from shadowswap.stores.base import BaseStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing import clustered_corpus
from shadowswap.values import Document
from tests.stores.conftest import _wipe_chroma_server

Opener = Callable[..., BaseStore]


@pytest.fixture
def open_store_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """``open_store_of(kind, name)``: a fresh store of that kind, closed after the test."""
    opened: list[BaseStore] = []
    wiped: set[str] = set()

    def make(kind: str, name: str = "s") -> BaseStore:
        store: BaseStore
        if kind == "memory":
            store = MemoryStore()
        elif kind == "faiss":
            store = FaissStore(tmp_path / f"faiss-{name}", Metric.COSINE)
        elif kind == "chroma":
            store = ChromaStore(str(tmp_path / f"chroma-{name}"), Metric.COSINE)
        elif kind == "chroma-server":
            url = request.getfixturevalue("chroma_server_url")
            if url not in wiped:
                _wipe_chroma_server(url)
                wiped.add(url)
            store = ChromaStore(url, Metric.COSINE)
        else:
            raise ValueError(kind)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    for url in wiped:
        _wipe_chroma_server(url)


def corpus(tenant: str, n: int, dim: int = 16, seed: int = 0) -> list[Document]:
    """Documents with unit vectors, so their hashes equal what a cosine store holds."""
    return [
        d.with_vector(canonical_vector(d.vector, Metric.COSINE))
        for d in clustered_corpus(tenant, n, dim, queries=0, seed=seed).documents
    ]


def load(store: BaseStore, tenant: str, n: int, dim: int = 16, seed: int = 0) -> list[Document]:
    docs = corpus(tenant, n, dim, seed)
    for i in range(0, len(docs), 1000):
        store.upsert(tenant, docs[i : i + 1000])
    return docs


def changed(doc: Document, tag: str = "v2") -> Document:
    """The same document with other content (so another content hash)."""
    return Document(doc.tenant, doc.doc_id, doc.vector, {**doc.metadata, "rev": tag}, doc.text)


def hashes(store: BaseStore, tenant: str) -> dict[str, str]:
    return {d.doc_id: d.content_hash for page in store.scan(tenant) for d in page}

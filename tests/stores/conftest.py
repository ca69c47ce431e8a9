"""The stores every contract test runs against: the reference store and every real engine that
runs here (FAISS, Chroma embedded and server, LanceDB, pgvector on a real PostgreSQL, Qdrant in
qdrant-client's local mode and in the in-process Qdrant Edge engine, Milvus Lite)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from tests.servers import fresh_database

STORE_KINDS = [
    "memory",
    "faiss",
    "chroma",
    "chroma-server",
    "lancedb",
    "pgvector",
    "qdrant-local",
    "qdrant-edge",
    "milvus",
]
REAL_KINDS = [
    "faiss",
    "chroma",
    "chroma-server",
    "lancedb",
    "pgvector",
    "qdrant-local",
    "qdrant-edge",
    "milvus",
]

StoreMaker = Callable[..., BaseStore]


def _lancedb(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    from shadowswap.stores.lancedb import LanceDBStore

    return LanceDBStore(str(where), metric)


def _pgvector(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    from shadowswap.stores.pgvector import PgvectorStore

    return PgvectorStore(fresh_database(request.getfixturevalue("postgres_dsn")), metric)


def _qdrant_local(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    from shadowswap.stores.qdrant import QdrantStore

    return QdrantStore(f"local:{where}", metric)


def _qdrant_edge(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    from shadowswap.stores.qdrant import QdrantStore

    return QdrantStore(str(where), metric)


def _milvus(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    from shadowswap.stores.milvus import MilvusStore

    return MilvusStore(f"{where}.db", metric)


#: Opening a fresh store of each kind added by issue 8 (kind -> opener).
OPENERS: dict[str, Callable[[pytest.FixtureRequest, Path, Metric], BaseStore]] = {
    "lancedb": _lancedb,
    "pgvector": _pgvector,
    "qdrant-local": _qdrant_local,
    "qdrant-edge": _qdrant_edge,
    "milvus": _milvus,
}


def _wipe_chroma_server(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    client = chromadb.HttpClient(
        host=host, port=int(port), settings=ChromaSettings(anonymized_telemetry=False)
    )
    for col in client.list_collections():
        client.delete_collection(col if isinstance(col, str) else col.name)


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str, Metric], BaseStore]]:
    """Open a fresh store of a kind; everything opened is closed (and a server wiped) after."""
    opened: list[BaseStore] = []
    server_urls: set[str] = set()

    def make(kind: str, metric: Metric = Metric.COSINE, name: str = "s") -> BaseStore:
        store: BaseStore
        if kind == "memory":
            store = MemoryStore(metric=metric)
        elif kind == "faiss":
            store = FaissStore(tmp_path / f"faiss-{name}", metric)
        elif kind == "chroma":
            store = ChromaStore(str(tmp_path / f"chroma-{name}"), metric)
        elif kind == "chroma-server":
            url = request.getfixturevalue("chroma_server_url")
            if url not in server_urls:
                _wipe_chroma_server(url)
                server_urls.add(url)
            store = ChromaStore(url, metric)
        elif kind in OPENERS:
            store = OPENERS[kind](request, tmp_path / f"{kind}-{name}", metric)
        else:
            raise ValueError(kind)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    for url in server_urls:
        _wipe_chroma_server(url)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, make_store: StoreMaker) -> BaseStore:
    return make_store(request.param)

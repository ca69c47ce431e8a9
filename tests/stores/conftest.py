"""The stores every contract test runs against: the reference store and every real engine that
runs here (FAISS, Chroma embedded and server, LanceDB, pgvector on a real PostgreSQL, Qdrant in
qdrant-client's local mode and in the in-process Qdrant Edge engine, Milvus Lite)."""

from __future__ import annotations

import json
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
from shadowswap.values import Document
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

#: kinds whose engine keeps the distance it ranks by (a collection's space, an index's metric
#: type) apart from the adapter's record; the others compute the distance of each query from
#: the record's metric, so the record is all there is to check
ENGINE_METRIC_KINDS = ["chroma", "chroma-server", "qdrant-local", "qdrant-edge", "milvus"]

StoreMaker = Callable[..., BaseStore]


def _lancedb(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    from shadowswap.stores.lancedb import LanceDBStore

    return LanceDBStore(str(where), metric)


_DATABASES = pytest.StashKey[dict[Path, str]]()


def _pgvector(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    """A fresh database per ``where``: opening the same ``where`` again reopens it."""
    from shadowswap.stores.pgvector import PgvectorStore

    databases = request.node.stash.setdefault(_DATABASES, {})
    if where not in databases:
        databases[where] = fresh_database(request.getfixturevalue("postgres_dsn"))
    return PgvectorStore(databases[where], metric)


def _qdrant_local(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    from shadowswap.stores.qdrant import QdrantStore

    return QdrantStore(f"local:{where}", metric)


def _qdrant_edge(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    from shadowswap.stores.qdrant import QdrantStore

    return QdrantStore(str(where), metric)


def _milvus(request: pytest.FixtureRequest, where: Path, metric: Metric) -> BaseStore:
    from shadowswap.stores.milvus import MilvusStore

    return MilvusStore(f"{where}.db", metric)


#: Opening a store of each kind added by issue 8 (kind -> opener); the same path reopens it.
OPENERS: dict[str, Callable[[pytest.FixtureRequest, Path, Metric], BaseStore]] = {
    "lancedb": _lancedb,
    "pgvector": _pgvector,
    "qdrant-local": _qdrant_local,
    "qdrant-edge": _qdrant_edge,
    "milvus": _milvus,
}


def _chroma_client(location: str) -> chromadb.ClientAPI:
    settings = ChromaSettings(anonymized_telemetry=False)
    if not location.startswith("http://"):
        return chromadb.PersistentClient(path=location, settings=settings)
    host, port = location.removeprefix("http://").split(":")
    return chromadb.HttpClient(host=host, port=int(port), settings=settings)


def record_says(kind: str, location: str, metric: Metric, *, built: Metric) -> None:
    """Make the shadowswap record of a closed store of one of `ENGINE_METRIC_KINDS`, built
    with ``built``, say ``metric`` while its engine keeps ranking by the distance it was built
    with: what a lost and remade record, or an edited one, looks like to the next opener."""
    if kind in ("chroma", "chroma-server"):
        meta = _chroma_client(location).get_collection("shadowswap_meta", embedding_function=None)
        meta.modify(metadata={**(meta.metadata or {}), "metric": metric.value})
    elif kind == "qdrant-local":
        path = Path(location.removeprefix("local:")) / "meta.json"
        data = json.loads(path.read_text())
        data["collections"]["shadowswap"]["metadata"]["metric"] = metric.value
        path.write_text(json.dumps(data))
    elif kind == "qdrant-edge":
        path = Path(location) / "shadowswap.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "metric": metric.value}))
    elif kind == "milvus":
        _milvus_record_says(location, metric, built)
    else:
        raise ValueError(kind)


def _milvus_record_says(location: str, metric: Metric, built: Metric) -> None:
    """Milvus Lite cannot change a collection's description: the collection is made again
    with ``metric`` recorded, then its index is rebuilt with the metric type it had. (Through
    the adapter's client: only the adapter stops Lite and frees the file when done.)"""
    from shadowswap.stores.milvus import MilvusStore

    store = MilvusStore(location, built)
    client = store._client()
    index_info = client.describe_index("shadowswap", "vector")
    client.drop_collection("shadowswap")
    store.close()
    remade = MilvusStore(location, metric)
    remade.upsert("x", [Document("x", "d", [1.0] * int(index_info["dim"]))])
    client = remade._client()
    client.release_collection("shadowswap")
    client.drop_index("shadowswap", "vector")
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type=index_info["metric_type"])
    client.create_index("shadowswap", index)
    client.load_collection("shadowswap")
    remade.close()


def _wipe_chroma_server(url: str) -> None:
    client = _chroma_client(url)
    for col in client.list_collections():
        client.delete_collection(col if isinstance(col, str) else col.name)


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str, Metric], BaseStore]]:
    """Open a fresh store of a kind; the same ``name`` again reopens that store (a server kind
    reopens the test's server). Everything opened is closed (and a server wiped) after."""
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

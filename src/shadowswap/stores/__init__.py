"""Store adapters behind one boundary (`VectorStore`), and `open_store` to pick one by kind.

Each adapter lives in its own module and is imported only when its kind is opened, so a
vendor SDK is needed only when that backend is used (installed with its extra).

May import settings (locations, `mask_secrets`) and the foundation; imported by every layer
that talks to a store. Nothing here knows about routing, dual write or phases.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from shadowswap.errors import ConfigError, MissingDependency
from shadowswap.settings.config import KINDS, Settings
from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore, Health, VectorStore
from shadowswap.stores.memory import MemoryStore


@dataclass(frozen=True)
class Adapter:
    """Where a kind's adapter lives and which extra installs what it imports."""

    module: str
    cls: str
    extra: str
    requires: tuple[str, ...]


ADAPTERS: dict[str, Adapter] = {
    "memory": Adapter("shadowswap.stores.memory", "MemoryStore", "", ()),
    "faiss": Adapter("shadowswap.stores.faiss", "FaissStore", "faiss", ("faiss",)),
    "chroma": Adapter("shadowswap.stores.chroma", "ChromaStore", "chroma", ("chromadb",)),
    "elastic": Adapter("shadowswap.stores.elastic", "ElasticStore", "elastic", ("elasticsearch",)),
    "opensearch": Adapter(
        "shadowswap.stores.opensearch", "OpenSearchStore", "opensearch", ("opensearchpy",)
    ),
    "weaviate": Adapter("shadowswap.stores.weaviate", "WeaviateStore", "weaviate", ("weaviate",)),
    "pinecone": Adapter("shadowswap.stores.pinecone", "PineconeStore", "pinecone", ("pinecone",)),
    "lancedb": Adapter("shadowswap.stores.lancedb", "LanceDBStore", "lancedb", ("lancedb",)),
    "pgvector": Adapter("shadowswap.stores.pgvector", "PgvectorStore", "pgvector", ("psycopg",)),
    "qdrant": Adapter("shadowswap.stores.qdrant", "QdrantStore", "qdrant", ("qdrant_client",)),
    "milvus": Adapter("shadowswap.stores.milvus", "MilvusStore", "milvus", ("pymilvus",)),
}


def available_kinds() -> list[str]:
    """Kinds with an adapter in this release (their extras may still be missing)."""
    return [k for k in KINDS if k in ADAPTERS]


def open_store(kind: str, settings: Settings, *, location: str | None = None) -> BaseStore:
    """Open the store of ``kind`` at its configured location (or ``location``).

    Raises `ConfigError` for a kind with no adapter or no location, `MissingDependency` when
    its extra is not installed.
    """
    adapter = ADAPTERS.get(kind)
    variable = f"RETRIEVAL_{kind.upper()}_URL"
    if adapter is None:
        raise ConfigError(
            "RETRIEVAL_BACKEND" if kind == settings.backend else "RETRIEVAL_TARGET_BACKEND",
            kind,
            "this release has adapters for " + ", ".join(available_kinds()),
        )
    where = location if location is not None else settings.location(kind)
    if not where:
        raise ConfigError(variable, "", f"backend {kind!r} has no embedded mode; set {variable}")
    for module in adapter.requires:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependency(kind, adapter.extra, module) from exc
    cls = getattr(importlib.import_module(adapter.module), adapter.cls)
    store: BaseStore = cls(where, settings.metric)
    return store


__all__ = [
    "ADAPTERS",
    "BaseStore",
    "Health",
    "MemoryStore",
    "Metric",
    "VectorStore",
    "available_kinds",
    "open_store",
]

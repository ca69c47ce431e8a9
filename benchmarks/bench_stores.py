"""Per-store search latency (p50, p99) and batch-upsert rate on the same clustered corpus.

Every store gets the same documents and queries in one run; ratios are against the FAISS
primary measured in the same run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

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


def run(quick: bool = False) -> dict[str, float | str]:
    n, dim, nq = (5_000, 384, 200) if quick else (100_000, 384, 1_000)
    corpus = clustered_corpus("bench", n, dim, queries=nq, clusters=256, seed=1, text=False)
    out: dict[str, float | str] = {"docs": float(n), "dimension": float(dim)}
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
    base = results["faiss"]
    for name, figures in results.items():
        for key, value in figures.items():
            out[f"{name}.{key}"] = value
        out[f"{name}.search_p50_vs_faiss"] = figures["search_p50_ms"] / base["search_p50_ms"]
    return out

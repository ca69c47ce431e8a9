"""What the router tests share: real stores loaded once, settings, a router factory."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shadowswap.clock import Clock, FakeClock
from shadowswap.metrics import Metrics
from shadowswap.read.router import Router
from shadowswap.settings.config import Settings, StaticSettings, load_settings
from shadowswap.shadow.executor import ExecutorSizes, ShadowExecutor
from shadowswap.shadow.observations import ObservationSink
from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore, VectorStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing import clustered_corpus
from tests.metrics_helpers import Both, RecordingMetrics

TENANTS = ("acme", "globex")
DIM = 32
DOCS = 300
SHADOW_ON = {
    "RETRIEVAL_TARGET_BACKEND": "chroma",
    "FF_RETRIEVAL_SHADOW_READ": "ON",
    "FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "1.0",
}


@dataclass
class Stores:
    """FAISS primary and Chroma target holding the same documents; ``other`` is a Chroma
    store whose documents differ (a tenth missing, a tenth moved elsewhere)."""

    faiss: BaseStore
    chroma: BaseStore
    other: BaseStore
    queries: dict[str, np.ndarray]


def load_stores(root: Path, chroma_location: str | None = None) -> Iterator[Stores]:
    faiss = FaissStore(root / "faiss", Metric.COSINE)
    chroma = ChromaStore(chroma_location or str(root / "chroma"), Metric.COSINE)
    other = ChromaStore(str(root / "chroma-other"), Metric.COSINE)
    queries = {}
    for i, tenant in enumerate(TENANTS):
        corpus = clustered_corpus(tenant, DOCS, DIM, queries=20, clusters=8, seed=40 + i)
        faiss.upsert(tenant, corpus.documents)
        chroma.upsert(tenant, corpus.documents)
        rng = np.random.default_rng(i)
        changed = []
        for j, doc in enumerate(corpus.documents):
            if j % 10 == 0:
                continue  # missing in the other store
            if j % 10 == 1:  # moved far away: never a near neighbour any more
                changed.append(doc.with_vector(rng.normal(size=DIM).astype(np.float32)))
            else:
                changed.append(doc)
        other.upsert(tenant, changed)
        queries[tenant] = corpus.queries
    try:
        yield Stores(faiss, chroma, other, queries)
    finally:
        for store in (faiss, chroma, other):
            store.close()


def settings(**env: str) -> Settings:
    return load_settings(environ={**SHADOW_ON, **env})


def make_router(
    primary: VectorStore,
    target: VectorStore | None,
    env: dict[str, str] | None = None,
    *,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    seed: int = 1,
    observations: ObservationSink | None = None,
    sizes: ExecutorSizes | None = None,
    shadow: ShadowExecutor | None = None,
    read_concurrency: int = 8,
) -> Router:
    metrics = metrics if metrics is not None else RecordingMetrics()
    observed = observations
    if isinstance(metrics, RecordingMetrics):  # the test reads the comparisons back
        observed = (
            metrics.observed if observations is None else Both(metrics.observed, observations)
        )
    return Router(
        primary=primary,
        target=target,
        settings=StaticSettings(settings(**(env or {}))),
        metrics=metrics,
        clock=clock or FakeClock(),
        rng=random.Random(seed),
        shadow=shadow or sizes or ExecutorSizes(tick_s=None),
        observations=observed,
        read_concurrency=read_concurrency,
    )

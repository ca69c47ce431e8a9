"""What shadow reads cost the caller: router.search latency p50/p99 on a FAISS primary of
20,000 x 384 clustered vectors, in several settings measured in one run.

Settings (each a `Router` over the same FAISS primary; the Chroma target holds the same
documents):

    off            FF_RETRIEVAL_SHADOW_READ=OFF (the baseline of every ratio)
    healthy        shadow on at rate 1.0, embedded Chroma target
    healthy_0.1    the same at rate 0.1 (one read in ten shadowed)
    hanging        shadow on at rate 1.0, target whose searches never return
    raising        shadow on at rate 1.0, target whose searches raise at once
    no_deadline    shadow off and RETRIEVAL_READ_TIMEOUT_MS=0: the primary is called on the
                   caller's thread, so ``off / no_deadline`` is what enforcing the read
                   deadline costs
    healthy_server shadow on at rate 1.0, Chroma server target (full run only)

The settings are interleaved in blocks (a block of each, in turn, repeated), so a change of
machine load during the run hits them all alike. Between blocks the router's shadow work is
allowed to drain (not timed), so one setting's backlog never lands in another's block.

FAISS runs with one OpenMP thread per search (``OMP_NUM_THREADS=1``, set here before FAISS is
loaded, as docs/shadow-read.md recommends for any multi-threaded service): with FAISS's default
(a team of one thread per core) a single-query search from a worker thread spin-waits on its
team, and any other busy thread in the process (a shadow read, or just a concurrent request)
makes the primary's latency several times worse. ``omp_threads`` prints what was in effect.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before FAISS (libgomp) is loaded

import contextlib
import logging
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from shadowswap.clock import SystemClock
from shadowswap.metrics import Metrics
from shadowswap.read.router import Router
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.shadow.observations import MemoryObservations
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing import clustered_corpus
from shadowswap.testing.faults import FailingStore, HangingStore

TENANT = "bench"
ON = {"FF_RETRIEVAL_SHADOW_READ": "ON", "FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "1.0"}


def _router(
    primary: VectorStore,
    target: VectorStore,
    env: dict[str, str],
    observations: MemoryObservations | None = None,
) -> Router:
    settings = load_settings(environ={"RETRIEVAL_TARGET_BACKEND": "chroma", **env})
    return Router(
        primary=primary,
        target=target,
        settings=StaticSettings(settings),
        metrics=Metrics.null(),
        clock=SystemClock(),
        rng=random.Random(7),
        observations=observations,
    )


@contextlib.contextmanager
def _chroma_server(path: Path) -> Iterator[tuple[str | None, str]]:
    """A `chroma run` server on a loopback port (the test suite's helper), or why there is none."""
    repo = str(Path(__file__).resolve().parent.parent)
    if repo not in sys.path:  # run_all.py puts only benchmarks/ on the path
        sys.path.insert(0, repo)
    try:
        from tests.servers import ChromaServer
    except ImportError as exc:
        yield None, f"tests.servers cannot be imported: {exc}"
        return
    server = ChromaServer(path)
    try:
        server.start()
    except RuntimeError as exc:
        yield None, f"the chroma server did not start: {exc}"
        return
    try:
        yield server.url, ""
    finally:
        server.stop()


def _omp_threads_of_a_new_thread() -> int:
    """OpenMP threads a FAISS search from a fresh thread (a router's worker) would use."""
    import faiss

    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(int(faiss.omp_get_max_threads())))
    thread.start()
    thread.join()
    return seen[0]


def _load(store: VectorStore, docs: list, batch: int = 1000) -> None:  # type: ignore[type-arg]
    for i in range(0, len(docs), batch):
        store.upsert(TENANT, docs[i : i + batch])


def run(quick: bool = False) -> dict[str, float | str]:
    # the failing and hanging targets log a warning now and then; not the figures' business
    logger = logging.getLogger("shadowswap")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _run(quick)
    finally:
        logger.setLevel(level)


def _run(quick: bool) -> dict[str, float | str]:
    n, dim = (5_000, 384) if quick else (20_000, 384)
    searches, block, warmup = (1_000, 100, 50) if quick else (5_000, 250, 100)
    corpus = clustered_corpus(TENANT, n, dim, queries=500, clusters=64, seed=3, text=False)
    out: dict[str, float | str] = {
        "docs": float(n),
        "dimension": float(dim),
        "searches_per_setting": float(searches),
        "omp_threads": float(_omp_threads_of_a_new_thread()),
    }
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        primary = FaissStore(root / "faiss", Metric.COSINE)
        chroma = ChromaStore(str(root / "chroma"), Metric.COSINE)
        stack.callback(primary.close)
        stack.callback(chroma.close)
        _load(primary, corpus.documents)
        _load(chroma, corpus.documents)
        hanging = HangingStore(chroma, ops=["search"])
        stack.callback(hanging.release)
        healthy = MemoryObservations()
        routers: dict[str, Router] = {
            "off": _router(primary, chroma, {}),
            "healthy": _router(primary, chroma, ON, healthy),
            "healthy_0.1": _router(
                primary, chroma, {**ON, "FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "0.1"}
            ),
            "hanging": _router(primary, hanging, ON),
            "raising": _router(primary, FailingStore(chroma, ops=["search"]), ON),
            "no_deadline": _router(primary, chroma, {"RETRIEVAL_READ_TIMEOUT_MS": "0"}),
        }
        if not quick:
            url, why = stack.enter_context(_chroma_server(root / "chroma-server"))
            if url is None:
                out["healthy_server.skipped"] = why
            else:
                server_store = ChromaStore(url, Metric.COSINE)
                stack.callback(server_store.close)
                _load(server_store, corpus.documents)
                routers["healthy_server"] = _router(primary, server_store, ON)
        for router in routers.values():
            stack.callback(router.close)
        latencies = _measure(routers, corpus.queries, searches, block, warmup)
        base = latencies["off"]
        base_p50, base_p99 = np.percentile(base, 50), np.percentile(base, 99)
        for name, lat in latencies.items():
            p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
            out[f"{name}.p50_ms"] = p50 * 1000
            out[f"{name}.p99_ms"] = p99 * 1000
            out[f"{name}.p50_ratio"] = p50 / base_p50
            out[f"{name}.p99_ratio"] = p99 / base_p99
            stats = routers[name].executor.stats()
            if stats.accepted or stats.dropped_queue_full:
                out[f"{name}.shadow_compared"] = float(stats.answered)
                out[f"{name}.shadow_errors"] = float(stats.failed)
                out[f"{name}.dropped_queue_full"] = float(stats.dropped_queue_full)
                out[f"{name}.dropped_timeout"] = float(stats.dropped_timeout)
        out["deadline_cost_p50_ratio"] = base_p50 / np.percentile(latencies["no_deadline"], 50)
        out["deadline_cost_p99_ratio"] = base_p99 / np.percentile(latencies["no_deadline"], 99)
        agreements = [o.agreement_at_5 for o in healthy.items if o.agreement_at_5 is not None]
        if agreements:
            out["healthy.mean_agreement_at_5"] = float(np.mean(agreements))
    return out


def _measure(
    routers: dict[str, Router], queries: np.ndarray, searches: int, block: int, warmup: int
) -> dict[str, list[float]]:
    rng = random.Random(11)
    for router in routers.values():
        for i in range(warmup):
            router.search(TENANT, queries[i % len(queries)], 10)
        router.executor.wait_idle(5.0)
    latencies: dict[str, list[float]] = {name: [] for name in routers}
    order = list(routers)
    done = 0
    while done < searches:
        rng.shuffle(order)
        for name in order:
            router = routers[name]
            lat = latencies[name]
            for i in range(done, done + block):
                query = queries[i % len(queries)]
                t0 = time.perf_counter()
                router.search(TENANT, query, 10)
                lat.append(time.perf_counter() - t0)
            router.executor.wait_idle(5.0)
        done += block
    return latencies

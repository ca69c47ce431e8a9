"""Backfill throughput against the target's own write rate; reconcile time and memory at 1M.

Backfill: the same clustered 384-d documents (with text) are written into fresh embedded
Chroma stores, once by plain batch upserts of documents already in memory (the target's raw
rate) and once by ``Backfill`` from a FAISS source (scan, read-ahead, verify-after-write,
checkpoint per batch), in interleaved rounds. ``backfill.ratio_to_raw`` is the best
backfill rate over the best raw rate (goal >= 0.9); the median ratio is reported beside it,
and the share of the backfill's time spent outside the target's upserts (its own overhead:
scan not hidden by the read-ahead, verification, checkpoints), which noise affects least.

Reconcile: one tenant of 1,000,000 documents (quick: 50,000) in two stores that differ by
0.1 % (missing, extra and stale documents in equal parts), on the memory store and on FAISS.
Time is measured without tracing; peak memory is the tracemalloc peak of a second run (the
Python objects the reconcile allocates), with the same figure for a tenant four times
smaller beside it: bounded memory means the two are about equal. RSS growth during the
untraced run is reported too (it includes allocator noise and SQLite's page cache).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.sync.backfill import Backfill
from shadowswap.sync.checkpoint import FileCheckpoints
from shadowswap.sync.reconcile import Reconcile, ReconcileReport
from shadowswap.testing import clustered_corpus
from shadowswap.values import Document

T = "bench"
MB = 1024 * 1024


class _TimedChroma(ChromaStore):
    """Chroma that adds up the wall time of its upserts: what backfill spends outside them is
    its own overhead, a figure much less sensitive to a noisy machine than the ratio."""

    spent_s = 0.0

    def upsert(self, tenant: str, documents: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return super().upsert(tenant, documents)
        finally:
            self.spent_s += time.perf_counter() - t0


def _backfill(tmp: Path, n: int, batch: int, rounds: int) -> dict[str, float | str]:
    corpus = clustered_corpus(T, n, 384, queries=0, clusters=256, seed=3, text=True)
    source = FaissStore(tmp / "faiss-src", Metric.COSINE)
    for i in range(0, n, 5000):
        source.upsert(T, corpus.documents[i : i + 5000])
    del corpus
    raw_rates, rates, overheads, drift = [], [], [], 0
    for r in range(rounds):  # interleaved, best of each: a shared machine is noisy
        docs = [d for page in source.scan(T, batch_size=5000) for d in page]  # canonical
        raw_store = ChromaStore(str(tmp / f"chroma-raw-{r}"), Metric.COSINE)
        raw_store.upsert(T, docs[:1])  # both targets start with the collection created
        t0 = time.perf_counter()
        for i in range(1, n, batch):
            raw_store.upsert(T, docs[i : i + batch])
        raw_rates.append((n - 1) / (time.perf_counter() - t0))
        raw_store.close()
        target = _TimedChroma(str(tmp / f"chroma-backfill-{r}"), Metric.COSINE)
        target.upsert(T, docs[:1])
        target.spent_s = 0.0
        del docs
        job = Backfill(
            source,
            target,
            batch_size=batch,
            checkpoints=FileCheckpoints(tmp / f"state-{r}", ("faiss", "src"), ("chroma", "dst")),
        )
        t0 = time.perf_counter()
        report = job.run()
        seconds = time.perf_counter() - t0
        rates.append(n / seconds)  # the first doc is scanned and found unchanged
        overheads.append(1.0 - target.spent_s / seconds)
        assert report.ok and report.copied == n - 1, report.as_dict()
        drift += Reconcile(source, target).run().drift
        target.close()
    source.close()
    return {
        "backfill.docs": float(n),
        "backfill.batch": float(batch),
        "backfill.rounds": float(rounds),
        "backfill.target": "chroma (embedded)",
        "backfill.raw_upsert_docs_per_s": max(raw_rates),
        "backfill.docs_per_s": max(rates),
        "backfill.ratio_to_raw": max(rates) / max(raw_rates),
        "backfill.ratio_to_raw_median": float(np.median(rates) / np.median(raw_rates)),
        "backfill.share_of_time_outside_target_upsert": float(np.median(overheads)),
        "backfill.drift_after": float(drift),
    }


def _documents(n: int, start: int = 0) -> list[Document]:
    """Small unit vectors: the reconcile's cost is in ids and hashes, not in dimensions."""
    rng = np.random.default_rng(start)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [Document(T, f"doc-{start + i:09d}", vectors[i], {"n": start + i}) for i in range(n)]


def _drift(docs: list[Document]) -> tuple[list[Document], list[Document], list[str]]:
    """0.1 % drift in equal parts: (replica docs, stale versions, ids extra in the replica)."""
    step = 3000
    missing = set(range(0, len(docs), step))
    stale = set(range(1000, len(docs), step))
    replica = [d for i, d in enumerate(docs) if i not in missing]
    versions = [Document(T, docs[i].doc_id, docs[i].vector, {"n": -1}) for i in sorted(stale)]
    extra = [f"doc-{i:09d}x" for i in range(2000, len(docs), step)]
    return replica, versions, extra


def _load(store: BaseStore, docs: list[Document], batch: int = 20_000) -> None:
    for i in range(0, len(docs), batch):
        store.upsert(T, docs[i : i + batch])


def _measure(run: Callable[[], ReconcileReport]) -> dict[str, float]:
    """Time and RSS growth of one untraced run, then the tracemalloc peak of another."""
    process = psutil.Process()
    base = process.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    report = run()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    tracemalloc.start()
    try:
        traced = run()
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.drift == traced.drift
    return {
        "seconds": seconds,
        "docs_per_s": report.tenants[0].source_docs / seconds,
        "drift": float(report.drift),
        "peak_traced_mb": traced_peak / MB,
        "rss_growth_mb": (peak[0] - base) / MB,
    }


def _reconcile_pair(
    make: Callable[[str], BaseStore], docs: list[Document]
) -> tuple[BaseStore, BaseStore]:
    source, replica = make("src"), make("dst")
    _load(source, docs)
    replica_docs, versions, extra = _drift(docs)
    _load(replica, replica_docs)
    replica.upsert(T, versions)
    replica.upsert(T, [Document(T, i, docs[0].vector) for i in extra])
    return source, replica


def _reconcile(kind: str, n: int, tmp: Path, docs: list[Document]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for label, size in (("", n), ("quarter.", n // 4)):
        if kind == "memory":
            source, replica = _reconcile_pair(lambda _name: MemoryStore(), docs[:size])
            list(source.scan(T, batch_size=1))  # the store's own sorted-id cache, built once
            list(replica.scan(T, batch_size=1))
        else:
            where = tmp / f"{kind}-{size}"

            def make(name: str, where: Path = where) -> BaseStore:
                return FaissStore(where / name, Metric.COSINE)

            t0 = time.perf_counter()
            source, replica = _reconcile_pair(make, docs[:size])
            if not label:
                out[f"reconcile.{kind}.load_s"] = time.perf_counter() - t0
        figures = _measure(lambda s=source, r=replica: Reconcile(s, r, batch_size=1000).run())
        for key, value in figures.items():
            out[f"reconcile.{kind}.{label}{key}"] = value
        source.close()
        replica.close()
        if kind != "memory":
            shutil.rmtree(tmp / f"{kind}-{size}", ignore_errors=True)
    return out


def run(quick: bool = False) -> dict[str, float | str]:
    backfill_n, rounds, reconcile_n = (5_000, 2, 50_000) if quick else (20_000, 3, 1_000_000)
    out: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out.update(_backfill(Path(tmp) / "backfill", backfill_n, 500, rounds))
        shutil.rmtree(Path(tmp) / "backfill", ignore_errors=True)
        out["reconcile.docs"] = float(reconcile_n)
        t0 = time.perf_counter()
        docs = _documents(reconcile_n)
        out["reconcile.make_docs_s"] = time.perf_counter() - t0
        for kind in ("memory", "faiss"):
            out.update(_reconcile(kind, reconcile_n, Path(tmp), docs))
    return out


def main(argv: Any = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for key, value in run(quick=args.quick).items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()

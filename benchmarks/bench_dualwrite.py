"""Dual-write overhead and outbox append throughput (issue 4).

Write latency of single-document upserts (the worst case for overhead: nothing to amortise
over; 32-document batches as well for the target down) into a FAISS primary, interleaved
write by write so that the machine's load weighs on each alike:

    primary only   FaissStore.upsert
    healthy        DualWriter, target = embedded Chroma: the change is appended to the SQLite
                   outbox (the default: WAL, ``synchronous=NORMAL``, checkpoints on the
                   outbox's own thread) before the primary write, and applied to the target by
                   the writer's background applier
    down           DualWriter with the default outbox, target = a Chroma server that refuses
                   connections, breaker open: the change is appended to the outbox before the
                   primary write (the issue's goal is on this one)
    down_fsync     the same with the outbox at ``?synchronous=full`` (an fsync per commit:
                   survives a power cut too), the stricter option

Two phases, each with its own primary-only baseline (``primary``, ``primary2``) interleaved
with it: the target down (nothing runs in the background), then the healthy target (whose
background applier competes for the CPU, part of its cost). Figures: p50/p99 in ms and the
p99 ratios to primary-only (goal for ``down``: <= 1.10), the
time the healthy target took to catch up after the last write, and the outbox's append rate
in items/s with the default outbox, one item per commit and 100 per commit.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shadowswap.clock import SystemClock
from shadowswap.dualwrite.breaker import Breaker, State
from shadowswap.dualwrite.outbox import Change
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.metrics import Metrics
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing import clustered_corpus
from shadowswap.values import Document

ENV = {
    "RETRIEVAL_BACKEND": "faiss",
    "RETRIEVAL_TARGET_BACKEND": "chroma",
    "FF_RETRIEVAL_DUAL_WRITE": "ON",
    "RETRIEVAL_DUAL_WRITE_CB_WINDOW_S": "86400",  # stays open for the whole run
    "RETRIEVAL_DUAL_WRITE_OUTBOX_MAX": "100000000",
}


def _writer(
    primary: VectorStore, target: VectorStore, outbox: Path, fsync: bool = False
) -> DualWriter:
    clock, sink = SystemClock(), Metrics.null()
    return DualWriter(
        primary,
        target,
        StaticSettings(load_settings(environ=ENV)),
        SqliteOutbox(outbox, synchronous="FULL" if fsync else "NORMAL"),
        Breaker(clock, sink.breaker_state),
        sink,
        clock,
    )


def _refused_url() -> str:
    """A loopback port nobody listens on: a target server that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _docs(tenant: str, n: int, seed: int) -> list[Document]:
    return clustered_corpus(tenant, n, 384, queries=1, clusters=64, seed=seed, text=True).documents


Write = Callable[[list[Document]], object]


def _interleaved(
    n: int, modes: dict[str, tuple[Write, list[Document]]], batch: int = 1
) -> dict[str, list[float]]:
    """Latency of each mode's writes of ``batch`` documents, one write of each in turn (who
    goes first rotates)."""
    out: dict[str, list[float]] = {name: [] for name in modes}
    names = list(modes)
    for i in range(n):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            write, docs = modes[name]
            start = time.perf_counter()
            write(docs[i * batch : (i + 1) * batch])
            out[name].append(time.perf_counter() - start)
    return out


Phase = dict[str, list[float]]


def _latencies(n: int, tmp: Path) -> tuple[Phase, Phase, float]:
    """Two phases, each against its own primary-only baseline: the target down (nothing runs
    in the background), then a healthy target (its background applier competes for the CPU,
    which is part of its cost)."""
    primary = FaissStore(tmp / "faiss", Metric.COSINE)
    for warm in range(20):  # the first writes create files
        primary.upsert("base", _docs("base", 1, 200 + warm))
    gone = ChromaStore(_refused_url(), Metric.COSINE)
    down = _writer(primary, gone, tmp / "d.sqlite3")
    fsync = _writer(primary, gone, tmp / "f.sqlite3", fsync=True)
    for writer in (down, fsync):
        for i in range(3):  # open the breaker: the target is down
            writer.upsert("warm", _docs("warm", 1, 100 + i))
            writer.flush(60)
        assert writer.breaker.state is State.OPEN
    down_phase = _interleaved(
        n,
        {
            "primary": (lambda d: primary.upsert("primary", d), _docs("primary", n, 1)),
            "down": (lambda d: down.upsert("down", d), _docs("down", n, 3)),
            "down_fsync": (lambda d: fsync.upsert("fsync", d), _docs("fsync", n, 5)),
        },
    )
    batches = max(20, n // 10)
    down_phase |= _interleaved(
        batches,
        {
            "primary_batch32": (
                lambda d: primary.upsert("primary_b", d),
                _docs("primary_b", batches * 32, 7),
            ),
            "down_batch32": (lambda d: down.upsert("down_b", d), _docs("down_b", batches * 32, 8)),
        },
        batch=32,
    )
    assert fsync.outbox.stats().size == n + 3
    down.close()
    fsync.close()

    healthy = _writer(primary, ChromaStore(str(tmp / "chroma"), Metric.COSINE), tmp / "h.sqlite3")
    for warm in range(20):
        healthy.upsert("healthy", _docs("healthy", 1, 300 + warm))
    healthy.flush(60)
    healthy_phase = _interleaved(
        n,
        {
            "primary2": (lambda d: primary.upsert("primary2", d), _docs("primary2", n, 6)),
            "healthy": (lambda d: healthy.upsert("healthy", d), _docs("healthy", n, 2)),
        },
    )
    start = time.perf_counter()
    healthy.flush(600)
    catch_up = time.perf_counter() - start
    assert healthy.outbox.stats().size == 0, "the healthy target did not get every write"
    healthy.close()
    return down_phase, healthy_phase, catch_up


def _append_rate(n: int, batch: int, path: Path) -> float:
    outbox = SqliteOutbox(path)
    docs = _docs("outbox", n, 4)
    changes = [Change.upsert(d, "chroma") for d in docs]
    start = time.perf_counter()
    for i in range(0, n, batch):
        outbox.append(changes[i : i + batch], now=time.time(), capacity=10**9, ttl_s=86400)
    elapsed = time.perf_counter() - start
    outbox.close()
    return n / elapsed


def run(quick: bool = False) -> dict[str, float | str]:
    n = 300 if quick else 3000
    logging.getLogger("shadowswap").setLevel(logging.ERROR)  # the failing target's warnings
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        down_phase, healthy_phase, catch_up = _latencies(n, tmp)
        single = _append_rate(n, 1, tmp / "a1.sqlite3")
        batched = _append_rate(n * 5, 100, tmp / "a100.sqlite3")
    out: dict[str, float | str] = {"writes_per_mode": float(n), "dimension": 384.0}
    p99: dict[str, float] = {}
    for name, values in {**down_phase, **healthy_phase}.items():
        p99[name] = float(np.percentile(values, 99))
        out[f"{name}.write_p50_ms"] = float(np.percentile(values, 50)) * 1000
        out[f"{name}.write_p99_ms"] = p99[name] * 1000
    out["down.p99_ratio_to_primary"] = p99["down"] / p99["primary"]
    out["down.p99_goal"] = "<= 1.10"
    out["down_fsync.p99_ratio_to_primary"] = p99["down_fsync"] / p99["primary"]
    out["down_batch32.p99_ratio_to_primary"] = p99["down_batch32"] / p99["primary_batch32"]
    out["healthy.p99_ratio_to_primary"] = p99["healthy"] / p99["primary2"]
    out["healthy.target_catch_up_s"] = catch_up
    out["outbox.append_items_per_s"] = single
    out["outbox.append_batch100_items_per_s"] = batched
    return out


if __name__ == "__main__":
    for key, value in run(quick=True).items():
        print(f"dualwrite.{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")

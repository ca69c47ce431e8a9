"""Dual-write overhead and outbox append throughput (issue 4).

Write latency of single-document upserts (the worst case for overhead: nothing to amortise
over) into a FAISS primary, three ways, interleaved write by write so that the machine's load
weighs on each alike:

    primary only   FaissStore.upsert
    healthy        DualWriter, target = embedded Chroma: the change is appended to the SQLite
                   outbox (WAL, fsync per commit) alongside the primary write, and applied to
                   the target by the writer's background applier
    down           DualWriter, target = a Chroma server that refuses connections, breaker
                   open: the change is appended to the outbox alongside the primary write
    down_no_fsync  the same with the outbox at ``synchronous=NORMAL`` (no fsync per commit:
                   still survives a killed process, not a power cut), for comparison only

Figures: p50/p99 in ms and the p99 ratios to primary-only (goal for ``down``: <= 1.10), the
time the healthy target took to catch up after the last write, and the outbox's append rate
in items/s, one item per commit (an fsync each) and 100 per commit.
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
from shadowswap.config import StaticSettings, load_settings
from shadowswap.dualwrite.breaker import Breaker, State
from shadowswap.dualwrite.outbox import Change
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.metrics import NullSink
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
    primary: VectorStore, target: VectorStore, outbox: Path, fsync: bool = True
) -> DualWriter:
    clock, sink = SystemClock(), NullSink()
    return DualWriter(
        primary,
        target,
        StaticSettings(load_settings(environ=ENV)),
        SqliteOutbox(outbox, synchronous="FULL" if fsync else "NORMAL"),
        Breaker(clock, sink),
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


def _latencies(n: int, tmp: Path) -> tuple[dict[str, list[float]], float]:
    primary = FaissStore(tmp / "faiss", Metric.COSINE)
    healthy = _writer(primary, ChromaStore(str(tmp / "chroma"), Metric.COSINE), tmp / "h.sqlite3")
    gone = ChromaStore(_refused_url(), Metric.COSINE)
    down = _writer(primary, gone, tmp / "d.sqlite3")
    no_fsync = _writer(primary, gone, tmp / "n.sqlite3", fsync=False)
    for writer in (down, no_fsync):
        for i in range(3):  # open the breaker: the target is down
            writer.upsert("warm", _docs("warm", 1, 100 + i))
            writer.flush(60)
        assert writer.breaker.state is State.OPEN
    for warm in range(20):  # first writes create collections and files
        primary.upsert("base", _docs("base", 1, 200 + warm))
        healthy.upsert("healthy", _docs("healthy", 1, 300 + warm))
    modes: dict[str, tuple[Callable[[list[Document]], object], list[Document]]] = {
        "primary": (lambda d: primary.upsert("primary", d), _docs("primary", n, 1)),
        "healthy": (lambda d: healthy.upsert("healthy", d), _docs("healthy", n, 2)),
        "down": (lambda d: down.upsert("down", d), _docs("down", n, 3)),
        "down_no_fsync": (lambda d: no_fsync.upsert("nofsync", d), _docs("nofsync", n, 5)),
    }
    out: dict[str, list[float]] = {name: [] for name in modes}
    names = list(modes)
    for i in range(n):
        for name in names[i % 4 :] + names[: i % 4]:  # rotate who goes first
            write, docs = modes[name]
            start = time.perf_counter()
            write([docs[i]])
            out[name].append(time.perf_counter() - start)
    start = time.perf_counter()
    healthy.flush(600)
    catch_up = time.perf_counter() - start
    assert healthy.outbox.stats().size == 0, "the healthy target did not get every write"
    assert down.outbox.stats().size == no_fsync.outbox.stats().size == n + 3
    for writer in (healthy, down, no_fsync):
        writer.close()
    return out, catch_up


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
        lat, catch_up = _latencies(n, tmp)
        single = _append_rate(n, 1, tmp / "a1.sqlite3")
        batched = _append_rate(n * 5, 100, tmp / "a100.sqlite3")
    out: dict[str, float | str] = {"writes_per_mode": float(n), "dimension": 384.0}
    p99 = {name: float(np.percentile(v, 99)) for name, v in lat.items()}
    for name, values in lat.items():
        out[f"{name}.write_p50_ms"] = float(np.percentile(values, 50)) * 1000
        out[f"{name}.write_p99_ms"] = p99[name] * 1000
    out["healthy.p99_ratio_to_primary"] = p99["healthy"] / p99["primary"]
    out["down.p99_ratio_to_primary"] = p99["down"] / p99["primary"]
    out["down.p99_goal"] = "<= 1.10"
    out["down_no_fsync.p99_ratio_to_primary"] = p99["down_no_fsync"] / p99["primary"]
    out["healthy.target_catch_up_s"] = catch_up
    out["outbox.append_items_per_s"] = single
    out["outbox.append_batch100_items_per_s"] = batched
    return out


if __name__ == "__main__":
    for key, value in run(quick=True).items():
        print(f"dualwrite.{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")

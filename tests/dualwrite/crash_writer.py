"""The writing process of the crash test (``test_crash.py``), run as a real subprocess:

    python -m tests.dualwrite.crash_writer FAISS_DIR CHROMA_URL OUTBOX START STOP

It dual-writes operations ``START`` to ``STOP`` of a fixed stream (FAISS primary, a Chroma
server target that is down for some stretches of the stream) and prints ``BEGIN i`` before
and ``ACK i`` after each write returned to it, flushing each line, so the parent knows exactly
what was acknowledged when it kills this process with SIGKILL.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

import numpy as np

from shadowswap.clock import SystemClock
from shadowswap.dualwrite.breaker import Breaker
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.metrics import Metrics
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing.faults import FlappingStore
from shadowswap.values import Document

TENANTS = ("acme", "globex", "initech")
OPERATIONS = 360
DOWN = ((40, 110), (170, 260), (300, 330))  # stretches of the stream with the target down
ENV = {
    "RETRIEVAL_BACKEND": "faiss",
    "RETRIEVAL_TARGET_BACKEND": "chroma",
    "FF_RETRIEVAL_DUAL_WRITE": "ON",
    "RETRIEVAL_DUAL_WRITE_CB_THRESHOLD": "3",
    "RETRIEVAL_DUAL_WRITE_CB_WINDOW_S": "0.2",
    "RETRIEVAL_DUAL_WRITE_OUTBOX_MAX": "100000",
    "RETRIEVAL_DUAL_WRITE_TIMEOUT_MS": "5000",
}


@dataclass(frozen=True)
class Operation:
    tenant: str
    delete: tuple[str, ...] = ()
    upsert: tuple[Document, ...] = ()


def operations(seed: int = 7) -> list[Operation]:
    """The fixed stream: new documents, updates and deletes over a few tenants."""
    rng = random.Random(seed)
    live: dict[str, list[str]] = {t: [] for t in TENANTS}
    out: list[Operation] = []
    for i in range(OPERATIONS):
        tenant = rng.choice(TENANTS)
        if rng.random() < 0.2 and len(live[tenant]) > 3:
            gone = tuple(rng.sample(live[tenant], 2))
            live[tenant] = [d for d in live[tenant] if d not in gone]
            out.append(Operation(tenant, delete=gone))
            continue
        ids = [rng.choice(live[tenant]) for _ in range(rng.randint(0, 2)) if live[tenant]]
        ids.append(f"op{i}-new")
        live[tenant].append(ids[-1])
        docs = tuple(
            Document(
                tenant,
                d,
                np.array([rng.gauss(0, 1) for _ in range(16)], dtype=np.float32),
                {"op": i},
                text=f"written by operation {i}",
            )
            for d in dict.fromkeys(ids)
        )
        out.append(Operation(tenant, upsert=docs))
    return out


def apply(store: VectorStore, op: Operation) -> None:
    """Apply one operation to a store directly (the test's reference)."""
    if op.delete:
        store.delete(op.tenant, list(op.delete))
    if op.upsert:
        store.upsert(op.tenant, list(op.upsert))


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    faiss_dir, chroma_url, outbox_path, start, stop = argv
    clock, sink = SystemClock(), Metrics.null()
    target = FlappingStore(ChromaStore(chroma_url, Metric.COSINE), ops=["upsert", "delete"])
    writer = DualWriter(
        FaissStore(faiss_dir, Metric.COSINE),
        target,
        StaticSettings(load_settings(environ=ENV)),
        SqliteOutbox(outbox_path),
        Breaker(clock, sink.breaker_state),
        sink,
        clock,
    )
    stream = operations()
    for i in range(int(start), int(stop)):
        if any(a <= i < b for a, b in DOWN):
            target.go_down()
        else:
            target.come_up()
        op = stream[i]
        _say(f"BEGIN {i}")
        if op.delete:
            writer.delete(op.tenant, list(op.delete), trace_id=f"op{i}")
        else:
            writer.upsert(op.tenant, list(op.upsert), trace_id=f"op{i}")
        _say(f"ACK {i}")
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

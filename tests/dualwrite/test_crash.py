"""Must-show crash test: the writing process is killed with SIGKILL mid-stream (while the
target is down and changes go to the outbox), restarted, and the outbox replayed: nothing
that was acknowledged is missing in either store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shadowswap.clock import FakeClock
from shadowswap.dualwrite.replay import Replayer, ReplayReport
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from tests.dualwrite.conftest import settings
from tests.dualwrite.crash_writer import (
    DOWN,
    ENV,
    OPERATIONS,
    TENANTS,
    Operation,
    apply,
    operations,
)
from tests.helpers import ROOT, child_env
from tests.metrics_helpers import RecordingMetrics
from tests.servers import ChromaServer


def writer(tmp_path: Path, url: str, start: int, stop: int) -> subprocess.Popen[str]:
    env = child_env({"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])})
    args = [str(tmp_path / "faiss"), url, str(tmp_path / "outbox.sqlite3"), str(start), str(stop)]
    with (tmp_path / f"writer-{start}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.dualwrite.crash_writer", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )


def last_ack(lines: list[str]) -> int:
    acks = [int(line.split()[1]) for line in lines if line.startswith("ACK ")]
    return max(acks, default=-1)


def hashes(store: VectorStore, tenant: str) -> dict[str, str]:
    return {d.doc_id: d.content_hash for page in store.scan(tenant) for d in page}


def reference(stream: list[Operation]) -> MemoryStore:
    store = MemoryStore()
    for op in stream:
        apply(store, op)
    return store


def replay(tmp_path: Path, url: str) -> tuple[ReplayReport, FaissStore, ChromaStore]:
    """Cron, run later than the in-flight grace."""
    primary = FaissStore(tmp_path / "faiss", Metric.COSINE)
    target = ChromaStore(url, Metric.COSINE)
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
    stores = {"faiss": primary, "chroma": target}
    clock = FakeClock(start=time.time() + 120)
    report = Replayer(outbox, stores.__getitem__, settings(**ENV), RecordingMetrics(), clock).run()
    outbox.close()
    return report, primary, target


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_writer_killed_mid_stream_loses_nothing_acknowledged(
    tmp_path: Path, own_chroma_server: ChromaServer
) -> None:
    url, stream = own_chroma_server.url, operations()
    down_from, down_to = DOWN[1]
    kill_after = random.Random(os.getpid()).randint(down_from + 20, down_to - 20)
    first = writer(tmp_path, url, 0, OPERATIONS)
    assert first.stdout is not None
    lines: list[str] = []
    for line in first.stdout:
        lines.append(line)
        if last_ack(lines[-1:]) >= kill_after:
            first.send_signal(signal.SIGKILL)  # mid-stream, at whatever instant this is
            break
    lines += first.stdout.read().splitlines()  # what it printed before it died
    first.stdout.close()
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, (tmp_path / "writer-0.log").read_text()
    acked = last_ack(lines)
    assert acked < OPERATIONS - 1

    # Replay now: every acknowledged write is in both stores. The write in progress at the
    # kill (operation acked + 1) was not acknowledged: its documents may be in either state.
    report, primary, target = replay(tmp_path, url)
    assert report.ok and report.replayed > 0 and report.remaining == 0, report
    before, after = reference(stream[: acked + 1]), reference(stream[: acked + 2])
    in_progress = stream[acked + 1]
    touched = set(in_progress.delete) | {d.doc_id for d in in_progress.upsert}
    for tenant in TENANTS:
        for store in (primary, target):
            want, held = hashes(before, tenant), hashes(store, tenant)
            if tenant == in_progress.tenant:
                maybe = hashes(after, tenant)
                for doc_id in touched:
                    assert held.pop(doc_id, None) in (want.pop(doc_id, None), maybe.get(doc_id))
            assert held == want, (store.kind, tenant)
    primary.close()
    target.close()

    # Restart: the caller retries what was not acknowledged and carries on to the end.
    second = writer(tmp_path, url, acked + 1, OPERATIONS)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, (tmp_path / f"writer-{acked + 1}.log").read_text()
    assert out.split()[-1] == str(OPERATIONS - 1)

    report, primary, target = replay(tmp_path, url)
    assert report.ok and report.remaining == 0, report
    final = reference(stream)
    for tenant in TENANTS:
        assert hashes(primary, tenant) == hashes(final, tenant), tenant
        assert hashes(target, tenant) == hashes(final, tenant), tenant
    primary.close()
    target.close()

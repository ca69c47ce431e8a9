"""Gauges across service workers (prometheus_client's multiprocess mode), with real processes:
each worker has its own circuit breaker, and the breaker-state gauge must say "open" while
any worker's breaker is open, whichever worker changed state last."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

WORKER = """
import sys
from prometheus_client import CollectorRegistry
from shadowswap.metrics import PrometheusSink
sink = PrometheusSink(CollectorRegistry(), env="test", shadow_version="v1", sample="1.0",
                      app_version="0", primary="faiss", target="chroma")
outbox_size, *states = sys.argv[1:]
for state in states:
    sink.breaker_state(state)
sink.outbox_size(int(outbox_size), None)
"""


def _worker(directory: Path, outbox_size: int, *states: str) -> None:
    """One worker process: its breaker goes through ``states``; it reads the shared outbox."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-c", WORKER, str(outbox_size), *states]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr


def _gauge(directory: Path, name: str) -> dict[str, float]:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return {
        sample.labels.get("state", ""): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    }


def test_the_breaker_reads_open_while_any_worker_has_it_open(tmp_path: Path) -> None:
    _worker(tmp_path, 0, "closed", "open")  # worker 1: its target calls failed
    _worker(tmp_path, 0, "closed")  # worker 2, later: still closed
    states = _gauge(tmp_path, "retrieval_dual_write_breaker_state")
    assert states["open"] == 1.0  # the latest writer's 0 must not hide worker 1's open breaker
    assert states["closed"] == 1.0  # and worker 2 is closed: both are true, per worker


def test_shared_gauges_keep_the_latest_value(tmp_path: Path) -> None:
    _worker(tmp_path, 5, "closed", "open", "half_open", "closed")
    _worker(tmp_path, 2, "closed")  # later: the shared outbox's newest reading
    assert _gauge(tmp_path, "retrieval_dual_write_outbox_size") == {"": 2.0}
    assert _gauge(tmp_path, "retrieval_dual_write_breaker_state")["open"] == 0.0

"""Gauges across service workers (prometheus_client's multiprocess mode), with real processes:
each worker has its own circuit breaker, and the breaker-state gauge must say "open" while
any worker's breaker is open, whichever worker changed state last. The values the workers
share (the outbox) are not in the workers' files: the worker serving the scrape reads them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

from shadowswap.metrics import Metrics, OutboxFigures

WORKER = """
import sys
from prometheus_client import CollectorRegistry
from shadowswap.metrics import Metrics, OutboxFigures
metrics = Metrics(CollectorRegistry(), env="test", shadow_version="v1", sample="1.0",
                  app_version="0", primary="faiss", target="chroma")
outbox_size, *states = sys.argv[1:]
metrics.read_outbox_from(lambda: OutboxFigures(int(outbox_size), None, {}))
for state in states:
    metrics.breaker_state(state)
"""


def _worker(directory: Path, outbox_size: int, *states: str) -> None:
    """One worker process: its breaker goes through ``states``; it reads the shared outbox."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)  # the shadowswap this test imports
    command = [sys.executable, "-c", WORKER, str(outbox_size), *states]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr


def _gauge(directory: Path, name: str, scraping: Metrics | None = None) -> dict[str, float]:
    """``name`` as a scrape shows it: every worker's files, and (as the service's
    ``_multiprocess_registry`` adds them) the values ``scraping``'s worker reads at scrape."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    if scraping is not None:
        registry.register(scraping.scraped)
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


def test_shared_values_are_read_at_scrape_and_the_breaker_keeps_its_latest_state(
    tmp_path: Path,
) -> None:
    _worker(tmp_path, 5, "closed", "open", "half_open", "closed")
    _worker(tmp_path, 2, "closed")
    assert _gauge(tmp_path, "retrieval_dual_write_outbox_size") == {}  # nothing pushed
    scraping = Metrics(CollectorRegistry(), env="test", shadow_version="v1", sample="1.0",
                       app_version="0", primary="faiss", target="chroma")  # fmt: skip
    scraping.read_outbox_from(lambda: OutboxFigures(2, None, {}))  # the shared outbox, now
    assert _gauge(tmp_path, "retrieval_dual_write_outbox_size", scraping) == {"": 2.0}
    assert _gauge(tmp_path, "retrieval_dual_write_breaker_state")["open"] == 0.0

"""``shadowswap gate --metrics-url`` against real ``shadowswap serve`` processes on loopback
ports: one worker, two workers (prometheus_client's multiprocess mode), and two replicas
whose series are summed. The evidence counts must equal the requests sent.

Each gateway reads from FAISS and dual-writes to, and shadows every read (sample rate 1) on,
an embedded LanceDB target — both work with several workers. One test points the target at a
Chroma server that is not running, so the outbox fills: with two workers it must be counted
once (it is one outbox, read at scrape time), not once per worker.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from shadowswap.gate.model import Evidence
from shadowswap.gate.scrape import evidence_from_metrics_url
from tests.helpers import cli
from tests.servers import free_port
from tests.service.process import ServeProcess, run_cli

DIM = 8
SEARCH = "/internal/retrieval/search"
UPSERT = "/internal/retrieval/upsert"


def _env_file(tmp: Path, target: list[str], shadow_timeout_ms: int = 10000) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / ".env"
    path.write_text(
        "\n".join([
            "RETRIEVAL_BACKEND=faiss",
            f"RETRIEVAL_FAISS_URL={tmp / 'faiss'}",
            *target,
            "FF_RETRIEVAL_DUAL_WRITE=ON",
            "FF_RETRIEVAL_SHADOW_READ=ON",
            "FF_RETRIEVAL_SHADOW_SAMPLE_RATE=1.0",
            f"RETRIEVAL_SHADOW_TIMEOUT_MS={shadow_timeout_ms}",
            "RETRIEVAL_AUTH=OFF",
            "METRIC_ENV=stg",
            f"RETRIEVAL_DUAL_WRITE_OUTBOX_URL={tmp / 'outbox.sqlite3'}",
            f"RETRIEVAL_STATE_DIR={tmp / 'state'}",
            "",
        ])
    )  # fmt: skip
    return path


def lancedb(tmp: Path) -> list[str]:
    return ["RETRIEVAL_TARGET_BACKEND=lancedb", f"RETRIEVAL_LANCEDB_URL={tmp / 'lancedb'}"]


def _vector(rng: random.Random) -> list[float]:
    return [rng.gauss(0, 1) for _ in range(DIM)]


def _pids(serve: ServeProcess, path: str) -> set[int]:
    return {ln["pid"] for ln in serve.lines() if ln.get("path") == path}


def _send(serve: ServeProcess, *, upserts: int, searches: int, workers: int, seed: int) -> int:
    """``upserts`` upserts of 5 documents, then searches on fresh connections (the kernel picks
    the worker) until ``searches`` are done and every worker answered some. The number of
    documents written."""
    rng = random.Random(seed)
    written = 0
    for u in range(upserts):
        docs = [{"doc_id": f"d{u}-{i}", "vector": _vector(rng)} for i in range(5)]
        with httpx.Client(base_url=serve.url, timeout=30) as client:
            r = client.post(UPSERT, json={"tenant": "acme", "documents": docs})
        assert r.status_code == 200, r.text
        written += len(docs)
    sent = 0
    while sent < searches or len(_pids(serve, SEARCH)) < workers:
        assert sent < 500, "one worker took every connection"
        with httpx.Client(base_url=serve.url, timeout=30) as client:
            r = client.post(SEARCH, json={"tenant": "acme", "vector": _vector(rng), "k": 5})
        assert r.status_code == 200 and len(r.json()["hits"]) == 5, r.text
        sent += 1
    assert len(_pids(serve, SEARCH)) == workers
    return sent


def _wait(urls: list[str], done: Callable[[Evidence], bool], what: str) -> Evidence:
    """The evidence once ``done`` (shadow reads and the dual writer finish after the answer)."""
    deadline = time.monotonic() + 120
    while True:
        ev = evidence_from_metrics_url(urls)
        if done(ev):
            return ev
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {ev.summary()}"
        time.sleep(0.2)


def _shadow_outcomes(ev: Evidence) -> int | None:
    """Shadow reads that ended: compared, failed, timed out or dropped (queue full)."""
    if ev.shadow_errors is None or ev.drops is None:
        return None
    return (ev.compared or 0) + ev.shadow_errors + sum(ev.drops.values())


def _gate(tmp: Path, *urls: str) -> tuple[int, dict[str, Any]]:
    args = [a for url in urls for a in ("--metrics-url", url)]
    out = run_cli(cli("gate", *args, "--state-dir", str(tmp / "no-state"), "--json"), cwd=tmp)
    assert out.stdout, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def _healthy(evidence: dict[str, Any], searches: int) -> None:
    assert evidence["reads"] == searches and evidence["read_errors"] == 0
    assert evidence["compared"] == searches
    assert evidence["shadow_errors"] == 0
    assert evidence["drops"] == {"timeout": 0, "queue_full": 0}
    assert evidence["dual_write_errors"] == 0 and evidence["dual_write_skipped"] == 0
    assert evidence["outbox_size"] == 0 and evidence["outbox_dropped"] == 0
    assert evidence["breaker_open"] is False


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_gate_reads_a_gateway_s_own_metrics(tmp_path: Path, workers: int) -> None:
    with ServeProcess(tmp_path, _env_file(tmp_path, lancedb(tmp_path)),
                      "--workers", str(workers)) as serve:  # fmt: skip
        searches = _send(serve, upserts=6, searches=40, workers=workers, seed=workers)
        url = f"{serve.url}/metrics"
        _wait([url], lambda ev: _shadow_outcomes(ev) == searches and ev.outbox_size == 0,
              "shadow reads and dual writes")  # fmt: skip
        code, doc = _gate(tmp_path, url)
    assert code == 1 and doc["verdict"] == "HOLD"  # 40 comparisons are too few to promote
    _healthy(doc["evidence"], searches)
    assert doc["evidence"]["sources"][0] == f"metrics:{url}"
    assert any("since the gateway started" in n for n in doc["evidence"]["notes"])


@pytest.mark.slow
def test_replicas_are_summed(tmp_path: Path) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a = ServeProcess(a_dir, _env_file(a_dir, lancedb(a_dir)))
    b = ServeProcess(b_dir, _env_file(b_dir, lancedb(b_dir)), "--workers", "2")
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once: starting takes seconds
            list(pool.map(ServeProcess.start, (a, b)))
        sent_a = _send(a, upserts=3, searches=25, workers=1, seed=1)
        sent_b = _send(b, upserts=3, searches=30, workers=2, seed=2)
        urls = [f"{a.url}/metrics", f"{b.url}/metrics"]
        total = sent_a + sent_b
        _wait(urls, lambda ev: _shadow_outcomes(ev) == total and ev.outbox_size == 0,
              "shadow reads and dual writes")  # fmt: skip
        code, doc = _gate(tmp_path, *urls)
        _, only_b = _gate(tmp_path, urls[1])
    finally:
        a.kill()
        b.kill()
    assert code == 1
    _healthy(doc["evidence"], total)
    assert doc["evidence"]["sources"][:2] == [f"metrics:{u}" for u in urls]
    _healthy(only_b["evidence"], sent_b)


@pytest.mark.slow
def test_two_workers_count_one_outbox_once(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # no Chroma server there
    target = ["RETRIEVAL_TARGET_BACKEND=chroma", f"RETRIEVAL_CHROMA_URL={down}",
              "RETRIEVAL_DUAL_WRITE_TIMEOUT_MS=2000"]  # fmt: skip
    config = _env_file(tmp_path, target, shadow_timeout_ms=2000)
    with ServeProcess(tmp_path, config, "--workers", "2") as serve:
        searches = _send(serve, upserts=4, searches=20, workers=2, seed=3)
        url = f"{serve.url}/metrics"
        written = 4 * 5
        _wait([url], lambda ev: _shadow_outcomes(ev) == searches and ev.outbox_size == written,
              "failed shadow reads and writes")  # fmt: skip
        code, doc = _gate(tmp_path, url)
        status = httpx.get(f"{serve.url}/internal/retrieval/status", timeout=30).json()
    evidence = doc["evidence"]
    assert code == 1 and doc["verdict"] != "PROMOTE"  # every shadow read failed
    assert evidence["reads"] == searches and evidence["read_errors"] == 0
    # a client for a server that is not there fails, or hangs past the shadow deadline
    assert evidence["compared"] == 0  # a live gateway with no comparison: 0, not unknown
    outcomes = evidence["shadow_errors"] + sum(evidence["drops"].values())
    assert outcomes == searches
    assert evidence["outbox_size"] == written == status["outbox"]["size"]  # once, not twice
    assert evidence["dual_write_errors"] >= 1

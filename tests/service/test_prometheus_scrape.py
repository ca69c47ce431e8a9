"""Issue 9, item 3: a real Prometheus (Debian's package) scrapes a running ``shadowswap serve``
that carries shadow traffic, and runbook 000's PromQL queries come back non-empty through
Prometheus's HTTP API. The shipped rules file is loaded too, and none of its rules errs on the
real series.

The service reads from FAISS and shadows every read (sample rate 1.0) on an embedded LanceDB
target kept in step by dual write; a client thread keeps searching while Prometheus scrapes
``/metrics`` every second.
"""

from __future__ import annotations

import math
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import PrometheusServer
from tests.service.process import ROOT, ServeProcess

RULES = ROOT / "deploy" / "prometheus" / "shadowswap-rules.yml"
DIM = 16

# Runbook 000, "À surveiller (PromQL exemples)", word for word.
P95_SHADOW_LATENCY = (
    "histogram_quantile(0.95, sum(rate(retrieval_shadow_latency_seconds_bucket[5m])) by (le))"
)
MEAN_AGREEMENT = (
    "sum(rate(retrieval_shadow_agreement_at_5_sum[5m])) / "
    "sum(rate(retrieval_shadow_agreement_at_5_count[5m]))"
)
MEAN_NDCG = (
    "sum(rate(retrieval_shadow_ndcg_at_10_sum[5m])) / "
    "sum(rate(retrieval_shadow_ndcg_at_10_count[5m]))"
)
DROPS_BY_REASON = "sum(rate(retrieval_shadow_dropped_total[5m])) by (reason)"


def _env_file(tmp: Path) -> Path:
    path = tmp / ".env"
    path.write_text(
        "\n".join([
            "RETRIEVAL_BACKEND=faiss",
            f"RETRIEVAL_FAISS_URL={tmp / 'faiss'}",
            "RETRIEVAL_TARGET_BACKEND=lancedb",
            f"RETRIEVAL_LANCEDB_URL={tmp / 'lancedb'}",
            "FF_RETRIEVAL_DUAL_WRITE=ON",
            "FF_RETRIEVAL_SHADOW_READ=ON",
            "FF_RETRIEVAL_SHADOW_SAMPLE_RATE=1.0",
            "RETRIEVAL_SHADOW_TIMEOUT_MS=5000",
            "RETRIEVAL_AUTH=OFF",
            "METRIC_ENV=stg",
            "SHADOW_PIPELINE_VERSION=v2.0.0",
            f"RETRIEVAL_DUAL_WRITE_OUTBOX_URL={tmp / 'outbox.sqlite3'}",
            f"RETRIEVAL_STATE_DIR={tmp / 'state'}",
            "",
        ])
    )  # fmt: skip
    return path


class Traffic:
    """Searches in a loop on a thread until stopped; counts answers by status."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.statuses: dict[int, int] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(3)
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while not self.stop.is_set():
                body = {"tenant": rng.choice(["acme", "globex"]), "k": 10,
                        "vector": [rng.gauss(0, 1) for _ in range(DIM)]}  # fmt: skip
                status = client.post("/internal/retrieval/search", json=body).status_code
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self.stop.wait(0.02)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def _vector(prometheus: PrometheusServer, expr: str) -> list[dict[str, Any]]:
    r = prometheus.query(expr)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def _wait_finite(prometheus: PrometheusServer, expr: str, timeout_s: float = 120.0) -> list[Any]:
    """The query's result once it is non-empty with finite values (rates need two scrapes)."""
    deadline = time.monotonic() + timeout_s
    result: list[Any] = []
    while time.monotonic() < deadline:
        result = _vector(prometheus, expr)
        if result and all(math.isfinite(float(s["value"][1])) for s in result):
            return result
        time.sleep(0.5)
    pytest.fail(f"{expr} stayed empty or NaN for {timeout_s}s: {result}")


@pytest.mark.slow
def test_prometheus_scrapes_serve_and_runbook_000_queries_answer(tmp_path: Path) -> None:
    with ServeProcess(tmp_path, _env_file(tmp_path)) as serve:
        rng = random.Random(1)
        for tenant in ("acme", "globex"):
            docs = [{"doc_id": f"{tenant}-{i}", "vector": [rng.gauss(0, 1) for _ in range(DIM)],
                     "metadata": {"n": i}} for i in range(200)]  # fmt: skip
            r = httpx.post(f"{serve.url}/internal/retrieval/upsert", timeout=60,
                           json={"tenant": tenant, "documents": docs})  # fmt: skip
            assert r.status_code == 200, r.text
        host = serve.url.removeprefix("http://")
        prometheus = PrometheusServer(
            tmp_path / "prometheus",
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}\n"
            "scrape_configs:\n"
            "  - job_name: shadowswap\n"
            "    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{host}']\n",
        )
        prometheus.start()
        try:
            with Traffic(serve.url) as traffic:
                p95 = _wait_finite(prometheus, P95_SHADOW_LATENCY)
                agreement = _wait_finite(prometheus, MEAN_AGREEMENT)
                ndcg = _wait_finite(prometheus, MEAN_NDCG)
                drops = _wait_finite(prometheus, DROPS_BY_REASON)
            assert set(traffic.statuses) == {200}, traffic.statuses
            assert 0.0 < float(p95[0]["value"][1]) < 5.0
            assert 0.0 <= float(agreement[0]["value"][1]) <= 1.0
            assert 0.0 <= float(ndcg[0]["value"][1]) <= 1.0
            assert {s["metric"]["reason"] for s in drops} == {"queue_full", "timeout"}
            # the series carry the labels runbook 004 aggregates by
            raw = _vector(prometheus, "retrieval_shadow_latency_seconds_count")
            assert raw and all(
                s["metric"]["env"] == "stg" and s["metric"]["shadow_version"] == "v2.0.0"
                and s["metric"]["backend"] == "lancedb" and s["metric"]["sample"] == "1.0"
                for s in raw
            )  # fmt: skip
            targets = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=10).json()
            assert [t["health"] for t in targets["data"]["activeTargets"]] == ["up"]
            rules = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()
            groups = rules["data"]["groups"]
            assert groups, "the shipped rules file did not load"
            errs = [r["name"] for g in groups for r in g["rules"] if r.get("health") == "err"]
            assert errs == []
        finally:
            prometheus.stop()

"""The Grafana dashboard: every panel query parses in a real Prometheus and uses only metric
names that shadowswap exports or its recording rules define; the `env` variable exists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from shadowswap.metrics import Drift, Metrics, OutboxFigures
from shadowswap.shadow.publish import ObservationMetrics
from tests.metrics_helpers import compared
from tests.servers import PrometheusServer

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "shadowswap.json").read_text())
RULES = yaml.safe_load((ROOT / "deploy" / "prometheus" / "shadowswap-rules.yml").read_text())
PROMQL_WORDS = {"sum", "by", "rate", "increase", "max", "histogram_quantile", "le", "env", "deriv"}


def _exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
    ]


def _exported_names() -> set[str]:
    registry = CollectorRegistry()
    sink = Metrics(
        registry, env="prod", shadow_version="v1", sample="0.10", app_version="0", primary="faiss",
        target="chroma",
    )  # fmt: skip
    sink.read("faiss", "primary", "ok", 0.01)
    sink.fallback("faiss", "chroma")
    ObservationMetrics(sink).record(compared("chroma", 0.01, 1.0, 1.0, 0.0, 0.001, False))
    sink.shadow_error("chroma")
    sink.breaker_state("open")
    sink.read_outbox_from(lambda: OutboxFigures(3, 1.5, {"full": 0, "ttl": 0}))
    sink.read_drift_from(lambda: Drift(0, 0, 0))
    sink.read_phase_from(lambda: "legacy")
    names = set()
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _recorded_names() -> set[str]:
    return {r["record"] for g in RULES["groups"] for r in g["rules"] if "record" in r}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prom-dashboard"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_env_variable_and_panels_exist() -> None:
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert "env" in variables
    titles = " ".join(p["title"] for p in DASHBOARD["panels"]).lower()
    for wanted in (
        "shadow latency p95",
        "agreement",
        "ndcg",
        "drops",
        "dual-write errors",
        "breaker",
        "outbox",
        "fallbacks",
        "phase",
    ):
        assert wanted in titles, wanted


@pytest.mark.parametrize(("title", "expr"), _exprs())
def test_panel_query_parses_in_prometheus(
    prometheus: PrometheusServer, title: str, expr: str
) -> None:
    concrete = expr.replace("$__rate_interval", "5m").replace("$env", "prod")
    resp = prometheus.query(concrete)
    assert resp.status_code == 200, f"{title}: {resp.text}"
    assert resp.json()["status"] == "success"
    assert 'env="$env"' in expr or "env" in expr  # every query is scoped by the env variable


def test_a_broken_query_is_caught(prometheus: PrometheusServer) -> None:
    assert prometheus.query("sum by (env (rate(retrieval_total[5m]))").status_code == 400


@pytest.mark.parametrize(("title", "expr"), _exprs())
def test_panel_query_uses_only_existing_metrics(title: str, expr: str) -> None:
    known = _exported_names() | _recorded_names()
    stripped = re.sub(r'"[^"]*"', '""', expr)  # drop label values
    stripped = re.sub(r"\{[^}]*\}", "", stripped)  # drop selectors
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)  # drop ranges
    stripped = re.sub(r"by \([^)]*\)", "", stripped)  # drop grouping labels
    names = {n for n in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped) if n not in PROMQL_WORDS}
    names = {n for n in names if not re.fullmatch(r"\d.*", n)}
    unknown = names - known
    assert not unknown, f"{title}: unknown metrics {unknown}"

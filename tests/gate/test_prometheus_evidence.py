"""Gate evidence from a real Prometheus (Debian's), its TSDB backfilled with ``promtool tsdb
create-blocks-from openmetrics`` from snapshots of a real `Metrics` registry."""

from __future__ import annotations

import math
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shadowswap.gate import (
    Criteria,
    Criterion,
    Verdict,
    evaluate,
    evidence_from_prometheus,
    evidence_from_registry,
)
from shadowswap.metrics import Metrics
from shadowswap.shadow.publish import ObservationMetrics
from tests.metrics_helpers import compared
from tests.servers import PrometheusServer, promtool

MINUTES = 40


def _sink(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, env="prod", shadow_version="v1", sample="0.10",
                          app_version="0.1.0", primary="faiss", target="chroma")  # fmt: skip


def _traffic(sink: Metrics, rng: random.Random, errors: bool) -> None:
    """One minute of shadow traffic."""
    for _ in range(20):
        agreement = 1.0 if rng.random() < 0.97 else 0.8
        ObservationMetrics(sink).record(compared("chroma", rng.uniform(0.002, 0.02), agreement,
                                        1.0 if agreement == 1 else 0.9, rng.uniform(0, 0.002),
                                        rng.uniform(-0.002, 0.01), agreement < 1))  # fmt: skip
        sink.read("faiss", "primary", "ok", 0.002)
    if errors:
        for _ in range(3):
            sink.shadow_error("chroma")


def _openmetrics(snapshots: list[tuple[float, CollectorRegistry]]) -> str:
    """One OpenMetrics document holding every snapshot, series by series, in time order."""
    families: dict[str, tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[str]]]] = {}
    for ts, registry in snapshots:
        for family in registry.collect():
            kind = family.type if family.type != "unknown" else "gauge"
            _, series = families.setdefault(family.name, (kind, {}))
            for s in family.samples:
                if s.name.endswith("_created"):
                    continue
                key = (s.name, tuple(sorted(s.labels.items())))
                series.setdefault(key, []).append(f"{s.value} {ts:.3f}")
    lines = []
    for name, (kind, series) in families.items():
        lines.append(f"# TYPE {name} {kind}")
        for (sample, labels), points in series.items():
            text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.extend(f"{sample}{{{text}}} {p}" for p in points)
    return "\n".join([*lines, "# EOF"]) + "\n"


def _backfilled(workdir: Path, errors: bool) -> tuple[PrometheusServer, CollectorRegistry, float]:
    rng = random.Random(7)
    registry = CollectorRegistry()
    sink = _sink(registry)
    now = time.time()
    start = now - (MINUTES + 5) * 60
    snapshots: list[tuple[float, CollectorRegistry]] = []
    for minute in range(MINUTES + 1):
        if minute:
            _traffic(sink, rng, errors)
        copy = CollectorRegistry()  # freeze the values of this minute
        frozen = list(registry.collect())
        copy.register(type("Frozen", (), {"collect": lambda self, f=frozen: f})())
        snapshots.append((start + minute * 60, copy))
    om = workdir / "history.om"
    om.write_text(_openmetrics(snapshots))
    server = PrometheusServer(workdir / "prom")
    done = subprocess.run(
        [promtool(), "tsdb", "create-blocks-from", "openmetrics", str(om), str(server.data)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    server.start()
    return server, registry, start + MINUTES * 60


@pytest.fixture
def healthy_prometheus(
    tmp_path: Path,
) -> Iterator[tuple[PrometheusServer, CollectorRegistry, float]]:
    server, registry, end = _backfilled(tmp_path, errors=False)
    try:
        yield server, registry, end
    finally:
        server.stop()


def test_prometheus_evidence_matches_the_registry(
    healthy_prometheus: tuple[PrometheusServer, CollectorRegistry, float],
) -> None:
    server, registry, end = healthy_prometheus
    got = evidence_from_prometheus(server.url, window="1h", env="prod", at=end + 30)
    want = evidence_from_registry(registry, env="prod")
    assert want.compared == MINUTES * 20
    # increase() extrapolates a little at the window's edges, and misses the first value of a
    # series born during the window: within 3 % or one event
    for field in ("compared", "mismatches", "reads"):
        assert getattr(got, field) == pytest.approx(getattr(want, field), rel=0.03, abs=1), field
    assert got.shadow_errors == 0 and got.dual_write_errors == 0 and got.outbox_size == 0
    assert got.drops == {"timeout": 0, "queue_full": 0} and got.breaker_open is None
    assert got.foreign_hits is None  # not in metrics
    hist = got.agreement_at_5
    assert hist is not None and not isinstance(hist, tuple)
    assert hist.mean == pytest.approx(want.agreement_at_5.mean, rel=1e-3)  # type: ignore[union-attr]
    assert hist.buckets[-1][0] == math.inf
    other = evidence_from_prometheus(server.url, window="1h", env="stg", at=end + 30)
    assert other.compared is None  # no series for that env: unknown, not zero


CRITERIA = Criteria(
    (
        Criterion("agreement", "agreement_at_5_mean", ">=", 0.9),
        Criterion("ndcg", "ndcg_at_10_mean", ">=", 0.9),
        Criterion("latency", "latency_delta_mean_s", "<=", 0.08),
        Criterion("p95", "shadow_latency_p95_s", "<=", 1.2),
        Criterion("errors", "shadow_error_ratio", "<=", 0, rollback_threshold=0.01),
        Criterion("drops", "drop_ratio", "<=", 0.05),
    )
)


def test_the_gate_decides_from_prometheus(
    healthy_prometheus: tuple[PrometheusServer, CollectorRegistry, float],
) -> None:
    server, _, end = healthy_prometheus
    ev = evidence_from_prometheus(server.url, window="1h", env="prod", at=end + 30)
    result = evaluate(ev, CRITERIA)
    assert result.verdict is Verdict.PROMOTE, result.reasons
    # a window with too little traffic is insufficient evidence, not a pass
    short = evidence_from_prometheus(server.url, window="3m", env="prod", at=end + 30)
    assert evaluate(short, CRITERIA).verdict is Verdict.HOLD


def test_shadow_errors_in_prometheus_roll_back(tmp_path: Path) -> None:
    server, _, end = _backfilled(tmp_path, errors=True)
    try:
        ev = evidence_from_prometheus(server.url, window="1h", env="prod", at=end + 30)
        assert ev.shadow_errors == pytest.approx(3 * MINUTES, rel=0.05)
        assert evaluate(ev, CRITERIA).verdict is Verdict.ROLLBACK
    finally:
        server.stop()


def test_an_unreachable_prometheus_is_an_error() -> None:
    from shadowswap.errors import StoreUnavailable
    from tests.servers import free_port

    with pytest.raises(StoreUnavailable, match="prometheus"):
        evidence_from_prometheus(f"http://127.0.0.1:{free_port()}", window="1h")

"""Baseline thresholds (runbook 004): median ± 1.5 × IQR from Prometheus or a saved pull, and
in-place updates of the rules file that change nothing else."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shadowswap.observability import thresholds as th
from tests.helpers import ROOT, run
from tests.servers import PrometheusServer, promtool

RULES = ROOT / "deploy" / "prometheus" / "shadowswap-rules.yml"
SCRIPT = ROOT / "scripts" / "prometheus" / "compute_shadow_thresholds.py"


def _pull(values: dict[str, list[float]]) -> dict[str, object]:
    return {
        "env": "prod",
        "measures": {
            name: {
                "result": [
                    {
                        "metric": {"env": "prod"},
                        "values": [[i * 300, str(v)] for i, v in enumerate(vals)],
                    }
                ]
            }
            for name, vals in values.items()
        },
    }


def test_median_plus_or_minus_one_and_a_half_iqr() -> None:
    rng = random.Random(3)
    lat = [rng.uniform(0.05, 0.4) for _ in range(500)]
    agree = [rng.uniform(0.85, 1.0) for _ in range(500)]
    got = {
        t.name: t
        for t in th.compute(
            _pull({"shadow_latency_p95_seconds": lat, "shadow_agreement_at_5_mean": agree})
        )
    }
    q1, med, q3 = np.percentile(lat, [25, 50, 75])
    assert got["shadow_latency_p95_seconds"].threshold == pytest.approx(med + 1.5 * (q3 - q1))
    q1, med, q3 = np.percentile(agree, [25, 50, 75])
    assert got["shadow_agreement_at_5_mean"].threshold == pytest.approx(med - 1.5 * (q3 - q1))
    assert got["shadow_ndcg_at_10_mean"].threshold is None
    assert "insufficient data" in got["shadow_ndcg_at_10_mean"].note


def test_ratio_thresholds_stay_within_zero_and_one() -> None:
    wide = [0.0, 1.0] * 50
    (t,) = [
        t
        for t in th.compute(_pull({"shadow_ndcg_at_10_mean": wide}))
        if t.name == "shadow_ndcg_at_10_mean"
    ]
    assert t.threshold == 0.0


def test_write_rules_changes_only_the_anchored_numbers(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES.read_text())
    results = [
        th.Threshold("shadow_agreement_at_5_mean", 100, 0.97, 0.95, 0.99, 0.93, False),
        th.Threshold("dual_read_latency_delta_mean_seconds", 100, 0.01, 0.0, 0.02, 0.05, True),
        th.Threshold("shadow_ndcg_at_10_mean", 3, None, None, None, None, False, "insufficient"),
    ]
    changed = th.write_rules(rules, results)
    assert changed == {
        "shadow_agreement_at_5_mean": 0.93,
        "dual_read_latency_delta_mean_seconds": 0.05,
    }
    before, after = RULES.read_text().splitlines(), rules.read_text().splitlines()
    assert len(before) == len(after)
    diff = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert len(diff) == 2
    assert "mean_5m < 0.93 # threshold: shadow_agreement_at_5_mean" in diff[0][1]
    assert "> 0.2) or" in diff[1][1] and "> 0.05) # threshold:" in diff[1][1]
    check = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_write_rules_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES.read_text())

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(th, "atomic_write", full_disk)
    results = [th.Threshold("shadow_agreement_at_5_mean", 100, 0.97, 0.95, 0.99, 0.93, False)]
    with pytest.raises(th.InvalidInput, match=r"--write-rules.*No space left") as info:
        th.write_rules(rules, results)
    assert str(rules) in str(info.value)
    assert rules.read_text() == RULES.read_text()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(SCRIPT), *args], cwd)


def test_script_reads_a_saved_pull_and_updates_rules(tmp_path: Path) -> None:
    rng = random.Random(5)
    pull = tmp_path / "pull.json"
    pull.write_text(
        json.dumps(_pull({"shadow_ndcg_at_10_mean": [rng.uniform(0.9, 1.0) for _ in range(200)]}))
    )
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES.read_text())
    out = _run(["--input", str(pull), "--write-rules", str(rules), "--json"], tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc["changed"]) == {"shadow_ndcg_at_10_mean"} and doc["rules_valid"] is True
    assert (
        f"< {doc['changed']['shadow_ndcg_at_10_mean']} # threshold: shadow_ndcg_at_10_mean"
        in rules.read_text()
    )


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    out = _run(["--input", "bad.json"], tmp_path)
    assert (
        out.returncode == 2
        and "not a readable JSON pull" in out.stderr
        and "Traceback" not in out.stderr
    )
    out = _run(["--input", "missing.json"], tmp_path)
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = _run([], tmp_path)
    assert out.returncode == 2 and "exactly one" in out.stderr


@pytest.fixture
def prometheus_with_history(tmp_path: Path) -> Iterator[PrometheusServer]:
    """A real Prometheus whose TSDB holds three hours of agreement samples (promtool backfill)."""
    rng = random.Random(11)
    now = int(time.time())
    total_sum = total_count = 0.0
    sums, counts = [], []
    for t in range(now - 3 * 3600, now - 60, 30):
        total_sum += sum(rng.uniform(0.9, 1.0) for _ in range(30))
        total_count += 30
        sums.append(
            f'retrieval_shadow_agreement_at_5_sum{{env="prod",backend="chroma"}} {total_sum} {t}'
        )
        labels = '{env="prod",backend="chroma"}'
        counts.append(f"retrieval_shadow_agreement_at_5_count{labels} {total_count} {t}")
    om = tmp_path / "history.om"
    om.write_text(
        "\n".join(["# TYPE retrieval_shadow_agreement_at_5 summary", *sums, *counts, "# EOF"])
        + "\n"
    )
    server = PrometheusServer(tmp_path / "prom")
    done = subprocess.run(
        [promtool(), "tsdb", "create-blocks-from", "openmetrics", str(om), str(server.data)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_pull_from_a_real_prometheus(
    prometheus_with_history: PrometheusServer, tmp_path: Path
) -> None:
    saved = tmp_path / "saved.json"
    out = _run(
        [
            "--prometheus",
            prometheus_with_history.url,
            "--range",
            "3h",
            "--step",
            "1m",
            "--env",
            "prod",
            "--save",
            str(saved),
            "--json",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    doc = {t["name"]: t for t in json.loads(out.stdout)["thresholds"]}
    agreement = doc["shadow_agreement_at_5_mean"]
    assert agreement["samples"] > 100
    assert 0.93 < agreement["median"] < 0.97 and agreement["threshold"] < agreement["median"]
    assert doc["shadow_latency_p95_seconds"]["threshold"] is None  # no data, no guess
    again = _run(["--input", str(saved), "--json"], tmp_path)
    assert json.loads(again.stdout)["thresholds"] == json.loads(out.stdout)["thresholds"]

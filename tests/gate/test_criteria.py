"""Criteria files: the shipped default equals the built-in one; mistakes are clear errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from shadowswap.errors import InvalidInput
from shadowswap.gate import STATISTICS, default_criteria, load_criteria

ROOT = Path(__file__).resolve().parents[2]


def test_deploy_gate_yml_is_the_default() -> None:
    shipped = load_criteria(ROOT / "deploy" / "gate.yml")
    assert replace(shipped, source="") == replace(default_criteria(), source="")
    assert {c.statistic for c in shipped.criteria} <= set(STATISTICS)


def test_the_defaults_carry_the_runbook_thresholds() -> None:
    c = {x.name: x for x in default_criteria().criteria}
    assert (c["score_delta"].op, c["score_delta"].threshold) == ("<=", 0.2)
    assert (c["latency_delta"].op, c["latency_delta"].threshold) == ("<=", 0.08)
    assert c["shadow_errors"].threshold == 0 and c["reconcile_drift"].threshold == 0


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.yml"
    path.write_text(text)
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_criteria(tmp_path / "nope.yml")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not valid YAML at line 2"):
        load_criteria(_write(tmp_path, "criteria:\n  - name: x: y\n"))


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    text = """
confidence: 1.5
criteria:
  - name: a
    statistic: agreement_mean
    op: "=>"
    threshold: high
  - name: a
    statistic: drop_ratio
    op: "<="
    threshold: 0.05
    on_fail: PANIC
    colour: red
  - statistic: drop_ratio
"""
    with pytest.raises(InvalidInput) as caught:
        load_criteria(_write(tmp_path, text))
    message = str(caught.value)
    for part in (
        "confidence 1.5",
        "criteria[0] (a): statistic 'agreement_mean' is not one of",
        "op '=>' is not one of",
        "threshold 'high' must be a number",
        "criteria[1] (a): unknown keys ['colour']",
        "on_fail 'PANIC' must be HOLD or ROLLBACK",
        "criteria[2]: `name` is missing",
        "`op` is missing",
    ):
        assert part in message, part


def test_duplicate_names_and_empty_lists(tmp_path: Path) -> None:
    dup = "criteria:\n" + "  - {name: a, statistic: drop_ratio, op: '<=', threshold: 0.1}\n" * 2
    with pytest.raises(InvalidInput, match="used twice"):
        load_criteria(_write(tmp_path, dup))
    with pytest.raises(InvalidInput, match="non-empty list"):
        load_criteria(_write(tmp_path, "criteria: []\n"))
    with pytest.raises(InvalidInput, match="expected a mapping"):
        load_criteria(_write(tmp_path, "- just a list\n"))


def test_optional_keys_are_read(tmp_path: Path) -> None:
    text = """
confidence: 0.99
min_samples: 50
criteria:
  - name: lat
    statistic: latency_delta_mean_s
    op: "<="
    threshold: 0.05
    on_fail: ROLLBACK
    min_samples: 30
    required: false
    range: [0, 2]
"""
    c = load_criteria(_write(tmp_path, text))
    (lat,) = c.criteria
    assert (c.confidence, c.min_samples) == (0.99, 50)
    assert lat.on_fail.value == "ROLLBACK" and lat.min_samples == 30
    assert lat.required is False and lat.value_range == (0.0, 2.0)

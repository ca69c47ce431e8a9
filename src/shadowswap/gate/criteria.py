"""Gate criteria: the defaults taken from the runbooks, and ``gate.yml`` files.

A criteria file (``deploy/gate.yml`` is the documented default)::

    confidence: 0.95        # one-sided confidence of every bound
    min_samples: 100        # below this, a statistic is insufficient evidence
    criteria:
      - name: agreement_at_5
        statistic: agreement_at_5_mean   # one of shadowswap.gate.evaluate.STATISTICS
        op: ">="                         # <, <=, >, >=, ==
        threshold: 0.9
        on_fail: HOLD                    # HOLD or ROLLBACK when it fails with confidence
        rollback_threshold: 0.7          # optional: ROLLBACK when clearly beyond this
        min_samples: 100                 # optional, overrides the global one
        required: true                   # false: unknown is "not measured", not HOLD
        calibrate: true                  # a --baseline sets the threshold ...
        margin: 0.02                     # ... to its bound minus this margin
        range: [0, 1]                    # optional: the samples' range (means)
        description: text

Every mistake is reported at once with where it is (``gate.yml: criteria[2] (drops): op
'=>' is not one of ...``), as `InvalidInput` (exit code 2 from the CLI).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from shadowswap.errors import InvalidInput
from shadowswap.gate.evaluate import STATISTICS
from shadowswap.gate.model import OPS, Criteria, Criterion, Op, Verdict

DEFAULT_CONFIDENCE = 0.95
DEFAULT_MIN_SAMPLES = 100

_KEYS = {
    "name",
    "statistic",
    "op",
    "threshold",
    "on_fail",
    "rollback_threshold",
    "min_samples",
    "required",
    "calibrate",
    "margin",
    "range",
    "description",
}


# name, statistic, op, threshold, rollback_threshold, margin (None: not calibrated), why
_DEFAULTS: tuple[tuple[str, str, Op, float, float | None, float | None, str], ...] = (
    ("agreement_at_5", "agreement_at_5_mean", ">=", 0.9, 0.7, 0.02,
     "runbook 000: shadow top-5 agrees with the primary's"),
    ("ndcg_at_10", "ndcg_at_10_mean", ">=", 0.9, 0.7, 0.02,
     "runbook 000: shadow ranking graded by the primary's"),
    ("mismatch_ratio", "mismatch_ratio", "<=", 0.1, 0.5, 0.05,
     "runbook 001: mismatches (agreement@5 < 1) stay rare"),
    ("foreign_hits", "foreign_hit_ratio", "<=", 0.0, 0.01, 0.01,
     "no shadow hit the primary cannot explain (another tenant's or a stale document)"),
    ("score_delta", "score_delta_mean", "<=", 0.2, 0.5, None,
     "runbook 001: mean score delta < 0.2"),
    ("latency_delta", "latency_delta_mean_s", "<=", 0.08, None, None,
     "runbook 001: mean latency delta < 80 ms"),
    ("shadow_latency_p95", "shadow_latency_p95_s", "<=", 1.2, None, None,
     "runbook 000: shadow P95 latency <= 1.2 s"),
    ("shadow_errors", "shadow_error_ratio", "<=", 0.0, 0.01, None,
     "runbook 001: shadow errors 0 (rollback when clearly above 1 %)"),
    ("drops", "drop_ratio", "<=", 0.05, None, None,
     "runbook 000: shadow drops stay low (at most 5 %)"),
    ("read_errors", "read_error_ratio", "<=", 0.01, 0.05, None,
     "runbook 003: serving error rate < 1 %"),
    ("dual_write_errors", "dual_write_errors", "==", 0, None, None,
     "runbook 000: no dual-write error in the window"),
    ("breaker_skips", "dual_write_skipped", "==", 0, None, None,
     "runbook 000: no write skipped by an open breaker in the window"),
    ("breaker_closed", "breaker_open", "==", 0, None, None,
     "runbook 000: the dual-write breaker is not open"),
    ("outbox_drained", "outbox_size", "<=", 0, None, None,
     "runbook 000: the outbox is empty (replay it first)"),
    ("outbox_dropped", "outbox_dropped", "==", 0, None, None,
     "no outbox item dropped (else reconcile --repair)"),
    ("reconcile_drift", "reconcile_drift", "==", 0, None, None,
     "runbook 001: the last reconcile found the stores in step"),
    ("reconcile_fresh", "reconcile_age_s", "<=", 86400, None, None,
     "the last reconcile is at most a day old"),
)  # fmt: skip


def default_criteria() -> Criteria:
    """The runbooks' go/no-go conditions (the same as ``deploy/gate.yml``). Every failure is
    HOLD unless it is beyond a rollback threshold."""
    return Criteria(
        criteria=tuple(
            Criterion(
                name,
                statistic,
                op,
                float(threshold),
                Verdict.HOLD,
                rollback,
                calibrate=margin is not None,
                margin=margin or 0.0,
                description=why,
            )
            for name, statistic, op, threshold, rollback, margin, why in _DEFAULTS
        ),
        confidence=DEFAULT_CONFIDENCE,
        min_samples=DEFAULT_MIN_SAMPLES,
    )


def load_criteria(path: str | Path) -> Criteria:
    """Read a criteria file; raises `InvalidInput` naming the file and every mistake."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(where, "the criteria file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(where, f"cannot read the criteria file ({exc})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput(where, f"not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    return parse_criteria(document, where)


def parse_criteria(document: Any, where: str = "criteria") -> Criteria:
    """Criteria from a parsed document (see the module docstring)."""
    errors: list[str] = []
    if not isinstance(document, dict):
        raise InvalidInput(where, "expected a mapping with a `criteria` list")
    unknown = set(document) - {"confidence", "min_samples", "criteria"}
    if unknown:
        errors.append(f"unknown keys {sorted(unknown)} (use confidence, min_samples, criteria)")
    confidence = document.get("confidence", DEFAULT_CONFIDENCE)
    if not _is_number(confidence) or not 0.5 <= float(confidence) < 1:
        errors.append(f"confidence {confidence!r} must be a number in [0.5, 1)")
    min_samples = document.get("min_samples", DEFAULT_MIN_SAMPLES)
    if not _is_int(min_samples) or int(min_samples) < 2:
        errors.append(f"min_samples {min_samples!r} must be a whole number >= 2")
    raw = document.get("criteria")
    parsed: list[Criterion] = []
    if not isinstance(raw, list) or not raw:
        errors.append("`criteria` must be a non-empty list")
        raw = []
    names: set[str] = set()
    for i, entry in enumerate(raw):
        label = f"criteria[{i}]"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label += f" ({entry['name']})"
        criterion = _criterion(entry, label, errors)
        if criterion is None:
            continue
        if criterion.name in names:
            errors.append(f"{label}: the name {criterion.name!r} is used twice")
        names.add(criterion.name)
        parsed.append(criterion)
    if errors:
        raise InvalidInput(where, "; ".join(errors))
    return Criteria(tuple(parsed), float(confidence), int(min_samples), source=where)


def _criterion(entry: Any, label: str, errors: list[str]) -> Criterion | None:
    if not isinstance(entry, dict):
        errors.append(f"{label}: expected a mapping")
        return None
    found = [f"{label}: {e}" for e in _mistakes(entry)]
    if found:
        errors.extend(found)
        return None
    value_range = entry.get("range")
    rollback = entry.get("rollback_threshold")
    min_samples = entry.get("min_samples")
    return Criterion(
        name=entry["name"],
        statistic=entry["statistic"],
        op=entry["op"],
        threshold=float(entry["threshold"]),
        on_fail=Verdict(entry.get("on_fail", "HOLD")),
        rollback_threshold=float(rollback) if rollback is not None else None,
        min_samples=int(min_samples) if min_samples is not None else None,
        required=bool(entry.get("required", True)),
        calibrate=bool(entry.get("calibrate", False)),
        margin=float(entry.get("margin", 0.0)),
        value_range=(float(value_range[0]), float(value_range[1])) if value_range else None,
        description=entry.get("description", ""),
    )


def _mistakes(entry: dict[str, Any]) -> list[str]:
    """What is wrong with one criterion's mapping (empty when nothing)."""
    out = [f"`{key}` is missing" for key in ("name", "statistic", "op", "threshold")
           if key not in entry]  # fmt: skip
    unknown = set(entry) - _KEYS
    if unknown:
        out.append(f"unknown keys {sorted(unknown)}")
    checks: list[tuple[str, Any, bool, str]] = [
        ("name", entry.get("name"), isinstance(entry.get("name"), str)
         and bool(entry.get("name", "").strip()), "must be a non-empty string"),
        ("statistic", entry.get("statistic"), entry.get("statistic") in STATISTICS,
         f"is not one of {', '.join(sorted(STATISTICS))}"),
        ("op", entry.get("op"), entry.get("op") in OPS, f"is not one of {', '.join(OPS)}"),
        ("threshold", entry.get("threshold"), _is_number(entry.get("threshold")),
         "must be a number"),
        ("rollback_threshold", entry.get("rollback_threshold"),
         _is_number(entry.get("rollback_threshold")), "must be a number"),
        ("on_fail", entry.get("on_fail"), entry.get("on_fail") in ("HOLD", "ROLLBACK"),
         "must be HOLD or ROLLBACK"),
        ("min_samples", entry.get("min_samples"),
         _is_int(entry.get("min_samples")) and entry.get("min_samples", 0) >= 2,
         "must be a whole number >= 2"),
        ("required", entry.get("required"), isinstance(entry.get("required"), bool),
         "must be true or false"),
        ("calibrate", entry.get("calibrate"), isinstance(entry.get("calibrate"), bool),
         "must be true or false"),
        ("margin", entry.get("margin"),
         _is_number(entry.get("margin")) and entry.get("margin", 0) >= 0,
         "must be a number >= 0"),
        ("range", entry.get("range"), _is_range(entry.get("range")),
         "must be [low, high] with low < high"),
        ("description", entry.get("description"), isinstance(entry.get("description"), str),
         "must be text"),
    ]  # fmt: skip
    for key, value, ok, why in checks:
        if key in entry and entry[key] is not None and not ok:
            out.append(f"{key} {value!r} {why}")
        elif (
            key in entry and entry[key] is None and key in ("name", "statistic", "op", "threshold")
        ):
            out.append(f"{key} is empty")
    return out


def _is_range(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_is_number(v) for v in value)
        and float(value[0]) < float(value[1])
    )


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

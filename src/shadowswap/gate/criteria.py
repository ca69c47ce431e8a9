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
        rule_out: 0.01                   # optional, must-be-zero rates: the rate 0 events
                                         # must rule out to pass (default rollback_threshold)
        min_samples: 100                 # optional, overrides the global one
        required: true                   # false: unknown is "not measured", not HOLD
        calibrate: true                  # a --baseline sets the threshold ...
        margin: 0.02                     # ... to its bound minus this margin
        range: [0, 1]                    # optional: the samples' range (means)
        description: text

Every mistake is reported at once with where it is (``gate.yml: criteria[2] (drops): op
'=>' is not one of ...``), as `InvalidInput` (exit code 2 from the CLI). The file is read
through pydantic models (`_CriteriaFile`, `_CriterionEntry`) whose errors are worded as above.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, cast

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from shadowswap.errors import InvalidInput
from shadowswap.gate.evaluate import STATISTICS
from shadowswap.gate.model import OPS, Criteria, Criterion, Op, Verdict

DEFAULT_CONFIDENCE = 0.95
DEFAULT_MIN_SAMPLES = 100

# name, statistic, op, threshold, rollback_threshold, margin (None: not calibrated), why
_DEFAULTS: tuple[tuple[str, str, Op, float, float | None, float | None, str], ...] = (
    ("agreement_at_5", "agreement_at_5_mean", ">=", 0.9, 0.7, 0.02,
     "runbook 000: shadow top-5 agrees with the primary's"),
    ("ndcg_at_10", "ndcg_at_10_mean", ">=", 0.9, 0.7, 0.02,
     "runbook 000: shadow ranking graded by the primary's"),
    ("mismatch_ratio", "mismatch_ratio", "<=", 0.1, 0.5, 0.05,
     "runbook 001: mismatches (agreement@5 < 1) stay rare"),
    ("foreign_hits", "foreign_hit_ratio", "<=", 0.0, 0.0005, None,
     "no shadow hit absent from the tenant's primary (another tenant's or a deleted document)"),
    ("stale_hits", "stale_hit_ratio", "<=", 0.0, 0.01, None,
     "no shadow hit in an older version than the primary's"),
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


#: must-be-zero rates whose rule-out rate is not their rollback threshold. A foreign hit is a
#: fault at any rate: ROLLBACK once its rate is confidently above 0.05 %, and a pass only once
#: 0 in 2,995 comparisons put it below 0.1 % at 95 % (a leak on 1 % of one tenant's queries
#: among three tenants would go unseen in 300 comparisons a third of the time)
_RULE_OUT = {"foreign_hits": 0.001}


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
                rule_out=_RULE_OUT.get(name),
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


_Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
_WholeNumber = Annotated[int, Field(strict=True, ge=2)]


def _named_statistic(value: str) -> str:
    if value not in STATISTICS:
        raise ValueError("unknown statistic")
    return value


def _known_op(value: str) -> str:
    if value not in OPS:
        raise ValueError("unknown op")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")
    return value


def _low_high(value: list[float]) -> list[float]:
    if len(value) != 2 or not value[0] < value[1]:
        raise ValueError("not [low, high]")
    return value


class _CriteriaFile(BaseModel):
    """The file's top level; each entry of ``criteria`` is read by `_CriterionEntry`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    confidence: Annotated[_Number, Field(ge=0.5, lt=1)] = DEFAULT_CONFIDENCE
    min_samples: _WholeNumber = DEFAULT_MIN_SAMPLES
    criteria: Annotated[list[Any], Field(min_length=1)]


class _CriterionEntry(BaseModel):
    """One criterion as written. Field order is the order mistakes are reported in; a
    ``null`` optional key means "not given"."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=False)

    name: Annotated[str, AfterValidator(_not_blank)]
    statistic: Annotated[str, AfterValidator(_named_statistic)]
    op: Annotated[str, AfterValidator(_known_op)]
    threshold: _Number
    rollback_threshold: _Number | None = None
    rule_out: Annotated[_Number, Field(gt=0, lt=1)] | None = None
    on_fail: Literal["HOLD", "ROLLBACK"] | None = None
    min_samples: _WholeNumber | None = None
    required: bool | None = True
    calibrate: bool | None = False
    margin: Annotated[_Number, Field(ge=0)] | None = None
    value_range: Annotated[list[_Number], AfterValidator(_low_high)] | None = Field(
        default=None, alias="range"
    )
    description: str | None = None


_TOP_MISTAKES = {
    "confidence": "must be a number in [0.5, 1)",
    "min_samples": "must be a whole number >= 2",
}
_REQUIRED = ("name", "statistic", "op", "threshold")
_MISTAKES = {
    "name": "must be a non-empty string",
    "statistic": f"is not one of {', '.join(sorted(STATISTICS))}",
    "op": f"is not one of {', '.join(OPS)}",
    "threshold": "must be a number",
    "rollback_threshold": "must be a number",
    "rule_out": "must be a number in (0, 1)",
    "on_fail": "must be HOLD or ROLLBACK",
    "min_samples": "must be a whole number >= 2",
    "required": "must be true or false",
    "calibrate": "must be true or false",
    "margin": "must be a number >= 0",
    "range": "must be [low, high] with low < high",
    "description": "must be text",
}


def parse_criteria(document: Any, where: str = "criteria") -> Criteria:
    """Criteria from a parsed document (see the module docstring)."""
    if not isinstance(document, dict):
        raise InvalidInput(where, "expected a mapping with a `criteria` list")
    errors: list[str] = []
    try:
        top: _CriteriaFile | None = _CriteriaFile.model_validate(document)
    except ValidationError as exc:
        top = None
        wrong = _wrong_fields(exc)
        if wrong.unknown:
            errors.append(
                f"unknown keys {sorted(wrong.unknown)} (use confidence, min_samples, criteria)"
            )
        for key, why in _TOP_MISTAKES.items():
            if key in wrong.fields:
                errors.append(f"{key} {document[key]!r} {why}")
        if "criteria" in wrong.fields:
            errors.append("`criteria` must be a non-empty list")
    raw = document.get("criteria")
    entries = raw if isinstance(raw, list) and raw else []
    parsed: list[Criterion] = []
    names: set[str] = set()
    for i, entry in enumerate(entries):
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
    if errors or top is None:
        raise InvalidInput(where, "; ".join(errors))
    return Criteria(tuple(parsed), float(top.confidence), top.min_samples, source=where)


def _criterion(entry: Any, label: str, errors: list[str]) -> Criterion | None:
    if not isinstance(entry, dict):
        errors.append(f"{label}: expected a mapping")
        return None
    try:
        e = _CriterionEntry.model_validate(entry)
    except ValidationError as exc:
        errors.extend(f"{label}: {m}" for m in _mistakes(entry, _wrong_fields(exc)))
        return None
    return Criterion(
        name=e.name,
        statistic=e.statistic,
        op=cast(Op, e.op),
        threshold=float(e.threshold),
        on_fail=Verdict(e.on_fail or "HOLD"),
        rollback_threshold=e.rollback_threshold,
        min_samples=e.min_samples,
        required=bool(e.required),
        calibrate=bool(e.calibrate),
        margin=float(e.margin or 0.0),
        value_range=(e.value_range[0], e.value_range[1]) if e.value_range else None,
        description=e.description or "",
        rule_out=e.rule_out,
    )


class _Wrong(NamedTuple):
    fields: set[str]  # keys whose value is wrong (or missing)
    unknown: set[Any]  # keys the model does not know


def _wrong_fields(exc: ValidationError) -> _Wrong:
    wrong = _Wrong(set(), set())
    for error in exc.errors():
        key = error["loc"][0] if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            wrong.unknown.add(key)
        else:
            wrong.fields.add(str(key))
    return wrong


def _mistakes(entry: dict[str, Any], wrong: _Wrong) -> list[str]:
    """One line per mistake in one criterion's mapping, in the file's field order."""
    out = [f"`{key}` is missing" for key in _REQUIRED if key not in entry]
    if wrong.unknown:
        out.append(f"unknown keys {sorted(wrong.unknown)}")
    for key, why in _MISTAKES.items():
        if key not in entry or key not in wrong.fields:
            continue
        out.append(f"{key} is empty" if entry[key] is None else f"{key} {entry[key]!r} {why}")
    return out

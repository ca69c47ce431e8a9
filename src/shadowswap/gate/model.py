"""The gate's values: verdicts, criteria, the evidence they are judged on, and results.

A gate run is a pure function of three values, `evaluate(evidence, criteria, baseline)`:
``Evidence`` says what was seen (shadow comparisons, counters, state; ``None`` = unknown),
``Criteria`` what must hold, and the result says PROMOTE, HOLD or ROLLBACK with every
criterion's value, threshold, bounds and verdict. Sources of evidence (the observation log, a
metrics registry, Prometheus, the state directory) live in `shadowswap.gate.evidence` and
`shadowswap.gate.prometheus`; the statistics in `shadowswap.gate.stats`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Op = Literal["<", "<=", ">", ">=", "=="]
OPS: tuple[str, ...] = ("<", "<=", ">", ">=", "==")


class Verdict(enum.StrEnum):
    """What the gate says. Exit code 0 only for PROMOTE."""

    PROMOTE = "PROMOTE"  # every criterion holds with confidence
    HOLD = "HOLD"  # not yet: insufficient evidence, or a failure that waiting can fix
    ROLLBACK = "ROLLBACK"  # clearly bad, with confidence: step back


@dataclass(frozen=True)
class Histogram:
    """Samples known only through a Prometheus histogram: how many, their sum, and cumulative
    bucket counts ``(upper edge, count of samples <= edge)`` ascending, the last edge ``inf``.
    """

    count: int
    total: float
    buckets: tuple[tuple[float, int], ...] = ()

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")


#: Per-comparison samples: exact values in time order, a histogram, or None (unknown).
Samples = tuple[float, ...] | Histogram | None


@dataclass(frozen=True)
class Evidence:
    """What was seen over a window. Every field ``None`` means *unknown* (the source does not
    say, or the series is missing), which is never taken as good news; ``0`` or ``()`` means
    known to be none.

    >>> ev = Evidence(agreement_at_5=(1.0, 0.8), compared=2, shadow_errors=0)
    >>> ev.shadow_attempts
    2
    """

    # per comparison (outcome "compared"), in time order when exact
    agreement_at_5: Samples = None
    ndcg_at_10: Samples = None
    score_delta: Samples = None  # only comparisons that shared a document
    latency_delta_s: Samples = None  # shadow minus primary latency
    shadow_latency_s: Samples = None
    # counts of shadow reads
    compared: int | None = None
    mismatches: int | None = None  # comparisons with agreement@5 < 1
    foreign_hits: int | None = None  # comparisons with a hit absent from the tenant's primary
    stale_hits: int | None = None  # comparisons with a hit in another version than the primary's
    shadow_errors: int | None = None
    drops: Mapping[str, int] | None = None  # reason (timeout, queue_full) -> count
    # serving reads and dual writes
    reads: int | None = None
    read_errors: int | None = None  # errors and timeouts of serving reads
    dual_write_errors: int | None = None
    dual_write_skipped: int | None = None  # writes skipped because the breaker was open
    # state at the end of the window
    breaker_open: bool | None = None
    outbox_size: int | None = None
    outbox_oldest_age_s: float | None = None
    outbox_dropped: int | None = None
    reconcile_drift: int | None = None
    reconcile_age_s: float | None = None
    # where it came from
    window_s: float | None = None
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def dropped(self) -> int | None:
        """All shadow drops (timeout and queue_full); None unless both reasons are known."""
        if self.drops is None or not {"timeout", "queue_full"} <= set(self.drops):
            return None
        return sum(self.drops.values())

    @property
    def shadow_attempts(self) -> int | None:
        """Shadow reads that reached an outcome: compared, error, or timeout."""
        if self.compared is None or self.shadow_errors is None:
            return None
        timeouts = (self.drops or {}).get("timeout", 0)
        return self.compared + self.shadow_errors + timeouts

    def summary(self) -> dict[str, Any]:
        """The counts and state, for reports (no samples)."""
        return {
            "sources": list(self.sources),
            "window_s": self.window_s,
            "compared": self.compared,
            "mismatches": self.mismatches,
            "foreign_hits": self.foreign_hits,
            "stale_hits": self.stale_hits,
            "shadow_errors": self.shadow_errors,
            "drops": dict(self.drops) if self.drops is not None else None,
            "reads": self.reads,
            "read_errors": self.read_errors,
            "dual_write_errors": self.dual_write_errors,
            "dual_write_skipped": self.dual_write_skipped,
            "breaker_open": self.breaker_open,
            "outbox_size": self.outbox_size,
            "outbox_oldest_age_s": self.outbox_oldest_age_s,
            "outbox_dropped": self.outbox_dropped,
            "reconcile_drift": self.reconcile_drift,
            "reconcile_age_s": self.reconcile_age_s,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Criterion:
    """One condition a promotion needs: ``statistic op threshold``, judged on a confidence
    bound (the pessimistic one to pass, the optimistic one to fail).

    ``on_fail`` is the verdict when the criterion fails with confidence; ``rollback_threshold``
    (optional) escalates a confident failure to ROLLBACK when even the optimistic bound is
    beyond it. ``required=False`` lets the gate promote when the statistic is unknown (it is
    reported as not measured). ``calibrate`` lets a baseline set the threshold: the
    baseline's bound moved by ``margin`` towards the bad side. ``value_range`` bounds the
    samples of a mean (they are clipped into it); None takes the statistic's default.

    >>> Criterion("agreement", "agreement_at_5_mean", ">=", 0.9, on_fail=Verdict.ROLLBACK)
    ... # doctest: +ELLIPSIS
    Criterion(name='agreement', ...)
    """

    name: str
    statistic: str
    op: Op
    threshold: float
    on_fail: Verdict = Verdict.HOLD
    rollback_threshold: float | None = None
    min_samples: int | None = None  # None: the criteria's default
    required: bool = True
    calibrate: bool = False
    margin: float = 0.0
    value_range: tuple[float, float] | None = None
    description: str = ""
    rule_out: float | None = None  # must-be-zero rates: the rate 0 events must rule out
    # before the criterion passes (default: rollback_threshold)

    @property
    def ruled_out(self) -> float | None:
        """The rate zero events must rule out for a must-be-zero rate to pass."""
        return self.rule_out if self.rule_out is not None else self.rollback_threshold


@dataclass(frozen=True)
class Criteria:
    """Every criterion plus global settings: one-sided ``confidence`` of every bound, and the
    default ``min_samples`` below which a statistic is insufficient evidence."""

    criteria: tuple[Criterion, ...]
    confidence: float = 0.95
    min_samples: int = 100
    source: str = "default"

    def names(self) -> list[str]:
        return [c.name for c in self.criteria]


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's outcome. ``passed`` is None when inconclusive (insufficient evidence)
    or not measured; ``bounds`` are the one-sided confidence bounds (lower, upper);
    ``verdict`` is what this criterion alone asks for."""

    name: str
    statistic: str
    op: str
    value: float | None
    threshold: float
    passed: bool | None
    verdict: Verdict
    detail: str
    samples: int | None = None
    bounds: tuple[float, float] | None = None
    configured_threshold: float | None = None  # set when a baseline moved the threshold
    required: bool = True
    needed: int | None = None  # inconclusive: about how many more samples (or trials)
    needed_s: float | None = None  # ... and about how long they take at the rate seen
    unit: str = ""  # what a sample is: comparisons, shadow reads, reads

    @property
    def bound(self) -> float | None:
        """The pessimistic bound: the one a pass is judged on."""
        if self.bounds is None:
            return None
        return self.bounds[1] if self.op in ("<", "<=") else self.bounds[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _num(self.value),
            "threshold": _num(self.threshold),
            "passed": self.passed,
            "verdict": self.verdict.value,
            "statistic": self.statistic,
            "op": self.op,
            "bound": _num(self.bound),
            "bounds": [_num(b) for b in self.bounds] if self.bounds is not None else None,
            "samples": self.samples,
            "configured_threshold": _num(self.configured_threshold),
            "required": self.required,
            "needed": self.needed,
            "needed_s": _num(self.needed_s),
            "unit": self.unit,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class GateResult:
    """The verdict, every criterion's result, and the reasons for anything but PROMOTE."""

    verdict: Verdict
    criteria: tuple[CriterionResult, ...]
    reasons: tuple[str, ...]
    confidence: float
    evidence: Mapping[str, Any] = field(default_factory=dict)
    baseline: Mapping[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict is Verdict.PROMOTE else 1

    def as_dict(self) -> dict[str, Any]:
        """CONTRACT §6: ``verdict`` and ``criteria`` (name, value, threshold, passed, ...)."""
        return {
            "verdict": self.verdict.value,
            "criteria": [c.as_dict() for c in self.criteria],
            "reasons": list(self.reasons),
            "confidence": self.confidence,
            "evidence": dict(self.evidence),
            "baseline": dict(self.baseline) if self.baseline is not None else None,
        }


def _num(value: float | None) -> float | None:
    """JSON-safe: rounded, and None for NaN or infinities."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)

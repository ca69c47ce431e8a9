"""Judge evidence against criteria: PROMOTE only when every criterion holds with confidence.

Per criterion (see `shadowswap.gate.stats` for the bounds):

    unknown statistic            -> inconclusive: HOLD, "insufficient evidence" (or, for a
                                    criterion with ``required: false``, "not measured": no vote)
    fewer than min_samples       -> inconclusive: HOLD, "insufficient evidence"
    pessimistic bound clears it  -> passed
    optimistic bound misses it   -> failed: the criterion's ``on_fail`` (HOLD by default), or
                                    ROLLBACK when the optimistic bound is beyond
                                    ``rollback_threshold`` too
    otherwise                    -> inconclusive: HOLD, "insufficient evidence"

The verdict is ROLLBACK if any criterion asks for it, else HOLD if any required criterion did
not pass, else PROMOTE. Missing data can therefore never promote: that is the failure mode of
gates that "pass with no data".

With a baseline (the primary compared with itself or a replica), a criterion marked
``calibrate`` takes its threshold from the baseline: the baseline's bound on the bad side,
moved by ``margin`` further (``>=``: lower bound − margin; ``<=``: upper bound + margin), so
an approximate index is held to the disagreement that is normal for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from shadowswap.gate import needed, stats
from shadowswap.gate.model import (
    Criteria,
    Criterion,
    CriterionResult,
    Evidence,
    GateResult,
    Samples,
    Verdict,
)


@dataclass(frozen=True)
class Statistic:
    """A statistic a criterion can name: how it is computed from `Evidence`."""

    name: str
    kind: str  # mean | ratio | quantile | value
    description: str
    value_range: tuple[float, float] = (0.0, 1.0)
    unit: str = ""


STATISTICS: dict[str, Statistic] = {
    s.name: s
    for s in (
        Statistic("agreement_at_5_mean", "mean", "mean agreement@5 of shadow vs primary"),
        Statistic("ndcg_at_10_mean", "mean", "mean nDCG@10 of the shadow, graded by the primary"),
        Statistic(
            "score_delta_mean", "mean", "mean |score difference| on shared documents", (0.0, 2.0)
        ),
        Statistic(
            "latency_delta_mean_s",
            "mean",
            "mean of how much slower the shadow answered (0 when faster)",
            (0.0, 0.8),
            "s",
        ),
        Statistic("shadow_latency_p95_s", "quantile", "p95 shadow latency", (0.0, math.inf), "s"),
        Statistic("mismatch_ratio", "ratio", "comparisons with agreement@5 < 1"),
        Statistic(
            "foreign_hit_ratio",
            "ratio",
            "comparisons where the shadow returned a document the tenant's primary lacks",
        ),
        Statistic(
            "stale_hit_ratio",
            "ratio",
            "comparisons where the shadow returned an older version of a primary document",
        ),
        Statistic("shadow_error_ratio", "ratio", "shadow reads that raised"),
        Statistic("drop_ratio", "ratio", "shadow reads dropped (timeout or full queue)"),
        Statistic("read_error_ratio", "ratio", "serving reads that failed or timed out"),
        Statistic("dual_write_errors", "value", "dual-write errors in the window"),
        Statistic("dual_write_skipped", "value", "writes skipped because the breaker was open"),
        Statistic("breaker_open", "value", "dual-write breaker open (1) or not (0)"),
        Statistic("outbox_size", "value", "items waiting in the outbox"),
        Statistic("outbox_oldest_age_s", "value", "age of the oldest outbox item", unit="s"),
        Statistic("outbox_dropped", "value", "outbox items dropped (full or TTL)"),
        Statistic("reconcile_drift", "value", "documents out of step at the last reconcile"),
        Statistic("reconcile_age_s", "value", "age of the last reconcile result", unit="s"),
    )
}

_SAMPLES: dict[str, Callable[[Evidence], Samples]] = {
    "agreement_at_5_mean": lambda e: e.agreement_at_5,
    "ndcg_at_10_mean": lambda e: e.ndcg_at_10,
    "score_delta_mean": lambda e: e.score_delta,
    "latency_delta_mean_s": lambda e: e.latency_delta_s,
    "shadow_latency_p95_s": lambda e: e.shadow_latency_s,
}


def _ratio(e: Evidence, name: str) -> tuple[int, int] | None:
    """(events, trials) of a ratio statistic, or None when unknown."""
    pair: tuple[int | None, int | None]
    if name == "mismatch_ratio":
        pair = (e.mismatches, e.compared)
    elif name == "foreign_hit_ratio":
        pair = (e.foreign_hits, e.compared)
    elif name == "stale_hit_ratio":
        pair = (e.stale_hits, e.compared)
    elif name == "shadow_error_ratio":
        pair = (e.shadow_errors, e.shadow_attempts)
    elif name == "drop_ratio":
        attempts = e.shadow_attempts
        queue_full = (e.drops or {}).get("queue_full")
        dropped = e.dropped
        pair = (dropped, None if attempts is None or queue_full is None else attempts + queue_full)
    elif name == "read_error_ratio":
        pair = (e.read_errors, e.reads)
    else:  # pragma: no cover - guarded by STATISTICS
        raise KeyError(name)
    events, trials = pair
    if events is None or trials is None:
        return None
    return min(events, trials), trials


_RECONCILE = "run `shadowswap reconcile`: it writes reconcile_last.json in the state dir"
_SOURCES = (
    "set RETRIEVAL_OBSERVATIONS_DIR on the gateway and give --observations (its default), "
    "or give --metrics-url or --prometheus"
)
_HINTS = {
    "reconcile_drift": _RECONCILE,
    "reconcile_age_s": _RECONCILE,
}


#: what one sample (or trial) of a statistic is, for "N more ... needed"
_UNITS = {
    "shadow_error_ratio": "shadow reads",
    "drop_ratio": "shadow reads",
    "read_error_ratio": "reads",
}


def _unknown(spec: Statistic) -> str:
    hint = _HINTS.get(spec.name) or _SOURCES
    return f"{spec.description}: unknown ({hint})"


def unit_of(statistic: str) -> str:
    """What one sample or trial of ``statistic`` is (``comparisons`` unless said)."""
    kind = STATISTICS[statistic].kind
    return "" if kind == "value" else _UNITS.get(statistic, "comparisons")


def _value(e: Evidence, name: str) -> float | None:
    value: float | int | bool | None = getattr(e, name)
    return None if value is None else float(value)


@dataclass(frozen=True)
class _Measured:
    bound: stats.Bound
    kind: str
    events: int | None = None  # for ratios
    samples: Samples = None  # for means


def measure(
    evidence: Evidence, statistic: str, confidence: float, value_range: tuple[float, float] | None
) -> _Measured | str:
    """The statistic's estimate and bounds, or why it is unknown."""
    spec = STATISTICS[statistic]
    found = _measure_known(evidence, spec, confidence, value_range or spec.value_range)
    return found if found is not None else _unknown(spec)


def _measure_known(
    evidence: Evidence, spec: Statistic, confidence: float, rng: tuple[float, float]
) -> _Measured | None:
    if spec.kind in ("mean", "quantile"):
        samples = _SAMPLES[spec.name](evidence)
        if samples is None:
            return None
        if spec.kind == "mean":
            return _Measured(stats.mean_bound(samples, rng, confidence), "mean", samples=samples)
        return _Measured(stats.quantile_bound(samples, 0.95, rng, confidence), "quantile")
    if spec.kind == "ratio":
        pair = _ratio(evidence, spec.name)
        if pair is None:
            return None
        events, trials = pair
        return _Measured(stats.ratio_bound(events, trials, confidence), "ratio", events)
    value = _value(evidence, spec.name)
    return None if value is None else _Measured(stats.Bound(0, value, value, value), "value")


def _holds(op: str, lower: float, upper: float, threshold: float) -> bool:
    """The pessimistic bound satisfies ``op threshold``."""
    return {
        "<=": upper <= threshold,
        "<": upper < threshold,
        ">=": lower >= threshold,
        ">": lower > threshold,
        "==": lower == threshold == upper,
    }[op]


def _misses(op: str, lower: float, upper: float, threshold: float) -> bool:
    """Even the optimistic bound violates ``op threshold``."""
    return {
        "<=": lower > threshold,
        "<": lower >= threshold,
        ">=": upper < threshold,
        ">": upper <= threshold,
        "==": lower > threshold or upper < threshold,
    }[op]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _pct(x: float) -> str:
    return f"{100 * x:.3g} %"


def _threshold(
    c: Criterion, criteria: Criteria, baseline: Evidence | None, min_n: int
) -> float | str:
    """The criterion's threshold: its own, or the baseline's bound moved by the margin;
    a string says why the baseline cannot set it."""
    if not c.calibrate or baseline is None:
        return c.threshold
    b = measure(baseline, c.statistic, criteria.confidence, c.value_range)
    if isinstance(b, str):
        return f"insufficient evidence: baseline {b}"
    if b.kind != "value" and b.bound.n < min_n:
        return f"insufficient evidence: baseline has {b.bound.n} samples, {min_n} needed"
    lo, hi = c.value_range or STATISTICS[c.statistic].value_range
    if c.op in (">=", ">"):
        return max(lo, b.bound.lower - c.margin)
    return min(hi, b.bound.upper + c.margin)


def _decide(
    c: Criterion, m: _Measured, threshold: float, confidence: float
) -> tuple[bool | None, Verdict, str]:
    """Pass, fail (with the verdict it asks for) or inconclusive, on the bounds."""
    bound = m.bound
    where = "" if m.kind == "value" else f" ({_fmt(bound.lower)}..{_fmt(bound.upper)})"
    say = f"{_fmt(bound.value)}{where} vs {c.op} {_fmt(threshold)}"
    if bound.note:
        say += f"; {bound.note}"
    if m.kind == "ratio" and threshold == 0 and c.op in ("<=", "=="):  # must be zero
        if m.events == 0:
            why = f"none in {bound.n} {unit_of(c.statistic)}; the rate is below {_pct(bound.upper)}"
            limit = c.ruled_out
            if limit is not None and bound.upper > limit:
                # none seen yet, but too few trials to rule out a rate that matters
                why += f", not yet below {_pct(limit)} (the rate it must rule out)"
                return None, Verdict.HOLD, f"insufficient evidence: {why}"
            return True, Verdict.PROMOTE, f"{why} at {confidence:.0%} confidence"
        passed, failed = False, True
    else:
        passed = _holds(c.op, bound.lower, bound.upper, threshold)
        failed = _misses(c.op, bound.lower, bound.upper, threshold)
    if passed:
        return True, Verdict.PROMOTE, say
    if not failed:
        return None, Verdict.HOLD, f"insufficient evidence: {say}: the bounds straddle it"
    verdict = c.on_fail
    rollback = c.rollback_threshold
    if rollback is not None and _misses(c.op, bound.lower, bound.upper, rollback):
        verdict = Verdict.ROLLBACK
        say += f", beyond the rollback threshold {_fmt(rollback)}"
    return False, verdict, f"fails: {say}"


def _needed(
    c: Criterion,
    m: _Measured,
    threshold: float,
    confidence: float,
    min_n: int,
    rng: tuple[float, float],
) -> tuple[int, bool] | None:
    """About how many more samples an inconclusive criterion needs, and whether that is the
    estimate (True) or only the minimum still missing (False); None when no count can be
    said (`shadowswap.gate.needed`)."""
    n = m.bound.n
    missing = max(0, min_n - n)

    def clears(lower: float, upper: float) -> bool:
        return _holds(c.op, lower, upper, threshold)

    total: int | None = None
    if m.kind == "ratio" and m.events == 0 and threshold == 0 and c.op in ("<=", "=="):
        limit = c.ruled_out
        total = needed.zero_events(limit, confidence) if limit is not None and limit > 0 else n
    elif m.kind == "ratio" and m.events is not None:
        total = needed.ratio(m.events, n, clears, confidence)
    elif m.kind == "mean":
        total = needed.mean(m.samples, rng, clears, confidence)
    if total is None:
        return (missing, False) if missing else None
    return max(missing, total - n), True


def _needed_text(more: int, exact: bool, unit: str, seconds: float | None) -> str:
    what = f"about {more:,} more {unit}" if exact else f"at least {more:,} more {unit}"
    when = f" (about {needed.duration_text(seconds)} at the rate seen)" if seconds else ""
    return f"{what} needed{when}"


def _judge(
    c: Criterion, evidence: Evidence, criteria: Criteria, baseline: Evidence | None
) -> CriterionResult:
    # at least one sample whatever min_samples says: "0 errors in 0 reads" is no evidence
    min_n = max(1, c.min_samples if c.min_samples is not None else criteria.min_samples)
    threshold = _threshold(c, criteria, baseline, min_n)
    unit = unit_of(c.statistic)
    m: _Measured | str | None = None
    more: tuple[int, bool] | None = None
    if isinstance(threshold, str):
        passed, verdict, detail = None, Verdict.HOLD, threshold
        threshold = c.threshold
    else:
        m = measure(evidence, c.statistic, criteria.confidence, c.value_range)
        rng = c.value_range or STATISTICS[c.statistic].value_range
        if isinstance(m, str):
            passed, verdict, detail = None, Verdict.HOLD, f"insufficient evidence: {m}"
        elif m.kind != "value" and m.bound.n < min_n:
            passed, verdict = None, Verdict.HOLD
            detail = f"insufficient evidence: {m.bound.n} {unit}, at least {min_n} needed"
            more = _needed(c, m, threshold, criteria.confidence, min_n, rng)
        else:
            passed, verdict, detail = _decide(c, m, threshold, criteria.confidence)
            if passed is None:
                more = _needed(c, m, threshold, criteria.confidence, min_n, rng)
    measured = m if isinstance(m, _Measured) else None
    more_s: float | None = None
    if more is not None and measured is not None:
        n, window = measured.bound.n, evidence.window_s
        if n > 0 and window is not None and window > 0:
            more_s = more[0] * window / n
        if more[0] > 0:
            detail += f"; {_needed_text(more[0], more[1], unit, more_s)}"
    if passed is None and not c.required:
        verdict, detail = Verdict.PROMOTE, f"not measured (not required): {detail}"
    sampled = measured is not None and measured.kind != "value"
    return CriterionResult(
        name=c.name,
        statistic=c.statistic,
        op=c.op,
        value=measured.bound.value if measured is not None else None,
        threshold=threshold,
        passed=passed,
        verdict=verdict,
        detail=detail,
        samples=measured.bound.n if measured is not None and sampled else None,
        bounds=(measured.bound.lower, measured.bound.upper)
        if measured is not None and sampled
        else None,
        configured_threshold=c.threshold if threshold != c.threshold else None,
        required=c.required,
        needed=more[0] if more is not None else None,
        needed_s=more_s,
        unit=unit,
    )


def evaluate(
    evidence: Evidence, criteria: Criteria, baseline: Evidence | None = None
) -> GateResult:
    """The gate's verdict on ``evidence`` (see the module docstring).

    >>> from shadowswap.gate.criteria import default_criteria
    >>> evaluate(Evidence(), default_criteria()).verdict
    <Verdict.HOLD: 'HOLD'>
    """
    results = tuple(_judge(c, evidence, criteria, baseline) for c in criteria.criteria)
    reasons = tuple(f"{r.name}: {r.detail}" for r in results if r.verdict is not Verdict.PROMOTE)
    if any(r.verdict is Verdict.ROLLBACK for r in results):
        verdict = Verdict.ROLLBACK
    elif reasons:
        verdict = Verdict.HOLD
    else:
        verdict = Verdict.PROMOTE
    return GateResult(
        verdict=verdict,
        criteria=results,
        reasons=reasons,
        confidence=criteria.confidence,
        evidence=evidence.summary(),
        baseline=baseline.summary() if baseline is not None else None,
    )

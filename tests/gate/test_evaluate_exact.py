"""Verdicts at their boundaries, with exact values, bounds and sample counts.

`test_evaluate.py` checks the verdicts on realistic evidence; this file pins what mutation
testing (docs/gate.md, "How strong the gate's tests are") showed it let slip: which counts a
ratio is made of, strict and non-strict comparisons at equality, thresholds a baseline sets,
the ``samples`` and ``bounds`` of every result, and evidence with no data at all. It asserts
on verdict, passed, value, threshold, samples and bounds; of a detail, only that it holds the
numbers and hints it must (the last section), never its wording.
Expected bounds come from scipy.stats (Clopper–Pearson: beta quantiles) or from the
Maurer–Pontil formula computed by hand (`tests.gate.test_stats_exact.maurer_pontil`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import pytest
from scipy import stats as sps

from shadowswap.gate import (
    Criteria,
    Criterion,
    CriterionResult,
    Evidence,
    Verdict,
    default_criteria,
    evaluate,
)
from shadowswap.gate import stats as gate_stats
from shadowswap.gate.evaluate import STATISTICS, measure
from shadowswap.gate.model import Histogram
from tests.gate.test_stats_exact import maurer_pontil

INF = math.inf
# 90 comparisons agreeing fully and 10 at 0.8: mean 0.98; in [0, 1] the 95 % bounds are
# (0.8766773926393397, 1.0) (test_stats_exact: Maurer–Pontil by hand)
AGREEMENT = (1.0,) * 90 + (0.8,) * 10


def one(criterion: Criterion, evidence: Evidence, **kw: object) -> CriterionResult:
    """The result of a gate of this criterion alone."""
    criteria = Criteria((criterion,), **kw)  # type: ignore[arg-type]
    return evaluate(evidence, criteria).criteria[0]


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """95 % one-sided bounds from scipy's beta quantiles."""
    lower = sps.beta.ppf(0.05, k, n - k + 1) if k else 0.0
    upper = sps.beta.ppf(0.95, k + 1, n - k) if k < n else 1.0
    return float(lower), float(upper)


# -- no data: the normal state right after a deploy -------------------------------------------
EMPTY_HISTOGRAM = Histogram(0, 0.0, ((0.1, 0), (1.0, 0), (INF, 0)))
NOTHING_YET = Evidence(
    agreement_at_5=(),
    ndcg_at_10=EMPTY_HISTOGRAM,
    score_delta=(),
    latency_delta_s=Histogram(0, 0.0),
    shadow_latency_s=EMPTY_HISTOGRAM,
    compared=0,
    mismatches=0,
    foreign_hits=0,
    stale_hits=0,
    shadow_errors=0,
    drops={"timeout": 0, "queue_full": 0},
    reads=0,
    read_errors=0,
    dual_write_errors=0,
    dual_write_skipped=0,
    breaker_open=False,
    outbox_size=0,
    outbox_dropped=0,
    reconcile_drift=0,
    reconcile_age_s=60.0,
)


@pytest.mark.parametrize("min_samples", [100, 2, 1, 0])
def test_no_samples_at_all_hold_without_an_exception(min_samples: int) -> None:
    criteria = default_criteria()
    criteria = Criteria(criteria.criteria, criteria.confidence, min_samples)
    result = evaluate(NOTHING_YET, criteria)
    assert result.verdict is Verdict.HOLD
    for c in result.criteria:
        kind = STATISTICS[c.statistic].kind
        if kind == "value":  # the state is known and good
            assert c.passed is True and (c.samples, c.bounds) == (None, None), c.name
            continue
        # even "0 errors in 0 reads" (a rate that must be 0) is no evidence, whatever
        # min_samples says
        assert c.passed is None and c.verdict is Verdict.HOLD, c.name
        assert c.samples == 0 and c.value is not None and math.isnan(c.value), c.name
        lo, hi = STATISTICS[c.statistic].value_range
        assert c.bounds == (lo, hi), c.name


def test_an_empty_baseline_cannot_calibrate() -> None:
    result = evaluate(NOTHING_YET, default_criteria(), baseline=NOTHING_YET)
    assert result.verdict is Verdict.HOLD
    calibrated = [c for c in default_criteria().criteria if c.calibrate]
    by_name = {c.name: c for c in result.criteria}
    for c in calibrated:
        r = by_name[c.name]
        assert r.passed is None and r.threshold == c.threshold and r.configured_threshold is None
        assert (r.value, r.samples, r.bounds) == (None, None, None)


def test_no_samples_and_a_criterion_without_a_minimum_still_hold() -> None:
    # "0 errors in 0 attempts" against a rate that must be 0, and a mean against a threshold
    # any value clears: with no sample at all, neither is evidence
    errors = Criterion("e", "shadow_error_ratio", "<=", 0.0, min_samples=0)
    r = one(errors, Evidence(compared=0, shadow_errors=0))
    assert (r.passed, r.verdict, r.samples) == (None, Verdict.HOLD, 0)
    agreement = Criterion("a", "agreement_at_5_mean", ">=", 0.0, min_samples=0)
    r = one(agreement, Evidence(agreement_at_5=()))
    assert (r.passed, r.verdict, r.samples) == (None, Verdict.HOLD, 0)
    # one sample is some evidence: a threshold every value clears is cleared
    assert one(agreement, Evidence(agreement_at_5=(0.5,))).passed is True


# -- which counts each ratio is made of --------------------------------------------------------
COUNTS = Evidence(
    compared=200,
    mismatches=7,
    foreign_hits=3,
    shadow_errors=5,
    drops={"timeout": 4, "queue_full": 6},
    reads=1000,
    read_errors=9,
)


@pytest.mark.parametrize(
    ("statistic", "events", "trials"),
    [
        ("mismatch_ratio", 7, 200),
        ("foreign_hit_ratio", 3, 200),
        # shadow attempts: compared + errors + timeouts = 200 + 5 + 4
        ("shadow_error_ratio", 5, 209),
        # every drop (timeout 4 + queue_full 6) per read that reached the shadow's queue or
        # was turned away from it: attempts 209 + queue_full 6
        ("drop_ratio", 10, 215),
        ("read_error_ratio", 9, 1000),
    ],
)
def test_each_ratio_counts_its_events_per_its_trials(
    statistic: str, events: int, trials: int
) -> None:
    r = one(Criterion("r", statistic, "<=", 0.5), COUNTS)
    assert r.value == events / trials and r.samples == trials
    lower, upper = clopper_pearson(events, trials)
    assert r.bounds == (pytest.approx(lower, abs=1e-12), pytest.approx(upper, abs=1e-12))


def test_reads_turned_away_by_a_full_queue_count_as_trials() -> None:
    # 100 compared, no error, no timeout; 10 turned away (queue full): 10 drops in 110 tries,
    # not 10 in 100. scipy: beta.ppf(0.05, 10, 101), beta.ppf(0.95, 11, 100)
    ev = Evidence(compared=100, shadow_errors=0, drops={"timeout": 0, "queue_full": 10})
    r = one(Criterion("drops", "drop_ratio", "<=", 0.05), ev)
    assert r.value == 10 / 110 and r.samples == 110
    assert r.bounds == (
        pytest.approx(0.05015278709811649, abs=1e-12),
        pytest.approx(0.14932241552635156, abs=1e-12),
    )
    # without the attempts (no compared or error count) the rate is unknown, not 10 in 10
    unknown = one(Criterion("drops", "drop_ratio", "<=", 0.05), Evidence(drops=ev.drops))
    assert unknown.passed is None and (unknown.value, unknown.samples) == (None, None)


def test_more_events_than_trials_count_as_every_trial() -> None:
    # counters scraped a moment apart: 120 mismatches reported for 100 comparisons
    r = one(Criterion("m", "mismatch_ratio", "<=", 0.1), Evidence(compared=100, mismatches=120))
    assert r.value == 1.0 and r.samples == 100 and r.passed is False
    assert r.bounds == (pytest.approx(0.05 ** (1 / 100), abs=1e-12), 1.0)


# -- samples and bounds of every kind of result ------------------------------------------------
def test_a_mean_reports_its_samples_and_both_bounds() -> None:
    r = one(Criterion("a", "agreement_at_5_mean", ">=", 0.85), Evidence(agreement_at_5=AGREEMENT))
    assert r.passed is True and r.verdict is Verdict.PROMOTE
    assert r.value == pytest.approx(0.98, abs=1e-15) and r.samples == 100
    assert r.bounds == (pytest.approx(0.8766773926393397, abs=1e-12), 1.0)
    assert r.bound == r.bounds[0]  # type: ignore[index]
    assert r.threshold == 0.85 and r.configured_threshold is None and r.required is True


@pytest.mark.parametrize(
    ("statistic", "field", "value_range"),
    [
        ("agreement_at_5_mean", "agreement_at_5", (0.0, 1.0)),
        ("ndcg_at_10_mean", "ndcg_at_10", (0.0, 1.0)),
        ("score_delta_mean", "score_delta", (0.0, 2.0)),
        ("latency_delta_mean_s", "latency_delta_s", (0.0, 0.8)),
    ],
)
def test_each_mean_reads_its_own_samples_in_its_own_range(
    statistic: str, field: str, value_range: tuple[float, float]
) -> None:
    samples = tuple(0.1 * (i % 5) for i in range(120))  # 0 .. 0.4, mean 0.2
    decoy = (0.9,) * 120
    fields = {f: decoy for f in ("agreement_at_5", "ndcg_at_10", "score_delta", "latency_delta_s")}
    ev = Evidence(**{**fields, field: samples})  # type: ignore[arg-type]
    r = one(Criterion("m", statistic, "<=", 0.5), ev)
    assert r.samples == 120 and r.value == pytest.approx(0.2, abs=1e-12)
    assert r.bounds == pytest.approx(maurer_pontil(samples, *value_range), abs=1e-12)


def test_the_p95_reports_its_order_statistics() -> None:
    # 100 latencies 0.001 .. 0.100 s: the p95 is the 95th; 95 % bounds: the 91st and 99th
    # (ranks from scipy.stats.binom, test_stats_exact)
    latencies = tuple(k / 1000 for k in range(100, 0, -1))
    r = one(
        Criterion("p95", "shadow_latency_p95_s", "<=", 0.099), Evidence(shadow_latency_s=latencies)
    )
    assert (r.value, r.samples, r.bounds) == (0.095, 100, (0.091, 0.099))
    assert r.passed is True  # the upper bound 0.099 <= 0.099


def test_the_p95_from_a_histogram_is_judged_on_the_upper_edge() -> None:
    # 100 latencies: 95 at <= 0.5 s, 99 at <= 1.0 s, all at <= 2.0 s. The 99th (the rank
    # bounding the p95 from above at 95 %) is only known to be <= 1.0: a p95 <= 0.9 s cannot
    # be vouched for (its bucket's lower edge, 0.5, would pass it)
    h = Histogram(100, 30.0, ((0.5, 95), (1.0, 99), (2.0, 100), (INF, 100)))
    r = one(Criterion("p95", "shadow_latency_p95_s", "<=", 0.9), Evidence(shadow_latency_s=h))
    assert (r.value, r.samples, r.bounds) == (0.5, 100, (0.0, 1.0))
    assert r.passed is None and r.verdict is Verdict.HOLD
    at_the_edge = Criterion("p95", "shadow_latency_p95_s", "<=", 1.0)
    assert one(at_the_edge, Evidence(shadow_latency_s=h)).passed is True


def test_a_state_value_has_no_samples_and_no_bounds() -> None:
    r = one(Criterion("o", "outbox_size", "<=", 0), Evidence(outbox_size=0))
    assert (r.passed, r.value, r.samples, r.bounds) == (True, 0.0, None, None)
    r = one(Criterion("b", "breaker_open", "==", 0), Evidence(breaker_open=True))
    assert (r.passed, r.value, r.samples, r.bounds) == (False, 1.0, None, None)


def test_an_unknown_statistic_has_no_value_samples_or_bounds() -> None:
    r = one(Criterion("a", "agreement_at_5_mean", ">=", 0.9), Evidence())
    assert (r.passed, r.verdict, r.value, r.samples, r.bounds) == (
        None,
        Verdict.HOLD,
        None,
        None,
        None,
    )


def test_too_few_samples_still_report_what_was_measured() -> None:
    r = one(
        Criterion("a", "agreement_at_5_mean", ">=", 0.5), Evidence(agreement_at_5=AGREEMENT[:60])
    )
    assert r.passed is None and r.verdict is Verdict.HOLD
    assert r.samples == 60 and r.value == 1.0
    assert r.bounds == pytest.approx(maurer_pontil(AGREEMENT[:60], 0.0, 1.0), abs=1e-12)


# -- how many samples are enough ---------------------------------------------------------------
def test_exactly_min_samples_is_enough() -> None:
    c = Criterion("a", "agreement_at_5_mean", ">=", 0.5)
    at = one(c, Evidence(agreement_at_5=(1.0,) * 100), min_samples=100)
    below = one(c, Evidence(agreement_at_5=(1.0,) * 99), min_samples=100)
    assert (at.passed, below.passed) == (True, None)


def test_a_criterion_s_own_min_samples_overrides_the_default() -> None:
    ev = Evidence(agreement_at_5=(1.0,) * 30)
    assert one(Criterion("a", "agreement_at_5_mean", ">=", 0.5), ev).passed is None
    own = Criterion("a", "agreement_at_5_mean", ">=", 0.5, min_samples=30)
    assert one(own, ev).passed is True
    stricter = Criterion("a", "agreement_at_5_mean", ">=", 0.5, min_samples=200)
    assert one(stricter, Evidence(agreement_at_5=(1.0,) * 150)).passed is None


# -- comparisons at their boundaries -----------------------------------------------------------
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


def expected_outcome(op: str, lower: float, upper: float, threshold: float) -> bool | None:
    """What the gate must say when the true value is somewhere in [lower, upper]: passed when
    every value there satisfies ``op threshold``, failed when none does, else inconclusive.
    The accepted set of each op is an interval, so the end points decide "every"; for "none",
    the end points and the threshold itself when it lies between them."""
    sat = OPS[op]
    if sat(lower, threshold) and sat(upper, threshold):
        return True
    candidates = [lower, upper] + ([threshold] if lower <= threshold <= upper else [])
    return None if any(sat(x, threshold) for x in candidates) else False


# the mean of AGREEMENT in a range [0, 2] is bounded by about (0.79, 1.17): both ends inside
WIDE = gate_stats.mean_bound(AGREEMENT, (0.0, 2.0), 0.95)
L, U = WIDE.lower, WIDE.upper
POSITIONS = {
    "below": L - 0.1,
    "at the lower bound": L,
    "between": (L + U) / 2,
    "at the upper bound": U,
    "above": U + 0.1,
}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("where", list(POSITIONS))
def test_a_mean_at_each_side_of_its_threshold(op: str, where: str) -> None:
    threshold = POSITIONS[where]
    c = Criterion("m", "agreement_at_5_mean", op, threshold, value_range=(0.0, 2.0))  # type: ignore[arg-type]
    r = one(c, Evidence(agreement_at_5=AGREEMENT))
    assert r.bounds == (L, U) and r.threshold == threshold
    assert r.passed is expected_outcome(op, L, U, threshold), (op, where)
    assert r.verdict is (Verdict.PROMOTE if r.passed else Verdict.HOLD)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("where", list(POSITIONS))
def test_a_clear_failure_rolls_back_only_beyond_the_rollback_threshold(op: str, where: str) -> None:
    # a threshold the bounds miss on the side that fails, and a rollback threshold at each
    # position: ROLLBACK exactly when the bounds miss that one too
    threshold = U + 0.5 if op in (">", ">=", "==") else L - 0.5
    rollback = POSITIONS[where]
    c = Criterion(
        "m",
        "agreement_at_5_mean",
        op,  # type: ignore[arg-type]
        threshold,
        rollback_threshold=rollback,
        value_range=(0.0, 2.0),
    )
    r = one(c, Evidence(agreement_at_5=AGREEMENT))
    assert r.passed is False
    beyond = expected_outcome(op, L, U, rollback) is False
    assert r.verdict is (Verdict.ROLLBACK if beyond else Verdict.HOLD), (op, where)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("value", [2, 3, 4])
def test_a_state_value_at_each_side_of_its_threshold(op: str, value: int) -> None:
    r = one(Criterion("o", "outbox_size", op, 3), Evidence(outbox_size=value))  # type: ignore[arg-type]
    assert r.passed is OPS[op](value, 3), (op, value)  # a known value is never inconclusive


def test_a_rate_that_must_be_zero_with_none_seen() -> None:
    ev = Evidence(compared=300, shadow_errors=0)  # 0 errors in 300 attempts
    for op in ("<=", "=="):
        r = one(Criterion("e", "shadow_error_ratio", op, 0.0), ev)
        assert (r.passed, r.verdict, r.value, r.samples) == (True, Verdict.PROMOTE, 0.0, 300), op
    # "< 0" cannot hold for a rate: failed, not passed
    assert one(Criterion("e", "shadow_error_ratio", "<", 0.0), ev).passed is False
    # one error fails "== 0" as it fails "<= 0"
    ev1 = Evidence(compared=299, shadow_errors=1)
    assert one(Criterion("e", "shadow_error_ratio", "==", 0.0), ev1).passed is False


def test_none_seen_promotes_only_once_the_bound_is_at_the_rollback_threshold() -> None:
    # 0 in 300: the rate is below 1 − δ^(1/300) ≈ 0.0099. A rollback threshold exactly there
    # is ruled out (promote); one a hair lower is not yet (hold)
    ev = Evidence(compared=300, shadow_errors=0)
    upper = gate_stats.clopper_pearson(0, 300, 0.95)[1]
    assert upper == pytest.approx(0.00993608194445772, abs=1e-15)
    at = Criterion("e", "shadow_error_ratio", "<=", 0.0, rollback_threshold=upper)
    assert one(at, ev).passed is True
    below = Criterion(
        "e", "shadow_error_ratio", "<=", 0.0, rollback_threshold=math.nextafter(upper, 0.0)
    )
    r = one(below, ev)
    assert (r.passed, r.verdict) == (None, Verdict.HOLD)


# -- thresholds a baseline sets ----------------------------------------------------------------
BASELINE = Evidence(agreement_at_5=AGREEMENT, compared=150, mismatches=2)
MP_LOWER = 0.8766773926393397  # of AGREEMENT in [0, 1]
CP_UPPER = 0.041374969893577085  # 2 in 150: scipy beta.ppf(0.95, 3, 148)


@pytest.mark.parametrize("op", [">=", ">"])
def test_a_baseline_sets_a_lower_limit_at_its_lower_bound_minus_the_margin(op: str) -> None:
    c = Criterion("a", "agreement_at_5_mean", op, 0.9, calibrate=True, margin=0.02)  # type: ignore[arg-type]
    r = evaluate(Evidence(agreement_at_5=AGREEMENT), Criteria((c,)), BASELINE).criteria[0]
    assert r.threshold == pytest.approx(MP_LOWER - 0.02, abs=1e-12)
    assert r.configured_threshold == 0.9
    # the same evidence as the baseline: its lower bound is above its own bound − margin
    assert r.passed is True


@pytest.mark.parametrize("op", ["<=", "<"])
def test_a_baseline_sets_an_upper_limit_at_its_upper_bound_plus_the_margin(op: str) -> None:
    c = Criterion("m", "mismatch_ratio", op, 0.01, calibrate=True, margin=0.01)  # type: ignore[arg-type]
    r = evaluate(Evidence(compared=150, mismatches=2), Criteria((c,)), BASELINE).criteria[0]
    assert r.threshold == pytest.approx(CP_UPPER + 0.01, abs=1e-12)
    assert r.configured_threshold == 0.01
    assert r.bounds == (
        pytest.approx(0.002374192077553908, abs=1e-12),
        pytest.approx(CP_UPPER, abs=1e-12),
    )
    assert r.passed is True  # upper 0.0414 vs 0.0514


def test_a_calibrated_threshold_stays_in_the_statistic_s_range() -> None:
    down = Criterion("a", "agreement_at_5_mean", ">=", 0.9, calibrate=True, margin=0.95)
    assert evaluate(Evidence(), Criteria((down,)), BASELINE).criteria[0].threshold == 0.0
    up = Criterion("m", "mismatch_ratio", "<=", 0.1, calibrate=True, margin=0.99)
    assert evaluate(Evidence(), Criteria((up,)), BASELINE).criteria[0].threshold == 1.0
    # the criterion's own range, when it has one: [0.5, 1]. The baseline's bound in that range
    # is 0.98 − (0.016379 + 7·0.5·ln40/297) = 0.92015; − 0.5 is below 0.5
    own = Criterion(
        "a", "agreement_at_5_mean", ">=", 0.9, calibrate=True, margin=0.5, value_range=(0.5, 1.0)
    )
    assert evaluate(Evidence(), Criteria((own,)), BASELINE).criteria[0].threshold == 0.5


def test_a_baseline_with_exactly_min_samples_can_calibrate() -> None:
    c = Criterion("a", "agreement_at_5_mean", ">=", 0.9, calibrate=True, margin=0.02)
    ev = Evidence(agreement_at_5=AGREEMENT)
    at = evaluate(ev, Criteria((c,), min_samples=100), BASELINE).criteria[0]
    assert at.configured_threshold == 0.9 and at.passed is True
    short = Evidence(agreement_at_5=AGREEMENT[:99])
    below = evaluate(ev, Criteria((c,), min_samples=100), short).criteria[0]
    assert below.passed is None and below.threshold == 0.9 and below.configured_threshold is None


def test_a_baseline_state_value_sets_the_threshold_without_samples() -> None:
    c = Criterion("o", "outbox_size", "<=", 0, calibrate=True, margin=2, value_range=(0, 100))
    baseline = Evidence(outbox_size=3)
    at = evaluate(Evidence(outbox_size=5), Criteria((c,)), baseline).criteria[0]
    assert (at.threshold, at.configured_threshold, at.passed) == (5.0, 0.0, True)
    over = evaluate(Evidence(outbox_size=6), Criteria((c,)), baseline).criteria[0]
    assert over.passed is False


def test_without_a_baseline_a_calibrated_criterion_keeps_its_threshold() -> None:
    c = Criterion("a", "agreement_at_5_mean", ">=", 0.9, calibrate=True, margin=0.02)
    r = one(c, Evidence(agreement_at_5=AGREEMENT))
    # the fixed 0.9 is inside the bounds (0.877, 1): inconclusive, where the calibrated
    # threshold 0.857 passed it
    assert (r.threshold, r.configured_threshold, r.passed) == (0.9, None, None)


# -- criteria that are not required, and the gate's verdict ------------------------------------
def test_a_criterion_not_required_still_votes_when_it_fails() -> None:
    c = Criterion("o", "outbox_size", "<=", 0, required=False)
    r = one(c, Evidence(outbox_size=2))
    assert (r.passed, r.verdict, r.required) == (False, Verdict.HOLD, False)
    unknown = one(c, Evidence())
    assert (unknown.passed, unknown.verdict) == (None, Verdict.PROMOTE)
    thin = one(
        Criterion("a", "agreement_at_5_mean", ">=", 0.5, required=False),
        Evidence(agreement_at_5=(1.0,)),
    )
    assert (thin.passed, thin.verdict, thin.samples) == (None, Verdict.PROMOTE, 1)


def test_the_gate_verdict_rollback_beats_hold_beats_promote() -> None:
    criteria = Criteria(
        (
            Criterion("ok", "outbox_size", "<=", 0),
            Criterion("hold", "reconcile_drift", "==", 0),
            Criterion("back", "breaker_open", "==", 0, on_fail=Verdict.ROLLBACK),
        ),
        confidence=0.99,
    )
    good = Evidence(outbox_size=0, reconcile_drift=0, breaker_open=False)
    result = evaluate(good, criteria)
    assert (result.verdict, result.reasons, result.confidence) == (Verdict.PROMOTE, (), 0.99)
    held = evaluate(Evidence(outbox_size=0, reconcile_drift=3, breaker_open=False), criteria)
    assert held.verdict is Verdict.HOLD and [r.split(":")[0] for r in held.reasons] == ["hold"]
    bad = Evidence(outbox_size=0, reconcile_drift=3, breaker_open=True)
    result = evaluate(bad, criteria, baseline=good)
    assert result.verdict is Verdict.ROLLBACK
    assert [r.split(":")[0] for r in result.reasons] == ["hold", "back"]
    assert result.evidence == bad.summary() and result.baseline == good.summary()
    assert evaluate(bad, criteria).baseline is None


def test_measure_names_the_range_it_bounds_in() -> None:
    ev = Evidence(agreement_at_5=AGREEMENT)
    default = measure(ev, "agreement_at_5_mean", 0.95, None)
    wide = measure(ev, "agreement_at_5_mean", 0.95, (0.0, 2.0))
    assert not isinstance(default, str) and not isinstance(wide, str)
    assert (default.bound.lower, default.bound.upper) == (pytest.approx(MP_LOWER, abs=1e-12), 1.0)
    assert (wide.bound.lower, wide.bound.upper) == (L, U)
    assert isinstance(measure(Evidence(), "agreement_at_5_mean", 0.95, None), str)


def test_every_result_names_its_statistic_and_op() -> None:
    r = one(
        Criterion("p", "shadow_latency_p95_s", "<", 2.0), Evidence(shadow_latency_s=(0.1,) * 100)
    )
    assert (r.name, r.statistic, r.op) == ("p", "shadow_latency_p95_s", "<")


def test_a_calibrated_threshold_is_bounded_in_the_criterion_s_range() -> None:
    # in [0, 2] the baseline's lower bound is L ≈ 0.79, not the 0.8767 of [0, 1]
    c = Criterion(
        "a", "agreement_at_5_mean", ">=", 0.9, calibrate=True, margin=0.02, value_range=(0.0, 2.0)
    )
    r = evaluate(Evidence(agreement_at_5=AGREEMENT), Criteria((c,)), BASELINE).criteria[0]
    assert r.threshold == pytest.approx(L - 0.02, abs=1e-12)
    assert r.bounds == (L, U)


# -- what a detail says (numbers and hints only: the wording may change) -----------------------
def test_an_unknown_statistic_says_where_to_get_it() -> None:
    def detail(statistic: str) -> str:
        return one(Criterion("c", statistic, "<=", 0.0), Evidence()).detail

    # any statistic but the reconcile's: the log alone has it (issue 15), or a metrics source
    for statistic in ("foreign_hit_ratio", "agreement_at_5_mean", "shadow_latency_p95_s",
                      "dual_write_errors", "drop_ratio", "breaker_open"):  # fmt: skip
        said = detail(statistic)
        assert "RETRIEVAL_OBSERVATIONS_DIR" in said and "--observations" in said, statistic
        assert "--metrics-url" in said and "--prometheus" in said, statistic
        assert "None" not in said, statistic
    assert "shadowswap reconcile" in detail("reconcile_drift")
    assert "--prometheus" not in detail("reconcile_drift")


def test_the_detail_shows_the_bounds_of_sampled_statistics_only() -> None:
    mean = one(
        Criterion("a", "agreement_at_5_mean", ">=", 0.85), Evidence(agreement_at_5=AGREEMENT)
    )
    assert "0.98" in mean.detail and "0.8767..1" in mean.detail
    value = one(Criterion("o", "outbox_size", "<=", 0), Evidence(outbox_size=2))
    assert "2" in value.detail and ".." not in value.detail
    for detail in (mean.detail, value.detail):
        assert "None" not in detail and "XX" not in detail


def test_the_detail_keeps_the_estimate_beside_a_note_and_a_rollback() -> None:
    clipped = (*AGREEMENT[:-1], 1.5)  # one sample outside [0, 1]: clipped to 1, noted
    r = one(Criterion("a", "agreement_at_5_mean", ">=", 0.85), Evidence(agreement_at_5=clipped))
    note = gate_stats.mean_bound(clipped, (0.0, 1.0), 0.95).note
    assert note and note in r.detail and "0.982" in r.detail
    # 200 samples of 0.61: bounds 0.61 ± 7·ln40/(3·199) = (0.5668, 0.6533), all below 0.7
    c = Criterion("a", "agreement_at_5_mean", ">=", 0.9, rollback_threshold=0.7)
    r = one(c, Evidence(agreement_at_5=(0.61,) * 200))
    assert r.verdict is Verdict.ROLLBACK and "0.61" in r.detail and "0.7" in r.detail


def test_the_detail_of_none_seen_says_in_how_many() -> None:
    ev = Evidence(compared=300, shadow_errors=0)
    held = one(Criterion("e", "shadow_error_ratio", "<=", 0.0, rollback_threshold=0.005), ev)
    assert held.passed is None and "300" in held.detail and "0.5 %" in held.detail
    # 0 in n is below 0.5 % from n = 598 (ln 0.05 / ln 0.995 = 597.6): 298 more
    assert held.needed == 298 and "298 more shadow reads" in held.detail
    passed = one(Criterion("e", "shadow_error_ratio", "<=", 0.0), ev)
    assert "300" in passed.detail and "0.994 %" in passed.detail

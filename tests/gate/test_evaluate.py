"""Verdicts: PROMOTE only on confident passes; unknown or thin evidence holds; clear failures
roll back."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
import pytest

from shadowswap.gate import Criteria, Criterion, Evidence, Verdict, default_criteria, evaluate
from tests.gate.helpers import healthy


def by_name(result: object) -> dict[str, object]:
    return {c.name: c for c in result.criteria}  # type: ignore[attr-defined]


def test_healthy_evidence_promotes_with_every_criterion_passed() -> None:
    result = evaluate(healthy(), default_criteria())
    assert result.verdict is Verdict.PROMOTE and result.exit_code == 0
    assert all(c.passed is True for c in result.criteria) and result.reasons == ()


def test_no_evidence_holds_as_insufficient_never_promotes() -> None:
    result = evaluate(Evidence(), default_criteria())
    assert result.verdict is Verdict.HOLD and result.exit_code == 1
    assert all(c.passed is None for c in result.criteria)
    assert all("insufficient evidence" in r for r in result.reasons)


@pytest.mark.parametrize(
    "name",
    [
        f.name
        for f in fields(Evidence)
        # the default criteria do not use the outbox's age (its size must be 0)
        if f.name not in ("sources", "notes", "window_s", "outbox_oldest_age_s")
    ],
)
def test_any_unknown_field_is_not_a_promotion(name: str) -> None:
    result = evaluate(replace(healthy(), **{name: None}), default_criteria())
    assert result.verdict is Verdict.HOLD, name


def test_too_few_samples_hold() -> None:
    result = evaluate(healthy(n=60), default_criteria())
    assert result.verdict is Verdict.HOLD
    assert (
        "60 comparisons, at least 100 needed; about 40 more comparisons needed"
        in by_name(result)["agreement_at_5"].detail
    )  # type: ignore[attr-defined]


def test_a_raw_mean_above_the_threshold_is_not_enough() -> None:
    # 110 samples of mean 0.918 clear 0.9 as a raw mean, not as a 95 % lower bound
    agreement = tuple([1.0] * 80 + [0.7] * 30)
    ev = healthy(n=110, agreement_at_5=agreement)
    result = by_name(evaluate(ev, default_criteria()))["agreement_at_5"]
    assert result.value > 0.9 and result.passed is None and result.bound < 0.9  # type: ignore[attr-defined]


def test_a_single_shadow_error_fails_and_a_clear_error_rate_rolls_back() -> None:
    one = evaluate(healthy(shadow_errors=1), default_criteria())
    assert one.verdict is Verdict.HOLD and by_name(one)["shadow_errors"].passed is False  # type: ignore[attr-defined]
    many = evaluate(
        healthy(shadow_errors=90), default_criteria()
    )  # 3 % of 3,000: clearly above 1 %
    assert many.verdict is Verdict.ROLLBACK


def test_foreign_hits_roll_back() -> None:
    result = evaluate(healthy(foreign_hits=20), default_criteria())
    assert result.verdict is Verdict.ROLLBACK
    assert by_name(result)["foreign_hits"].verdict is Verdict.ROLLBACK  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "criterion"),
    [
        ({"outbox_size": 3}, "outbox_drained"),
        ({"breaker_open": True}, "breaker_closed"),
        ({"reconcile_drift": 2}, "reconcile_drift"),
        ({"reconcile_age_s": 3 * 86400.0}, "reconcile_fresh"),
        ({"dual_write_errors": 1}, "dual_write_errors"),
        ({"outbox_dropped": 1}, "outbox_dropped"),
        ({"drops": {"timeout": 100, "queue_full": 100}}, "drops"),
        ({"latency_delta_s": (0.15,) * 500}, "latency_delta"),
    ],
)
def test_state_and_speed_failures_hold(change: dict[str, object], criterion: str) -> None:
    result = evaluate(healthy(**change), default_criteria())
    assert result.verdict is Verdict.HOLD
    assert by_name(result)[criterion].passed is False  # type: ignore[attr-defined]


def test_agreement_far_below_rolls_back() -> None:
    ev = healthy(agreement_at_5=(0.4,) * 300 + (1.0,) * 200)
    assert evaluate(ev, default_criteria()).verdict is Verdict.ROLLBACK


def test_a_criterion_not_required_does_not_vote_when_unknown() -> None:
    c = Criteria((Criterion("drift", "reconcile_drift", "==", 0, required=False),))
    result = evaluate(Evidence(), c)
    assert result.verdict is Verdict.PROMOTE
    assert result.criteria[0].passed is None and "not measured" in result.criteria[0].detail
    assert evaluate(Evidence(reconcile_drift=4), c).verdict is Verdict.HOLD


def test_a_baseline_sets_the_threshold_from_its_bound_minus_the_margin() -> None:
    # an approximate index: mean agreement around 0.85, too low for the fixed 0.9
    noisy = healthy(n=2000, miss=0.75, seed=2)
    criteria = Criteria(
        (Criterion("agreement", "agreement_at_5_mean", ">=", 0.9, calibrate=True, margin=0.02),)
    )
    assert evaluate(noisy, criteria).verdict is Verdict.HOLD
    baseline = healthy(n=2000, miss=0.75, seed=3)
    result = evaluate(noisy, criteria, baseline)
    c = result.criteria[0]
    assert result.verdict is Verdict.PROMOTE and c.configured_threshold == 0.9
    assert 0.8 < c.threshold < 0.85
    worse = healthy(n=2000, miss=0.95, seed=4)  # clearly below what is normal
    assert evaluate(worse, criteria, baseline).criteria[0].passed is False


def test_a_thin_baseline_is_insufficient_evidence() -> None:
    criteria = Criteria((Criterion("agreement", "agreement_at_5_mean", ">=", 0.9, calibrate=True),))
    result = evaluate(healthy(), criteria, baseline=healthy(n=20))
    assert result.verdict is Verdict.HOLD and "baseline has 20 samples" in result.reasons[0]


def test_as_dict_has_the_contract_keys() -> None:
    doc = evaluate(healthy(), default_criteria()).as_dict()
    assert doc["verdict"] == "PROMOTE"
    for c in doc["criteria"]:
        assert {"name", "value", "threshold", "passed"} <= set(c)
    unknown = evaluate(Evidence(), default_criteria()).as_dict()
    assert all(c["value"] is None or isinstance(c["value"], float) for c in unknown["criteria"])


def test_hold_says_how_many_trials_a_zero_rate_still_needs_and_how_long() -> None:
    """Issue 15, item 4: not "260 samples where 100 are needed" but the trials still missing
    to rule out the rate: 0 in n is below 1 % at 95 % from n = 299 (ln 0.05 / ln 0.99 =
    298.07), so 39 more stale-free comparisons; at 260 comparisons in 1,000 s that is 150 s.
    Foreign hits must be ruled out at 0.1 %: n = 2,995 (ln 0.05 / ln 0.999 = 2994.2)."""
    ev = healthy(
        agreement_at_5=(1.0,) * 260, ndcg_at_10=(1.0,) * 260, compared=260, mismatches=0,
        foreign_hits=0, stale_hits=0, window_s=1000.0,
    )  # fmt: skip
    result = evaluate(ev, default_criteria())
    assert result.verdict is Verdict.HOLD
    stale = by_name(result)["stale_hits"]
    assert stale.passed is None and stale.needed == 39 and stale.unit == "comparisons"
    assert stale.needed_s == pytest.approx(150.0)
    assert "not yet below 1 % (the rate it must rule out)" in stale.detail
    assert "about 39 more comparisons needed (about 2 min at the rate seen)" in stale.detail
    doc = stale.as_dict()
    assert doc["needed"] == 39 and doc["needed_s"] == 150.0 and doc["unit"] == "comparisons"
    foreign = by_name(result)["foreign_hits"]
    assert foreign.needed == 2995 - 260 and "not yet below 0.1 %" in foreign.detail


def test_a_foreign_hit_never_promotes_and_rolls_back_once_its_rate_is_bounded_above() -> None:
    """One foreign hit in 500: HOLD (failed), not ROLLBACK (the lower bound, 0.01 %, is not
    above 0.05 %); 10 in 2,000: the lower bound (0.27 %) is, so ROLLBACK."""
    few = evaluate(healthy(foreign_hits=1), default_criteria())
    assert few.verdict is Verdict.HOLD and by_name(few)["foreign_hits"].passed is False
    n = 2000
    many = evaluate(
        healthy(agreement_at_5=(1.0,) * n, ndcg_at_10=(1.0,) * n, compared=n, foreign_hits=10),
        default_criteria(),
    )
    assert many.verdict is Verdict.ROLLBACK
    assert by_name(many)["foreign_hits"].verdict is Verdict.ROLLBACK


def test_a_mean_between_its_bounds_says_how_many_more_samples() -> None:
    """Mean 0.93 with variance: the bound straddles 0.9 at n=100; the estimate is the n at
    which the Bernstein lower bound at that mean and variance clears it."""
    samples = tuple([1.0] * 93 + [0.0] * 7)
    result = evaluate(healthy(agreement_at_5=samples), default_criteria())
    agreement = by_name(result)["agreement_at_5"]
    assert agreement.passed is None and agreement.needed is not None and agreement.needed > 0
    from shadowswap.gate import stats

    n = 100 + agreement.needed
    mean, var = 0.93, float(np.var(samples, ddof=1))
    assert stats.empirical_bernstein(n, mean, var, 1.0, 0.95)[0] >= 0.9
    assert stats.empirical_bernstein(n - 1, mean, var, 1.0, 0.95)[0] < 0.9


def test_each_statistic_names_what_one_sample_is() -> None:
    from shadowswap.gate.evaluate import unit_of

    assert unit_of("shadow_error_ratio") == unit_of("drop_ratio") == "shadow reads"
    assert unit_of("read_error_ratio") == "reads"
    for statistic in ("mismatch_ratio", "foreign_hit_ratio", "agreement_at_5_mean",
                      "shadow_latency_p95_s"):  # fmt: skip
        assert unit_of(statistic) == "comparisons", statistic
    assert unit_of("outbox_size") == unit_of("breaker_open") == ""


def test_a_rate_between_its_bounds_says_how_many_more_trials_at_the_rate_seen() -> None:
    """12 mismatches in 100 against <= 15 %: the Clopper-Pearson upper bound straddles; the
    count is the smallest n whose bound at 12 % clears 15 %, and n - 1 does not."""
    from shadowswap.gate import stats

    ev = healthy(mismatches=12, compared=100, window_s=50.0)
    c = Criterion("m", "mismatch_ratio", "<=", 0.15)
    r = evaluate(ev, Criteria((c,), 0.95, 100)).criteria[0]
    assert r.passed is None and r.needed is not None and r.needed > 0
    n = 100 + r.needed
    assert stats.clopper_pearson(round(0.12 * n), n, 0.95)[1] <= 0.15
    assert stats.clopper_pearson(round(0.12 * (n - 1)), n - 1, 0.95)[1] > 0.15
    assert r.needed_s == pytest.approx(r.needed * 50.0 / 100)
    assert f"about {r.needed:,} more comparisons needed" in r.detail
    # a rate already beyond the threshold: more samples cannot make it pass
    worse = evaluate(healthy(mismatches=16, compared=100), Criteria((c,), 0.95, 100))
    assert worse.criteria[0].needed is None


def test_too_few_samples_from_a_histogram_say_at_least_how_many() -> None:
    from shadowswap.gate import Histogram

    ev = Evidence(agreement_at_5=Histogram(40, 40.0, ((1.0, 40), (math.inf, 40))))
    c = Criterion("a", "agreement_at_5_mean", ">=", 0.9)
    r = evaluate(ev, Criteria((c,), 0.95, 100)).criteria[0]
    assert r.passed is None and r.needed == 60
    assert "at least 60 more comparisons needed" in r.detail and r.needed_s is None


def test_stale_hits_fail_on_the_stale_count() -> None:
    r = evaluate(healthy(stale_hits=5), default_criteria())
    assert by_name(r)["stale_hits"].passed is False and by_name(r)["foreign_hits"].passed
    assert by_name(r)["stale_hits"].value == pytest.approx(5 / 3000)

"""The gate's bounds pinned to exact reference values, at their edges and with no data.

`test_stats.py` checks the bounds against scipy and by simulation (coverage); this file pins
what mutation testing (docs/gate.md, "How strong the gate's tests are") showed the suite let
slip: a bound narrower than its theorem, a histogram quantile read at the wrong bucket edge,
off-by-one ranks, and any function that cannot take an empty input (the normal state right
after a deploy). Reference values are computed independently of `shadowswap.gate.stats`
(by hand from the definitions, or with scipy.stats) and written as literals where practical.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats as sps

from shadowswap.gate import stats
from shadowswap.gate.model import Histogram

INF = math.inf
CONFIDENCE = 0.95
LN_2_OVER_DELTA = math.log(2 / 0.05)  # ln(2/δ) at 95 %: ln 40 = 3.6888794541139363


def maurer_pontil(
    samples: Sequence[float], lo: float, hi: float, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Maurer & Pontil (2009), theorem 4, written out from its statement: with probability at
    least 1 − δ, E X ≥ mean − sqrt(2·V·ln(2/δ)/n) − 7·w·ln(2/δ)/(3·(n − 1)) (and the same
    upward), V the sample variance (divisor n − 1), w the width of the range; clipped to the
    range."""
    xs = [min(hi, max(lo, x)) for x in samples]
    n = len(xs)
    log_term = math.log(2 / (1 - confidence))
    eps = math.sqrt(2 * statistics.variance(xs) * log_term / n) + 7 * (hi - lo) * log_term / (
        3 * (n - 1)
    )
    mean = statistics.fmean(xs)
    return max(lo, mean - eps), min(hi, mean + eps)


# -- empirical Bernstein: exact values --------------------------------------------------------
def test_the_mean_bound_is_maurer_pontil_to_the_last_digit() -> None:
    # 90 ones and 10 × 0.8: mean 0.98; V = 0.9·0.1·0.2² · 100/99 = 0.0036363...;
    # eps = sqrt(2·V·ln40/100) + 7·ln40/(3·99) = 0.016378... + 0.086946... = 0.103322607...
    b = stats.mean_bound([1.0] * 90 + [0.8] * 10, (0.0, 1.0), CONFIDENCE)
    assert b.n == 100 and b.value == pytest.approx(0.98, abs=1e-15)
    assert b.lower == pytest.approx(0.8766773926393397, abs=1e-12)
    assert b.upper == 1.0  # 1.0833... clipped to the range


@pytest.mark.parametrize(
    ("samples", "value_range"),
    [
        ([1.0] * 95 + [0.8] * 3 + [0.6] * 2, (0.0, 1.0)),
        ([1.0] * 300, (0.0, 1.0)),  # zero variance: only the 7·w·ln/(3(n−1)) term
        ([0.4, 0.6] * 60 + [0.5] * 30, (0.0, 1.0)),  # both bounds inside the range
        ([0.01 * (i % 7) for i in range(250)], (0.0, 2.0)),  # score deltas: width 2
        ([0.03, 0.02, 0.0, 0.01] * 40, (0.0, 0.8)),  # latency deltas: width 0.8
        ([1.0] * 270 + [0.8] * 30, (0.5, 1.0)),  # a range not starting at 0: width 0.5
        ([0.05, -0.05, 0.0, 0.1] * 125, (-1.0, 1.0)),  # a signed range: width 2
    ],
)
def test_the_mean_bound_matches_the_theorem_computed_by_hand(
    samples: list[float], value_range: tuple[float, float]
) -> None:
    b = stats.mean_bound(samples, value_range, CONFIDENCE)
    lower, upper = maurer_pontil(samples, *value_range)
    assert b.n == len(samples)
    assert b.value == pytest.approx(statistics.fmean(samples), abs=1e-12)
    assert b.lower == pytest.approx(lower, abs=1e-12)
    assert b.upper == pytest.approx(upper, abs=1e-12)


def test_the_mean_bound_at_99_percent_uses_ln_200() -> None:
    samples = [0.4, 0.6] * 60 + [0.5] * 30
    b = stats.mean_bound(samples, (0.0, 1.0), 0.99)
    lower, upper = maurer_pontil(samples, 0.0, 1.0, 0.99)
    assert (b.lower, b.upper) == (pytest.approx(lower, abs=1e-12), pytest.approx(upper, abs=1e-12))
    # by hand: mean 0.5, V = 120·0.01/149 = 0.0080537; ln 200 = 5.2983174
    # eps = sqrt(2·0.0080537·5.2983/150) + 7·5.2983/(3·149) = 0.0238526 + 0.0829714
    assert b.lower == pytest.approx(0.3931760, abs=1e-7)


def test_empirical_bernstein_from_n_equal_2() -> None:
    # n = 2 is the first n the theorem covers: eps = sqrt(2·0.08·ln40/2) + 7·1·ln40/3
    low, high = stats.empirical_bernstein(2, 0.4, 0.08, 1.0, CONFIDENCE)
    eps = math.sqrt(2 * 0.08 * LN_2_OVER_DELTA / 2) + 7 * LN_2_OVER_DELTA / 3
    assert low == pytest.approx(0.4 - eps, abs=1e-12) and high == pytest.approx(0.4 + eps)
    assert stats.empirical_bernstein(1, 0.4, 0.0, 1.0, CONFIDENCE) == (-INF, INF)
    assert stats.empirical_bernstein(0, math.nan, 0.0, 1.0, CONFIDENCE) == (-INF, INF)


def test_a_negative_variance_estimate_counts_as_zero() -> None:
    low, high = stats.empirical_bernstein(100, 0.5, -0.01, 1.0, CONFIDENCE)
    eps = 7 * LN_2_OVER_DELTA / (3 * 99)  # the variance term vanishes
    assert (low, high) == (pytest.approx(0.5 - eps, abs=1e-12), pytest.approx(0.5 + eps))


def test_samples_are_clipped_before_the_mean_and_variance() -> None:
    # 50 × 0.1 and 50 × 3.0 in [0, 0.8]: the 3.0s count as 0.8, so mean 0.45, V = 0.35²·100/99
    samples = [0.1] * 50 + [3.0] * 50
    b = stats.mean_bound(samples, (0.0, 0.8), CONFIDENCE)
    lower, upper = maurer_pontil(samples, 0.0, 0.8)
    assert b.value == pytest.approx(0.45, abs=1e-12)
    assert (b.lower, b.upper) == (pytest.approx(lower, abs=1e-12), pytest.approx(upper, abs=1e-12))
    assert b.note.startswith("50 samples clipped")
    assert stats.mean_bound([0.1] * 50, (0.0, 0.8), CONFIDENCE).note == ""
    # samples below the range are raised to its bottom: 10 × −1 count as 0, mean 0.45
    low = stats.mean_bound([-1.0] * 10 + [0.5] * 90, (0.0, 1.0), CONFIDENCE)
    assert low.value == pytest.approx(0.45, abs=1e-12) and low.note.startswith("10 samples")
    # samples exactly at the range's ends are inside it: nothing clipped
    assert stats.mean_bound([0.0, 1.0] * 60, (0.0, 1.0), CONFIDENCE).note == ""


def test_single_precision_samples_are_bounded_in_double_precision() -> None:
    # scores straight from a float32 vector index: each widened exactly to a double, then the
    # mean and variance computed in double precision (in float32 they are off by ~1e-8)
    samples = np.array([0.1, 0.7, 0.3] * 40 + [0.9] * 7, dtype=np.float32)
    widened = [float(x) for x in samples]
    b = stats.mean_bound(samples, (0.0, 1.0), CONFIDENCE)
    assert b.value == pytest.approx(statistics.fmean(widened), abs=1e-15)
    lower, upper = maurer_pontil(widened, 0.0, 1.0)
    assert (b.lower, b.upper) == (pytest.approx(lower, abs=1e-15), pytest.approx(upper, abs=1e-15))


def test_one_sample_has_a_mean_and_no_bound() -> None:
    b = stats.mean_bound([0.5], (0.0, 1.0), CONFIDENCE)
    assert (b.n, b.value, b.lower, b.upper, b.note) == (1, 0.5, 0.0, 1.0, "")


def test_a_bound_wider_than_the_range_is_the_range() -> None:
    b = stats.mean_bound([0.2, 0.9, 0.5], (0.0, 1.0), CONFIDENCE)
    assert (b.lower, b.upper) == (0.0, 1.0)
    b = stats.mean_bound([1.5] * 5, (1.0, 2.0), CONFIDENCE)
    assert (b.lower, b.upper) == (1.0, 2.0)


# -- means from a Prometheus histogram ---------------------------------------------------------
def test_histogram_variance_bound_from_the_buckets() -> None:
    # 100 latency deltas all <= 0.1 s in [0, 0.8], sum 5: mean 0.05. Second moment at most
    # 100 · 0.1² / 100 = 0.01, so the population variance is at most 0.01 − 0.05² = 0.0075,
    # below Bhatia–Davis (0.8 − 0.05)(0.05 − 0) = 0.0375; as a sample variance ×100/99.
    h = Histogram(100, 5.0, ((0.1, 100), (0.5, 100), (INF, 100)))
    n, mean, var, _ = stats._histogram_moments(h, 0.0, 0.8)
    assert (n, mean) == (100, pytest.approx(0.05, abs=1e-15))
    assert var == pytest.approx(0.0075 * 100 / 99, abs=1e-15)
    b = stats.mean_bound(h, (0.0, 0.8), CONFIDENCE)
    eps = math.sqrt(2 * 0.0075 * 100 / 99 * LN_2_OVER_DELTA / 100) + 7 * 0.8 * LN_2_OVER_DELTA / (
        3 * 99
    )
    assert b.lower == 0.0  # 0.05 − 0.0822 clipped
    assert b.upper == pytest.approx(0.05 + eps, abs=1e-12)
    assert b.upper == pytest.approx(0.1431961, abs=1e-7)  # by hand: 0.05 + 0.0236415 + 0.0695546


def test_histogram_variance_bound_by_bhatia_davis() -> None:
    # agreement@5 of 10 comparisons: 1 at <= 0.5, 2 at <= 0.9, 7 at 1.0, sum 8.6: mean 0.86.
    # Buckets: (1·0.25 + 2·0.81 + 7·1)/10 − 0.86² = 0.1474; Bhatia–Davis (1 − 0.86)·0.86 =
    # 0.1204 is smaller, so V = 0.1204 · 10/9.
    h = Histogram(10, 8.6, ((0.5, 1), (0.9, 3), (1.0, 10), (INF, 10)))
    _, mean, var, _ = stats._histogram_moments(h, 0.0, 1.0)
    assert mean == pytest.approx(0.86, abs=1e-15)
    assert var == pytest.approx(0.1204 * 10 / 9, abs=1e-12)


def test_histogram_variance_bound_in_a_range_not_starting_at_0() -> None:
    # 10 samples in [0.5, 1]: 1 at <= 0.6, 9 at <= 1, sum 9: mean 0.9. Bhatia–Davis
    # (1 − 0.9)(0.9 − 0.5) = 0.04; the buckets: (1·0.6² + 9·1²)/10 − 0.81 = 0.126
    h = Histogram(10, 9.0, ((0.6, 1), (1.0, 10), (INF, 10)))
    assert stats._histogram_moments(h, 0.5, 1.0)[2] == pytest.approx(0.04 * 10 / 9, abs=1e-12)


def test_histogram_samples_the_buckets_do_not_place_are_anywhere_in_the_range() -> None:
    # the buckets count 90 of 100 samples in [0, 0.5] (a scrape that lost the top bucket):
    # the other 10 may be at the range's top. Mean 0.1; second moment
    # (90·0.05² + 10·0.5²)/100 = 0.02725, so 0.02725 − 0.1² = 0.01725, below Bhatia–Davis
    # (0.5 − 0.1)·0.1 = 0.04
    h = Histogram(100, 10.0, ((0.05, 90),))
    assert stats._histogram_moments(h, 0.0, 0.5)[2] == pytest.approx(0.01725 * 100 / 99, abs=1e-12)


def test_histogram_of_two_samples() -> None:
    # 1 at <= 0.4, 1 at <= 1, sum 1: mean 0.5; buckets (0.16 + 1)/2 − 0.25 = 0.33, Bhatia–Davis
    # 0.25: the sample variance (n − 1 = 1) is 0.25 · 2
    h = Histogram(2, 1.0, ((0.4, 1), (1.0, 2), (INF, 2)))
    assert stats._histogram_moments(h, 0.0, 1.0) == (
        2,
        0.5,
        0.5,
        "variance bounded from the histogram's buckets",
    )
    assert stats.mean_bound(h, (0.0, 1.0), CONFIDENCE).note == (
        "variance bounded from the histogram's buckets"
    )


def test_histogram_edges_above_the_range_count_at_its_top() -> None:
    # 10 samples in [0, 1] whose bucket edge is 5: each at most 1 (the range), not 5. Mean 0.1,
    # second moment at most 10·1/10 = 1 → 0.99; Bhatia–Davis 0.9·0.1 = 0.09 → V = 0.1
    h = Histogram(10, 1.0, ((5.0, 10), (INF, 10)))
    assert stats._histogram_moments(h, 0.0, 1.0)[2] == pytest.approx(0.09 * 10 / 9, abs=1e-12)
    # and counts above `count` (a scrape between two increments) are capped at it
    racy = Histogram(100, 5.0, ((0.1, 103), (INF, 103)))
    assert stats._histogram_moments(racy, 0.0, 0.8)[2] == pytest.approx(
        0.0075 * 100 / 99, abs=1e-15
    )


def test_histogram_mean_outside_the_range_is_clipped() -> None:
    h = Histogram(100, 150.0, ((INF, 100),))  # mean 1.5 in a range [0, 0.8]
    n, mean, var, _ = stats._histogram_moments(h, 0.0, 0.8)
    assert (n, mean, var) == (100, 0.8, 0.0)  # Bhatia–Davis at the edge: no variance left
    assert stats.mean_bound(h, (0.0, 0.8), CONFIDENCE).value == 0.8


def test_a_histogram_of_one_sample_has_no_variance_estimate_and_no_bound() -> None:
    h = Histogram(1, 0.5, ((1.0, 1), (INF, 1)))
    assert stats._histogram_moments(h, 0.0, 1.0)[:3] == (1, 0.5, 0.0)
    b = stats.mean_bound(h, (0.0, 1.0), CONFIDENCE)
    assert (b.n, b.value, b.lower, b.upper) == (1, 0.5, 0.0, 1.0)


# -- quantiles: ranks and bucket edges ---------------------------------------------------------
def _ranks_by_scipy(n: int, p: float, confidence: float) -> tuple[int | None, int | None]:
    """The order-statistic ranks from their definitions, with scipy's binomial cdf."""
    delta = 1 - confidence
    cdf = sps.binom.cdf(np.arange(n), n, p)  # cdf[k - 1] = P(Bin(n, p) <= k - 1)
    r = next((k for k in range(1, n + 1) if cdf[k - 1] >= 1 - delta), None)
    s = max((k for k in range(1, n + 1) if cdf[k - 1] <= delta), default=None)
    return s, r


@pytest.mark.parametrize("p", [0.01, 0.05, 0.5, 0.9, 0.95, 0.99])
def test_quantile_ranks_match_their_definition(p: float) -> None:
    for n in [*range(1, 80), 100, 150, 200, 299, 300, 1000]:
        assert stats.quantile_ranks(n, p, CONFIDENCE) == _ranks_by_scipy(n, p, CONFIDENCE), n


def test_quantile_ranks_at_exact_equality(monkeypatch: pytest.MonkeyPatch) -> None:
    # the ranks' definitions are non-strict: s is the largest with P(Bin <= s − 1) <= δ, r the
    # smallest with P(Bin <= r − 1) >= 1 − δ. Binomial cdfs do hit δ to the last bit (e.g.
    # P(Bin(9, 0.7486323725918227) <= 4)), but which p does depends on scipy's rounding, so a
    # table stands in for the cdf here: it equals δ at k = 4 and 1 − δ at k = 6, for n = 9
    delta = 1.0 - CONFIDENCE
    cdf = [0.01, 0.03, 0.04, 0.045, delta, 0.3, 1.0 - delta, 0.99, 0.999]

    def table(k: int, n: int, p: float) -> float:
        return 0.0 if k < 0 else 1.0 if k >= n else cdf[k]

    monkeypatch.setattr(stats, "binom_cdf", table)
    assert stats.quantile_ranks(9, 0.5, CONFIDENCE) == (5, 7)


def test_quantile_ranks_pinned() -> None:
    # scipy: binom.ppf(0.95, n, 0.95) + 1 = r; s the largest k with binom.cdf(k − 1) <= 0.05
    assert stats.quantile_ranks(100, 0.95, CONFIDENCE) == (91, 99)
    assert stats.quantile_ranks(200, 0.95, CONFIDENCE) == (185, 196)
    assert stats.quantile_ranks(300, 0.95, CONFIDENCE) == (279, 292)
    assert stats.quantile_ranks(20, 0.95, CONFIDENCE) == (17, None)  # 0.95^20 = 0.358 > 0.05
    assert stats.quantile_ranks(0, 0.95, CONFIDENCE) == (None, None)
    # n = 1 at the edge: P(Bin(1, 0.95) <= 0) = 0.05 = δ exactly, so s = 1; and
    # P(Bin(1, 0.05) <= 0) = 0.95 = 1 − δ exactly, so r = 1
    assert stats.quantile_ranks(1, 0.95, CONFIDENCE) == (1, None)
    assert stats.quantile_ranks(1, 0.05, CONFIDENCE) == (None, 1)
    # the median of 4: P(Bin(4, ½) <= 0) = 1/16 > δ, P(Bin(4, ½) <= 3) = 15/16 < 1 − δ
    assert stats.quantile_ranks(4, 0.5, CONFIDENCE) == (None, None)
    # a low quantile: the 1st smallest of 5 is above the 1 % quantile with 0.99^5 = 0.951
    assert stats.quantile_ranks(5, 0.01, CONFIDENCE) == (None, 1)


# cumulative counts of 100 shadow latencies; ranks 91 (s), 95 (estimate) and 99 (r) each end
# exactly at a bucket's count, so reading the next bucket, or the lower edge, shows
LATENCY = Histogram(
    100,
    25.0,
    (
        (0.1, 50),
        (0.25, 90),
        (0.3, 91),
        (0.35, 95),
        (0.4, 96),
        (0.6, 98),
        (0.8, 99),
        (1.0, 100),
        (INF, 100),
    ),
)


def test_the_p95_from_a_histogram_is_the_upper_edge_of_its_bucket() -> None:
    b = stats.quantile_bound(LATENCY, 0.95, (0.0, INF), CONFIDENCE)
    assert b.n == 100 and b.note == "bounded by the histogram's bucket edges"
    assert b.value == 0.35  # rank ceil(0.95·100) = 95: the bucket (0.3, 0.35]: its upper edge
    # upper bound: rank r = 99 is in (0.6, 0.8]: at most 0.8 (the lower edge, 0.6, would be
    # optimistic: the gate would pass a p95 it cannot vouch for)
    assert b.upper == 0.8
    # lower bound: rank s = 91 is in (0.25, 0.3]: at least 0.25, the bucket's lower edge
    assert b.lower == 0.25


def test_the_p95_upper_bound_from_a_histogram_never_leaves_the_range() -> None:
    assert stats.quantile_bound(LATENCY, 0.95, (0.0, 0.7), CONFIDENCE).upper == 0.7
    # ranks in the +Inf bucket: the range's top; below the first edge: the range's bottom
    tail = Histogram(100, 90.0, ((0.5, 1), (INF, 100)))
    b = stats.quantile_bound(tail, 0.95, (0.0, 1.5), CONFIDENCE)
    assert (b.value, b.upper, b.lower) == (1.5, 1.5, 0.5)
    first = Histogram(100, 1.0, ((0.05, 100), (INF, 100)))
    b = stats.quantile_bound(first, 0.95, (0.01, INF), CONFIDENCE)
    assert (b.lower, b.value, b.upper) == (0.01, 0.05, 0.05)


def test_a_histogram_whose_buckets_stop_short_bounds_with_the_range() -> None:
    short = Histogram(100, 10.0, ((0.1, 50), (0.2, 90)))  # the scrape lost the top buckets
    b = stats.quantile_bound(short, 0.95, (0.0, 2.0), CONFIDENCE)
    assert (b.value, b.upper) == (2.0, 2.0)  # ranks 95 and 99 are somewhere up to the top
    assert b.lower == 0.2  # rank 91 is above the last edge that counts 90


def test_the_p95_of_exact_samples_is_an_order_statistic() -> None:
    # 100 samples 0.001 .. 0.100 in shuffled order: the k-th smallest is k/1000
    values = [((37 * k) % 100 + 1) / 1000 for k in range(100)]
    assert sorted(values) == [k / 1000 for k in range(1, 101)]
    b = stats.quantile_bound(values, 0.95, (0.0, INF), CONFIDENCE)
    assert (b.n, b.value, b.lower, b.upper) == (100, 0.095, 0.091, 0.099)  # ranks 95, 91, 99


def test_quantile_of_few_samples() -> None:
    one = stats.quantile_bound([0.3], 0.95, (0.0, INF), CONFIDENCE)
    # n = 1: the estimate is the sample; P(Bin(1, .95) <= 0) = 0.05 <= δ: s = 1
    assert (one.n, one.value, one.lower, one.upper) == (1, 0.3, 0.3, INF)
    smallest = stats.quantile_bound([0.3, 0.1, 0.2], 0.0, (0.0, INF), CONFIDENCE)
    assert smallest.value == 0.1  # the 0-quantile is the smallest sample
    # the same from a histogram: rank 1 is in (0.05, 0.2], rank 2 in (0.2, 0.3]
    first_empty = Histogram(3, 0.6, ((0.05, 0), (0.2, 1), (0.3, 3), (INF, 3)))
    assert stats.quantile_bound(first_empty, 0.0, (0.0, INF), CONFIDENCE).value == 0.2
    one_bucket = Histogram(1, 0.3, ((0.5, 1), (INF, 1)))
    h1 = stats.quantile_bound(one_bucket, 0.95, (0.0, 2.0), CONFIDENCE)
    assert (h1.n, h1.value, h1.lower, h1.upper) == (1, 0.5, 0.0, 2.0)


def test_a_side_the_samples_cannot_bound_is_the_range() -> None:
    # the median of 4 samples is bounded on neither side at 95 % (ranks: test above)
    b = stats.quantile_bound([0.4, 0.1, 0.3, 0.2], 0.5, (0.0, 1.0), CONFIDENCE)
    assert (b.value, b.lower, b.upper) == (0.2, 0.0, 1.0)
    h = Histogram(4, 1.0, ((0.15, 1), (0.25, 2), (0.35, 3), (0.45, 4), (INF, 4)))
    b = stats.quantile_bound(h, 0.5, (0.0, 1.0), CONFIDENCE)
    assert (b.value, b.lower, b.upper) == (0.25, 0.0, 1.0)
    # 20 latencies: no upper bound on the p95 (s = 17 is the lower one: in (0.1, 0.2])
    twenty = Histogram(20, 2.0, ((0.1, 16), (0.2, 19), (0.3, 20), (INF, 20)))
    b = stats.quantile_bound(twenty, 0.95, (0.0, INF), CONFIDENCE)
    assert (b.value, b.lower, b.upper) == (0.2, 0.1, INF)


# -- ratios ------------------------------------------------------------------------------------
def test_ratio_bound_is_clopper_pearson_with_the_rate() -> None:
    # scipy: beta.ppf(0.05, 2, 149), beta.ppf(0.95, 3, 148)
    b = stats.ratio_bound(2, 150, CONFIDENCE)
    assert (b.n, b.value) == (150, 2 / 150)
    assert b.lower == pytest.approx(0.002374192077553908, abs=1e-12)
    assert b.upper == pytest.approx(0.041374969893577085, abs=1e-12)
    # 0 in 300: 1 − 0.05^(1/300); 300 in 300: lower 0.05^(1/300)
    none = stats.ratio_bound(0, 300, CONFIDENCE)
    assert (none.lower, none.upper) == (0.0, pytest.approx(0.00993608194445772, abs=1e-15))
    every = stats.ratio_bound(300, 300, CONFIDENCE)
    assert (every.lower, every.upper) == (pytest.approx(0.99006391805554228, abs=1e-15), 1.0)


@pytest.mark.parametrize(("events", "trials"), [(-1, 10), (11, 10)])
def test_impossible_counts_are_refused(events: int, trials: int) -> None:
    with pytest.raises(ValueError, match="not within"):
        stats.clopper_pearson(events, trials, CONFIDENCE)


def test_binomial_cdf_at_its_edges() -> None:
    # scipy.stats.binom.cdf at the same points
    assert stats.binom_cdf(-1, 10, 0.3) == 0.0
    assert stats.binom_cdf(10, 10, 0.3) == 1.0
    assert stats.binom_cdf(11, 10, 0.3) == 1.0
    assert stats.binom_cdf(9, 10, 0.3) == pytest.approx(1 - 0.3**10, abs=1e-15)
    assert stats.binom_cdf(3, 10, 0.0) == 1.0
    assert stats.binom_cdf(3, 10, 1.0) == 0.0
    assert stats.binom_cdf(10, 10, 1.0) == 1.0  # n successes of n: certain at p = 1 too
    assert stats.binom_cdf(10, 10, 0.0) == 1.0
    assert stats.binom_cdf(0, 10, 0.3) == pytest.approx(0.7**10, abs=1e-15)


def test_betainc_outside_the_unit_interval() -> None:
    assert stats.betainc(2.0, 3.0, -0.5) == 0.0
    assert stats.betainc(2.0, 3.0, 0.0) == 0.0
    assert stats.betainc(2.0, 3.0, 1.0) == 1.0
    assert stats.betainc(2.0, 3.0, 1.5) == 1.0
    # I_0.5(2, 3) = 11/16 (the binomial tail P(Bin(4, 0.5) >= 2))
    assert stats.betainc(2.0, 3.0, 0.5) == pytest.approx(11 / 16, abs=1e-15)


# -- no data at all: the normal state right after a deploy -------------------------------------
EMPTY_HISTOGRAMS = [
    Histogram(0, 0.0),
    Histogram(0, 0.0, ((0.1, 0), (1.0, 0), (INF, 0))),
]


@pytest.mark.parametrize("samples", [[], (), *EMPTY_HISTOGRAMS], ids=repr)
def test_no_samples_bound_nothing(samples: Sequence[float] | Histogram) -> None:
    mean = stats.mean_bound(samples, (0.0, 1.0), CONFIDENCE)
    assert (mean.n, mean.lower, mean.upper, mean.note) == (0, 0.0, 1.0, "")
    assert math.isnan(mean.value)
    p95 = stats.quantile_bound(samples, 0.95, (0.0, INF), CONFIDENCE)
    assert (p95.n, p95.lower, p95.upper, p95.note) == (0, 0.0, INF, "")
    assert math.isnan(p95.value)


def test_no_trials_bound_nothing() -> None:
    assert stats.clopper_pearson(0, 0, CONFIDENCE) == (0.0, 1.0)
    assert stats.clopper_pearson(3, 0, CONFIDENCE) == (0.0, 1.0)  # a counter reset: no trials
    b = stats.ratio_bound(0, 0, CONFIDENCE)
    assert (b.n, b.lower, b.upper) == (0, 0.0, 1.0) and math.isnan(b.value)
    assert stats.quantile_ranks(0, 0.95, CONFIDENCE) == (None, None)
    assert stats.binom_cdf(0, 0, 0.5) == 1.0
    assert stats._histogram_moments(Histogram(0, 0.0), 0.0, 1.0)[:3] == (
        0,
        pytest.approx(math.nan, nan_ok=True),
        0.0,
    )

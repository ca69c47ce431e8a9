"""The gate's bounds: exact against scipy, and their coverage checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from shadowswap.gate import stats
from shadowswap.gate.model import Histogram


@pytest.mark.parametrize(
    ("k", "n"), [(0, 1), (0, 10), (3, 10), (10, 10), (1, 300), (5, 1000), (499, 1000)]
)
def test_clopper_pearson_equals_the_beta_quantiles(k: int, n: int) -> None:
    lower, upper = stats.clopper_pearson(k, n, 0.95)
    assert lower == pytest.approx(sps.beta.ppf(0.05, k, n - k + 1) if k else 0.0, abs=1e-9)
    assert upper == pytest.approx(sps.beta.ppf(0.95, k + 1, n - k) if k < n else 1.0, abs=1e-9)


def test_zero_events_bound_is_the_rule_of_three() -> None:
    _, upper = stats.clopper_pearson(0, 300, 0.95)
    assert upper == pytest.approx(1 - 0.05 ** (1 / 300)) and 0.0099 < upper < 0.0101


@pytest.mark.parametrize(("a", "b", "x"), [(0.5, 0.5, 0.3), (2.5, 3.5, 0.4), (900, 100, 0.9)])
def test_betainc_matches_scipy(a: float, b: float, x: float) -> None:
    assert stats.betainc(a, b, x) == pytest.approx(sps.beta.cdf(x, a, b), rel=1e-9)


def test_binomial_cdf_matches_scipy() -> None:
    for k in (0, 3, 49, 50, 99):
        assert stats.binom_cdf(k, 100, 0.37) == pytest.approx(sps.binom.cdf(k, 100, 0.37))


def _agreement_samples(rng: np.random.Generator, n: int, p_miss: float) -> np.ndarray:
    """Agreement@5-like samples: 1, or 0.8/0.6 when a query misses documents."""
    miss = rng.random(n) < p_miss
    return np.where(miss, rng.choice([0.8, 0.6, 0.4], size=n, p=[0.7, 0.2, 0.1]), 1.0)


@pytest.mark.parametrize(("n", "p_miss"), [(30, 0.05), (100, 0.02), (300, 0.3)])
def test_empirical_bernstein_covers_the_true_mean(n: int, p_miss: float) -> None:
    rng = np.random.default_rng(n)
    true_mean = float(_agreement_samples(np.random.default_rng(0), 2_000_000, p_miss).mean())
    runs = 2000
    low_miss = high_miss = 0
    for _ in range(runs):
        b = stats.mean_bound(_agreement_samples(rng, n, p_miss), (0.0, 1.0), 0.95)
        low_miss += b.lower > true_mean
        high_miss += b.upper < true_mean
    # each side may be wrong at most 5 % of the time; the bound is conservative
    assert low_miss / runs <= _limit(runs) and high_miss / runs <= _limit(runs)


@pytest.mark.parametrize(("p", "n"), [(0.001, 500), (0.01, 200), (0.2, 50), (0.5, 100)])
def test_clopper_pearson_coverage_is_exact(p: float, n: int) -> None:
    """The chance of each bound being wrong, summed over every possible outcome: <= 5 %."""
    bounds = [stats.clopper_pearson(k, n, 0.95) for k in range(n + 1)]
    pmf = sps.binom.pmf(range(n + 1), n, p)
    assert sum(w for w, (lo, _) in zip(pmf, bounds, strict=True) if lo > p) <= 0.05
    assert sum(w for w, (_, hi) in zip(pmf, bounds, strict=True) if hi < p) <= 0.05


def _limit(runs: int, alpha: float = 0.05) -> float:
    """An observed miss rate above this is not simulation noise (3 standard deviations)."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_quantile_bounds_cover_the_p95() -> None:
    rng = np.random.default_rng(4)
    true_p95 = float(sps.expon.ppf(0.95, scale=0.05))
    misses_low = misses_high = 0
    for _ in range(2000):
        b = stats.quantile_bound(rng.exponential(0.05, 200), 0.95, (0.0, math.inf), 0.95)
        misses_low += b.lower > true_p95
        misses_high += b.upper < true_p95
    assert misses_low / 2000 <= _limit(2000) and misses_high / 2000 <= _limit(2000)


def test_too_few_samples_for_a_p95_upper_bound_is_unbounded() -> None:
    b = stats.quantile_bound([0.01] * 20, 0.95, (0.0, math.inf), 0.95)
    assert b.upper == math.inf  # 20 samples cannot bound the p95 from above at 95 %


def test_histogram_variance_bound_is_never_below_the_sample_variance() -> None:
    rng = np.random.default_rng(5)
    edges = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0, math.inf)
    for _ in range(200):
        values = _agreement_samples(rng, 150, float(rng.uniform(0, 0.5)))
        h = Histogram(
            int(values.size),
            float(values.sum()),
            tuple((e, int(np.count_nonzero(values <= e))) for e in edges),
        )
        n, mean, var, _ = stats._histogram_moments(h, 0.0, 1.0)
        assert n == values.size and mean == pytest.approx(values.mean())
        assert var >= values.var(ddof=1) - 1e-12
        from_hist = stats.mean_bound(h, (0.0, 1.0), 0.95)
        exact = stats.mean_bound(values, (0.0, 1.0), 0.95)
        assert from_hist.lower <= exact.lower + 1e-12 and from_hist.upper >= exact.upper - 1e-12


def test_samples_outside_the_range_are_clipped_and_said_so() -> None:
    b = stats.mean_bound([0.1] * 50 + [3.0] * 50, (0.0, 0.8), 0.95)
    assert b.value == pytest.approx(0.45) and "50 samples clipped" in b.note
    assert 0.0 <= b.lower <= b.upper <= 0.8

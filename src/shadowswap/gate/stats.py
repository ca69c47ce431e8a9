"""Confidence bounds the gate decides on: pure functions, no state, no I/O.

The gate never compares a raw mean with a threshold. A criterion passes when the bound on the
pessimistic side clears the threshold, fails when the bound on the optimistic side misses it,
and is inconclusive (HOLD, "insufficient evidence") in between. Each bound is one-sided at the
criteria's ``confidence`` (default 95 %): a target whose true mean is on the wrong side of a
threshold passes that criterion with probability at most 1 − confidence per gate run.

Which bound, and why
    means of bounded samples (agreement@5, nDCG@10 in [0, 1]; score and latency deltas in a
    declared range, samples clipped into it)
        the empirical Bernstein bound of Maurer & Pontil (2009, thm. 4):
        ``mean ± (sqrt(2·V·ln(2/δ)/n) + 7·w·ln(2/δ)/(3·(n−1)))``, V the sample variance, w
        the range's width. It holds for any distribution on the range (no normality: these
        samples are lumpy, agreement takes 6 values, most of them 1), and it adapts to the
        variance: a faithful target's agreement is almost always 1, its variance tiny, and the
        bound closes in ~100s of samples where Hoeffding (which ignores the variance) would
        need thousands. A t interval or a bootstrap would be tighter still but has no
        guarantee at small n or for degenerate samples (100 samples all equal to 1 give a
        zero-width bootstrap interval, a certainty the data do not give).
        From a Prometheus histogram the samples themselves are unknown: the sum and count
        give the mean exactly, and the variance is bounded above by the buckets (every sample
        at its bucket's upper edge for the second moment) and by Bhatia–Davis
        ``(hi − mean)(mean − lo)``; the bound grows with V, so an upper bound of V keeps it
        valid.
    ratios of events (errors, drops, mismatches, unexplained hits per attempt)
        exact Clopper–Pearson binomial bounds (beta quantiles, ``scipy.special.betaincinv``):
        valid at every n and at 0 events, where the upper bound is ``1 − δ^(1/n)`` (≈ 3/n at
        95 %: "0 errors in 300 reads" says the rate
        is below 1 %, no more). A threshold of 0 means "must be zero": the criterion passes
        only with no event at all, and fails at the first (an event observed is proof).
    quantiles (shadow latency p95)
        the distribution-free order-statistic bound: the r-th smallest sample is above the
        p-quantile with probability P(Bin(n, p) ≤ r − 1); from a histogram, the bucket edge
        that holds that rank.
    state (breaker, outbox, drift): values, not samples: no bound, known or unknown.

Repeated looks. The bounds are fixed-sample: each gate run is one look. Running the gate every
few minutes and promoting at the first PROMOTE spends the error budget once per look (a union
bound: ten looks at 95 % are at worst 50 % for a target sitting exactly on a threshold, and far
less for one clearly on the wrong side, which fails with confidence instead). Raise
``confidence`` when the gate is polled; docs/gate.md has the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shadowswap.gate.model import Histogram

_EPS = 1e-12


@dataclass(frozen=True)
class Bound:
    """An estimate with its one-sided lower and upper confidence bounds."""

    n: int
    value: float
    lower: float
    upper: float
    note: str = ""


# -- means ------------------------------------------------------------------------------------
def empirical_bernstein(
    n: int, mean: float, variance: float, width: float, confidence: float
) -> tuple[float, float]:
    """Maurer–Pontil one-sided bounds (each at ``confidence``) on the mean of ``n`` samples of
    range ``width`` with sample variance ``variance`` (or an upper bound of it)."""
    if n < 2:
        return -math.inf, math.inf
    log_term = math.log(2.0 / (1.0 - confidence))
    eps = math.sqrt(2.0 * max(variance, 0.0) * log_term / n) + 7.0 * width * log_term / (
        3.0 * (n - 1)
    )
    return mean - eps, mean + eps


def mean_bound(
    samples: Sequence[float] | Histogram,
    value_range: tuple[float, float],
    confidence: float,
) -> Bound:
    """Bounds on the mean of samples in ``value_range`` (exact samples are clipped into it;
    the note says how many were). The bounds never leave the range."""
    lo, hi = value_range
    width = hi - lo
    if isinstance(samples, Histogram):
        n, mean, var, note = _histogram_moments(samples, lo, hi)
    else:
        values = np.asarray(samples, dtype=np.float64)
        n = int(values.size)
        clipped = int(np.count_nonzero((values < lo) | (values > hi)))
        values = np.clip(values, lo, hi)
        mean = float(values.mean()) if n else math.nan
        var = float(values.var(ddof=1)) if n > 1 else 0.0
        note = f"{clipped} samples clipped into [{lo:g}, {hi:g}]" if clipped else ""
    if n == 0:
        return Bound(0, math.nan, lo, hi, note)
    low, high = empirical_bernstein(n, mean, var, width, confidence)
    return Bound(n, mean, max(lo, low), min(hi, high), note)


def _histogram_moments(h: Histogram, lo: float, hi: float) -> tuple[int, float, float, str]:
    """Count, mean (clipped into the range) and an upper bound of the sample variance."""
    n = h.count
    if n == 0:
        return 0, math.nan, 0.0, ""
    mean = min(hi, max(lo, h.total / n))
    bhatia_davis = (hi - mean) * (mean - lo)
    second = 0.0
    seen = 0
    for edge, cumulative in h.buckets:
        in_bucket = max(0, min(cumulative, n) - seen)
        top = min(hi, edge) if math.isfinite(edge) else hi
        second += in_bucket * max(top * top, lo * lo)
        seen = max(seen, min(cumulative, n))
    if seen < n:  # samples the buckets do not place: anywhere in the range
        second += (n - seen) * max(hi * hi, lo * lo)
    from_buckets = second / n - mean * mean
    population = max(0.0, min(bhatia_davis, from_buckets))
    variance = population * n / (n - 1) if n > 1 else 0.0
    return n, mean, variance, "variance bounded from the histogram's buckets"


# -- ratios -----------------------------------------------------------------------------------
def clopper_pearson(events: int, trials: int, confidence: float) -> tuple[float, float]:
    """Exact one-sided binomial bounds (each at ``confidence``) on a rate seen as
    ``events`` in ``trials``."""
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= events <= trials:
        raise ValueError(f"events {events} not within 0..{trials}")
    delta = 1.0 - confidence
    if events == 0:
        lower = 0.0
    elif events == trials:
        lower = delta ** (1.0 / trials)
    else:  # P(Bin(n, p) >= k) = delta: the delta-quantile of Beta(k, n - k + 1)
        lower = float(_special().betaincinv(events, trials - events + 1, delta))
    if events == trials:
        upper = 1.0
    elif events == 0:
        upper = 1.0 - delta ** (1.0 / trials)
    else:  # P(Bin(n, p) <= k) = delta: the (1 - delta)-quantile of Beta(k + 1, n - k)
        upper = float(_special().betaincinv(events + 1, trials - events, 1.0 - delta))
    return lower, upper


def ratio_bound(events: int, trials: int, confidence: float) -> Bound:
    lower, upper = clopper_pearson(events, trials, confidence)
    value = events / trials if trials else math.nan
    return Bound(trials, value, lower, upper)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(Bin(n, p) <= k)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return betainc(n - k, k + 1, 1.0 - p)


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (``scipy.special.betainc``)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return float(_special().betainc(a, b, x))


def _special() -> Any:
    """``scipy.special``, imported on first use: the CLI's other commands do not pay for it."""
    from scipy import special  # noqa: PLC0415

    return special


# -- quantiles --------------------------------------------------------------------------------
def quantile_ranks(n: int, p: float, confidence: float) -> tuple[int | None, int | None]:
    """1-based ranks ``(s, r)``: the s-th smallest of ``n`` samples is at most the
    p-quantile, and the r-th at least, each with probability >= ``confidence``; None when
    ``n`` is too small for that side."""
    delta = 1.0 - confidence
    # r: smallest with P(Bin(n, p) <= r - 1) >= 1 - delta
    r: int | None = None
    lo_r, hi_r = 1, n
    if binom_cdf(n - 1, n, p) >= 1.0 - delta:
        while lo_r < hi_r:
            mid = (lo_r + hi_r) // 2
            if binom_cdf(mid - 1, n, p) >= 1.0 - delta:
                hi_r = mid
            else:
                lo_r = mid + 1
        r = lo_r
    # s: largest with P(Bin(n, p) >= s) >= 1 - delta, i.e. binom_cdf(s - 1) <= delta
    s: int | None = None
    lo_s, hi_s = 1, n
    if binom_cdf(0, n, p) <= delta:
        while lo_s < hi_s:
            mid = (lo_s + hi_s + 1) // 2
            if binom_cdf(mid - 1, n, p) <= delta:
                lo_s = mid
            else:
                hi_s = mid - 1
        s = lo_s
    return s, r


def quantile_bound(
    samples: Sequence[float] | Histogram,
    p: float,
    value_range: tuple[float, float],
    confidence: float,
) -> Bound:
    """Distribution-free bounds on the p-quantile (the estimate is the sample quantile, or the
    histogram bucket edge that holds it)."""
    lo, hi = value_range
    if isinstance(samples, Histogram):
        n = samples.count

        def at_rank(rank: int, upper: bool) -> float:
            previous = lo
            for edge, cumulative in samples.buckets:
                if cumulative >= rank:
                    if upper:
                        return min(hi, edge) if math.isfinite(edge) else hi
                    return previous
                previous = edge
            return hi if upper else previous

        if n == 0:
            return Bound(0, math.nan, lo, hi)
        estimate = at_rank(max(1, math.ceil(p * n)), True)
        s, r = quantile_ranks(n, p, confidence)
        lower = at_rank(s, False) if s is not None else lo
        upper = at_rank(r, True) if r is not None else hi
        return Bound(n, estimate, lower, upper, "bounded by the histogram's bucket edges")
    values = np.sort(np.asarray(samples, dtype=np.float64))
    n = int(values.size)
    if n == 0:
        return Bound(0, math.nan, lo, hi)
    estimate = float(values[max(0, math.ceil(p * n) - 1)])
    s, r = quantile_ranks(n, p, confidence)
    lower = float(values[s - 1]) if s is not None else lo
    upper = float(values[r - 1]) if r is not None else hi
    return Bound(n, estimate, lower, upper)

"""How much more evidence an inconclusive criterion needs: the count of further samples (or
trials) after which its bound would clear the threshold if what was seen so far goes on, and
about how long that takes at the rate the evidence came in.

Estimates, not promises: they assume the observed mean, variance or rate stays as it is.

    zero events       a must-be-zero rate passes when 0 events in ``n`` trials put its upper
                      bound below the rate it must rule out: ``n >= ln(δ) / ln(1 − rate)``
                      (299 trials for 1 % at 95 %).
    a rate            the smallest ``n`` whose Clopper–Pearson bound at the observed rate
                      clears the threshold (None when the observed rate itself does not).
    a mean            the smallest ``n`` whose empirical Bernstein bound at the observed mean
                      and variance clears it (exact samples only; None from a histogram, or
                      when the observed mean itself does not).
    fewer than the    at least ``min_samples − n``.
    minimum

``n`` is searched by doubling and bisection up to `LIMIT`; beyond it: None ("more than we
can say").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from shadowswap.gate import stats
from shadowswap.gate.model import Samples

LIMIT = 10_000_000


def zero_events(rule_out: float, confidence: float) -> int:
    """Trials with no event that put the upper bound of the rate at or below ``rule_out``."""
    if rule_out <= 0.0:
        raise ValueError("a rate of 0 can never be ruled out by trials")
    if rule_out >= 1.0:
        return 1
    return math.ceil(math.log(1.0 - confidence) / math.log(1.0 - rule_out))


def smallest(passes: Callable[[int], bool], start: int) -> int | None:
    """The smallest ``n >= start`` with ``passes(n)``, assuming monotony; None past LIMIT."""
    if passes(start):
        return start
    low, high = start, max(start + 1, 2 * start)
    while not passes(high):
        low, high = high, 2 * high
        if high > LIMIT:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        if passes(mid):
            high = mid
        else:
            low = mid
    return high


def ratio(
    events: int, trials: int, clears: Callable[[float, float], bool], confidence: float
) -> int | None:
    """Trials needed at the observed rate ``events / trials`` for the bounds to clear."""
    if trials <= 0:
        return None
    rate = events / trials

    def passes(n: int) -> bool:
        low, high = stats.clopper_pearson(min(n, round(rate * n)), n, confidence)
        return clears(low, high)

    if not passes(LIMIT):
        return None
    return smallest(passes, trials)


def mean(
    samples: Samples,
    value_range: tuple[float, float],
    clears: Callable[[float, float], bool],
    confidence: float,
) -> int | None:
    """Samples needed at the observed mean and variance for the Bernstein bounds to clear."""
    if samples is None or not isinstance(samples, tuple) or len(samples) < 2:
        return None
    lo, hi = value_range
    values = np.clip(np.asarray(samples, dtype=np.float64), lo, hi)
    m, var = float(values.mean()), float(values.var(ddof=1))

    def passes(n: int) -> bool:
        low, high = stats.empirical_bernstein(n, m, var, hi - lo, confidence)
        return clears(max(lo, low), min(hi, high))

    if not passes(LIMIT):
        return None
    return smallest(passes, len(samples))


def duration_text(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"

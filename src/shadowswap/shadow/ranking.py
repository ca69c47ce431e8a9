"""Ranking measures between two result lists (CONTRACT §2), as pure functions over doc ids.

agreement@k  ``|top-k(primary) ∩ top-k(shadow)| / k``; two empty lists agree fully (1.0).
nDCG@k       the shadow list graded against the primary list taken as the ideal ranking:
             the document at primary rank r (1-based) has relevance ``k + 1 - r`` for r <= k
             and 0 beyond; DCG uses linear gain and a ``log2(rank + 1)`` discount, as
             trec_eval computes it; the ideal DCG is that of the primary list itself. Two
             empty lists score 1.0; a non-empty list against an empty one scores 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _top(ids: Sequence[str], k: int) -> list[str]:
    seen: dict[str, None] = {}
    for doc_id in ids:
        if len(seen) == k:
            break
        seen.setdefault(doc_id, None)
    return list(seen)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")


def agreement_at_k(primary_ids: Sequence[str], shadow_ids: Sequence[str], k: int) -> float:
    """Share of the primary's top k that the shadow's top k also holds."""
    _check_k(k)
    primary, shadow = _top(primary_ids, k), _top(shadow_ids, k)
    if not primary and not shadow:
        return 1.0
    return len(set(primary) & set(shadow)) / k


def ndcg_at_k(primary_ids: Sequence[str], shadow_ids: Sequence[str], k: int) -> float:
    """nDCG of the shadow's top k, with the primary's ranking as the ideal one."""
    _check_k(k)
    primary, shadow = _top(primary_ids, k), _top(shadow_ids, k)
    if not primary:
        return 1.0 if not shadow else 0.0
    relevance = {doc_id: k + 1 - rank for rank, doc_id in enumerate(primary, start=1)}
    dcg = sum(relevance.get(d, 0) / math.log2(i + 1) for i, d in enumerate(shadow, start=1))
    ideal = sum(relevance[d] / math.log2(i + 1) for i, d in enumerate(primary, start=1))
    return dcg / ideal

"""What one shadow comparison measures: pure functions over two answers to the same query.

The same code serves the live shadow (`shadowswap.shadow.read`, which puts the measures in its
one `shadowswap.shadow.observations.Observation`) and the offline ``shadowswap compare``
(`shadowswap.shadow.offline`), so both report the same numbers.

agreement@5     `shadowswap.shadow.ranking.agreement_at_k` at cut-off ``c = min(5, n)``, where ``n``
                is the length of the longer of the two answers (each at most the ``k`` the
                caller asked for). Identical answers always agree fully, also for a tenant
                with three documents or a caller asking for ``k=3``; an answer that misses
                documents or adds some does not. With ``n >= 5`` this is the contract's
                ``|top-5(primary) ∩ top-5(shadow)| / 5`` exactly. Two empty answers agree (1).
nDCG@10         `shadowswap.shadow.ranking.ndcg_at_k` at 10, exactly as CONTRACT §2: the primary's
                answer is the ideal ranking, primary rank ``r`` has relevance ``11 - r``.
score delta     mean ``|score_primary - score_shadow|`` over the documents both returned
                (scores are similarities in every store); None when they share none.
latency delta   shadow latency minus primary latency, in seconds (positive: shadow slower).
mismatch        agreement@5 < 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shadowswap.shadow.ranking import agreement_at_k, ndcg_at_k
from shadowswap.values import Hit

AGREEMENT_CUTOFF = 5
NDCG_CUTOFF = 10


@dataclass(frozen=True)
class Measures:
    """The measures of one comparison; ``agreement_cutoff`` is the ``c`` actually used."""

    agreement_at_5: float
    agreement_cutoff: int
    ndcg_at_10: float
    score_delta: float | None
    shared: int  # documents both answers hold
    latency_delta_s: float
    mismatch: bool


def measure(
    primary: Sequence[Hit],
    shadow: Sequence[Hit],
    *,
    primary_latency_s: float,
    shadow_latency_s: float,
) -> Measures:
    """Compare the shadow's answer with the primary's (both best first)."""
    p_ids = [h.doc_id for h in primary]
    s_ids = [h.doc_id for h in shadow]
    cutoff = min(AGREEMENT_CUTOFF, max(len(p_ids), len(s_ids)))
    agreement = agreement_at_k(p_ids, s_ids, cutoff) if cutoff else 1.0
    ndcg = ndcg_at_k(p_ids, s_ids, NDCG_CUTOFF)
    p_scores: dict[str, float] = {}
    for hit in primary:
        p_scores.setdefault(hit.doc_id, hit.score)
    deltas: dict[str, float] = {}
    for hit in shadow:
        if hit.doc_id in p_scores and hit.doc_id not in deltas:
            deltas[hit.doc_id] = abs(p_scores[hit.doc_id] - hit.score)
    score_delta = sum(deltas.values()) / len(deltas) if deltas else None
    return Measures(
        agreement_at_5=agreement,
        agreement_cutoff=cutoff,
        ndcg_at_10=ndcg,
        score_delta=score_delta,
        shared=len(deltas),
        latency_delta_s=shadow_latency_s - primary_latency_s,
        mismatch=agreement < 1.0,
    )

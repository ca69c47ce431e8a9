"""The two ranking measures of CONTRACT §2 on hand-checked cases."""

from __future__ import annotations

import math

import pytest

from shadowswap import agreement_at_k, ndcg_at_k

TEN = [f"d{i}" for i in range(1, 11)]


def test_agreement_counts_the_overlap_of_the_top_k() -> None:
    assert agreement_at_k(TEN, TEN, 5) == 1.0
    assert agreement_at_k(TEN, list(reversed(TEN)), 5) == 0.0
    assert agreement_at_k(["a", "b", "c", "d", "e"], ["e", "x", "a", "y", "b"], 5) == pytest.approx(
        0.6
    )
    assert agreement_at_k(["a", "b"], ["a", "b"], 5) == pytest.approx(0.4)  # |∩| / k, literally
    assert agreement_at_k([], [], 5) == 1.0


def test_ndcg_against_hand_computed_values() -> None:
    assert ndcg_at_k(TEN, TEN, 10) == pytest.approx(1.0)
    assert ndcg_at_k([], [], 10) == 1.0
    assert ndcg_at_k(TEN, [], 10) == 0.0
    assert ndcg_at_k([], ["x"], 10) == 0.0
    # swap the first two: relevances 9, 10, 8, ... instead of 10, 9, 8, ...
    swapped = [TEN[1], TEN[0], *TEN[2:]]
    ideal = sum((11 - r) / math.log2(r + 1) for r in range(1, 11))
    dcg = 9 / 1 + 10 / math.log2(3) + sum((11 - r) / math.log2(r + 1) for r in range(3, 11))
    assert ndcg_at_k(TEN, swapped, 10) == pytest.approx(dcg / ideal)
    # a document the primary did not return counts 0
    assert ndcg_at_k(TEN, ["zz", *TEN[1:]], 10) == pytest.approx((ideal - 10) / ideal)


def test_bad_k() -> None:
    with pytest.raises(ValueError, match="positive"):
        agreement_at_k(TEN, TEN, 0)


def test_a_shadow_that_answers_nothing_agrees_with_nothing() -> None:
    # the primary answered, the shadow returned no hit: no overlap, no gain (only two empty
    # answers agree fully)
    assert agreement_at_k(["a", "b", "c"], [], 5) == 0.0
    assert agreement_at_k(TEN, [], 5) == 0.0
    assert agreement_at_k(["a"], [], 1) == 0.0
    assert ndcg_at_k(["a"], [], 10) == 0.0
    assert ndcg_at_k(TEN, [], 5) == 0.0
    # and the other way round: hits where the primary has none
    assert agreement_at_k([], ["x"], 5) == 0.0

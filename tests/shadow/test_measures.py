"""The ranking measures against trec_eval (through two wrappers: pytrec_eval and ir_measures)
on randomised rankings, and the comparison built on them."""

from __future__ import annotations

import random

import ir_measures
import pytest
import pytrec_eval
from ir_measures import P, nDCG

from shadowswap import agreement_at_k, ndcg_at_k
from shadowswap.shadow.compare import measure
from shadowswap.shadow.publish import ObservationMetrics
from shadowswap.values import Hit
from tests.metrics_helpers import RecordingMetrics, compared


def _random_rankings(rng: random.Random) -> tuple[list[str], list[str], int]:
    pool = [f"doc-{i}" for i in range(rng.randint(1, 30))]
    primary = rng.sample(pool, rng.randint(1, min(len(pool), 15)))
    # the shadow overlaps the primary partly, and adds documents the primary did not return
    shadow = rng.sample(pool, rng.randint(1, min(len(pool), 15)))
    if rng.random() < 0.3:  # often the same documents in a perturbed order
        shadow = primary[:]
        i, j = rng.randrange(len(shadow)), rng.randrange(len(shadow))
        shadow[i], shadow[j] = shadow[j], shadow[i]
    return primary, shadow, rng.choice([1, 2, 3, 5, 7, 10])


def _run(shadow: list[str]) -> dict[str, dict[str, float]]:
    # trec_eval orders a run by score: strictly decreasing scores keep the shadow's order
    return {"q": {doc: float(len(shadow) - rank) for rank, doc in enumerate(shadow)}}


def _graded_qrels(primary: list[str], k: int) -> dict[str, dict[str, int]]:
    # CONTRACT §2: primary rank r gets relevance k + 1 - r for r <= k, nothing beyond
    return {"q": {doc: k + 1 - rank for rank, doc in enumerate(primary[:k], start=1)}}


@pytest.mark.parametrize("seed", range(4))
def test_ndcg_matches_trec_eval_on_random_rankings(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        primary, shadow, k = _random_rankings(rng)
        qrels = _graded_qrels(primary, k)
        expected = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}"}).evaluate(_run(shadow))
        assert ndcg_at_k(primary, shadow, k) == pytest.approx(
            expected["q"][f"ndcg_cut_{k}"], abs=1e-12
        ), (primary, shadow, k)
        via_ir_measures = ir_measures.calc_aggregate([nDCG @ k], qrels, _run(shadow))[nDCG @ k]
        assert ndcg_at_k(primary, shadow, k) == pytest.approx(via_ir_measures, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_agreement_is_trec_evals_precision_against_the_primary_top_k(seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(500):
        primary, shadow, k = _random_rankings(rng)
        qrels = {"q": dict.fromkeys(primary[:k], 1)}
        expected = pytrec_eval.RelevanceEvaluator(qrels, {f"P.{k}"}).evaluate(_run(shadow))
        assert agreement_at_k(primary, shadow, k) == pytest.approx(
            expected["q"][f"P_{k}"], abs=1e-12
        ), (primary, shadow, k)
        via_ir_measures = ir_measures.calc_aggregate([P @ k], qrels, _run(shadow))[P @ k]
        assert agreement_at_k(primary, shadow, k) == pytest.approx(via_ir_measures, abs=1e-12)


def test_the_contract_cutoffs_at_5_and_10_match_trec_eval() -> None:
    rng = random.Random(7)
    for _ in range(300):
        primary, shadow, _ = _random_rankings(rng)
        scores = pytrec_eval.RelevanceEvaluator(_graded_qrels(primary, 10), {"ndcg_cut.10"})
        expected = scores.evaluate(_run(shadow))["q"]["ndcg_cut_10"]
        assert ndcg_at_k(primary, shadow, 10) == pytest.approx(expected, abs=1e-12)


def _hits(ids: list[str], scores: list[float] | None = None) -> list[Hit]:
    values = scores or [1.0 - i / 100 for i in range(len(ids))]
    return [Hit(d, s) for d, s in zip(ids, values, strict=True)]


def test_identical_answers_agree_fully_whatever_their_length() -> None:
    for ids in (["a"], ["a", "b", "c"], [f"d{i}" for i in range(10)], []):
        m = measure(_hits(ids), _hits(ids), primary_latency_s=0.01, shadow_latency_s=0.02)
        assert m.agreement_at_5 == 1.0
        assert m.ndcg_at_10 == pytest.approx(1.0)
        assert not m.mismatch
        assert m.agreement_cutoff == min(5, len(ids))


def test_missing_and_extra_documents_are_mismatches() -> None:
    primary = _hits(["a", "b", "c"])
    missing = measure(primary, _hits(["a", "b"]), primary_latency_s=0, shadow_latency_s=0)
    assert missing.agreement_at_5 == pytest.approx(2 / 3) and missing.mismatch
    extra = measure(primary, _hits(["a", "b", "c", "x"]), primary_latency_s=0, shadow_latency_s=0)
    assert extra.agreement_at_5 == pytest.approx(3 / 4) and extra.mismatch
    # at full length it is the contract's |top-5 ∩ top-5| / 5
    ten = [f"d{i}" for i in range(10)]
    swapped = _hits([*ten[:4], "zz", *ten[5:]])
    m = measure(_hits(ten), swapped, primary_latency_s=0, shadow_latency_s=0)
    assert m.agreement_at_5 == agreement_at_k(ten, [h.doc_id for h in swapped], 5) == 0.8


def test_an_empty_shadow_answer_is_a_mismatch_with_zero_agreement_and_ndcg() -> None:
    for ids in (["a"], ["a", "b", "c"], [f"d{i}" for i in range(10)]):
        m = measure(_hits(ids), [], primary_latency_s=0.01, shadow_latency_s=0.002)
        assert (m.agreement_at_5, m.ndcg_at_10, m.mismatch) == (0.0, 0.0, True), ids
        assert m.agreement_cutoff == min(5, len(ids)) and m.shared == 0
        assert m.score_delta is None
    # a shadow with hits where the primary has none is a mismatch too
    m = measure([], _hits(["x", "y"]), primary_latency_s=0, shadow_latency_s=0)
    assert (m.agreement_at_5, m.ndcg_at_10, m.mismatch) == (0.0, 0.0, True)


def test_score_delta_is_the_mean_over_shared_documents_and_latency_delta_is_signed() -> None:
    primary = _hits(["a", "b", "c"], [0.9, 0.8, 0.7])
    shadow = _hits(["b", "a", "x"], [0.75, 0.91, 0.99])
    m = measure(primary, shadow, primary_latency_s=0.010, shadow_latency_s=0.004)
    assert m.shared == 2
    assert m.score_delta == pytest.approx((0.05 + 0.01) / 2)
    assert m.latency_delta_s == pytest.approx(-0.006)
    none_shared = measure(primary, _hits(["x"]), primary_latency_s=0, shadow_latency_s=0)
    assert none_shared.score_delta is None and none_shared.shared == 0


def test_the_observation_carries_the_measures_to_the_metrics() -> None:
    m = measure(_hits(["a", "b"]), _hits(["b", "c"]), primary_latency_s=0.1, shadow_latency_s=0.3)
    metrics = RecordingMetrics()
    ObservationMetrics(metrics).record(
        compared("chroma", 0.3, m.agreement_at_5, m.ndcg_at_10, m.score_delta,
                 m.latency_delta_s, m.mismatch, sample="0.25")
    )  # fmt: skip
    shadow = {"backend": "chroma", "sample": "0.25"}
    assert metrics.value("retrieval_shadow_latency_seconds_sum", **shadow) == 0.3
    assert metrics.value("retrieval_shadow_agreement_at_5_sum", k="5", **shadow) == 0.5
    assert metrics.value("retrieval_shadow_ndcg_at_10_sum", k="10", **shadow) == m.ndcg_at_10
    assert metrics.value("retrieval_dual_read_score_delta_sum", backend="chroma") == m.score_delta
    assert metrics.value(
        "retrieval_dual_read_latency_delta_seconds_sum", backend="chroma"
    ) == pytest.approx(0.2)
    assert metrics.value("retrieval_dual_read_mismatch_total", backend="chroma") == 1  # mismatch

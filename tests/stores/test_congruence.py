"""Congruence: the same data in two stores gives the same top 10, ids and scores.

Like qdrant-client's congruence tests, and like a shadow read in production: every pair of
real engines is compared on the same clustered corpus (exact search in FAISS, HNSW with a high
ef in Chroma, which on this data must still return the exact top 10).
"""

from __future__ import annotations

import itertools

import pytest

from shadowswap.testing import clustered_corpus
from tests.stores.conftest import REAL_KINDS, StoreMaker

PAIRS = list(itertools.combinations(["memory", *REAL_KINDS], 2))


@pytest.mark.parametrize(("left", "right"), PAIRS, ids=[f"{a}~{b}" for a, b in PAIRS])
def test_same_data_same_top10(make_store: StoreMaker, left: str, right: str) -> None:
    corpus = clustered_corpus("t1", 1500, 48, queries=30, clusters=24, seed=21)
    a, b = make_store(left, name="left"), make_store(right, name="right")
    for store in (a, b):
        for i in range(0, len(corpus.documents), 500):
            store.upsert("t1", corpus.documents[i : i + 500])
    for q in corpus.queries:
        x, y = a.search("t1", q, 10), b.search("t1", q, 10)
        assert x.doc_ids == y.doc_ids
        assert [h.score for h in x.hits] == pytest.approx([h.score for h in y.hits], abs=1e-4)
        for flt in ({"lang": "fr"}, {"even": True, "lang": "en"}):
            assert a.search("t1", q, 10, flt).doc_ids == b.search("t1", q, 10, flt).doc_ids

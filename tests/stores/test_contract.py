"""The store contract: every store behaves the same through the boundary.

Runs against every kind of `tests.stores.conftest.STORE_KINDS`: the reference store and every
real engine that runs here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from shadowswap.errors import DimensionMismatch, IncompatibleStore, InvalidInput
from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore, VectorStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing import clustered_corpus
from shadowswap.values import Document
from tests.stores.conftest import ENGINE_METRIC_KINDS, REAL_KINDS, StoreMaker, record_says

T = "acme"


def docs(n: int = 60, dim: int = 16, tenant: str = T, seed: int = 1) -> list[Document]:
    return clustered_corpus(tenant, n, dim, queries=0, seed=seed).documents


def test_store_satisfies_protocol(store: BaseStore) -> None:
    assert isinstance(store, VectorStore)


def test_upsert_then_get_round_trips_content_and_types(store: BaseStore) -> None:
    original = [
        Document(T, "a", [1.0, 2.0, 3.0], {"s": "x", "i": 7, "f": 1.0, "b": True, "big": 2**62}),
        Document(T, "b", [0.5, -1.0, 0.25], {"f": 0.1, "neg": -3}, text=""),
        Document(T, "c", [3.0, 1.0, 0.0], text="héllo wörld ✓"),
    ]
    report = store.upsert(T, original)
    assert (report.written, report.unchanged) == (3, 0)
    got = store.get(T, ["a", "b", "c", "missing"])
    assert sorted(got) == ["a", "b", "c"]
    a, b, c = got["a"], got["b"], got["c"]
    assert dict(a.metadata) == {"s": "x", "i": 7, "f": 1.0, "b": True, "big": 2**62}
    assert type(a.metadata["i"]) is int and type(a.metadata["f"]) is float
    assert type(a.metadata["b"]) is bool
    assert a.text is None and b.text == "" and c.text == "héllo wörld ✓"
    # Under cosine the store keeps unit vectors; a second store of the same docs agrees.
    assert math.isclose(float(np.linalg.norm(a.vector)), 1.0, rel_tol=1e-6)
    reference = MemoryStore()
    reference.upsert(T, original)
    for doc_id, doc in got.items():
        assert doc.content_hash == reference.get(T, [doc_id])[doc_id].content_hash


def test_same_content_again_changes_nothing(store: BaseStore) -> None:
    batch = docs(40)
    assert store.upsert(T, batch).written == 40
    again = store.upsert(T, batch)
    assert (again.written, again.unchanged) == (0, 40)
    assert store.count(T) == 40


def test_new_content_replaces_the_whole_document(store: BaseStore) -> None:
    store.upsert(T, [Document(T, "d1", [1.0, 0.0, 0.0], {"old": 1, "keep": "x"}, text="v1")])
    store.upsert(T, [Document(T, "d2", [0.0, 1.0, 0.0])])
    report = store.upsert(T, [Document(T, "d1", [0.0, 0.0, 1.0], {"keep": "y"})])
    assert (report.written, report.unchanged) == (1, 0)
    got = store.get(T, ["d1"])["d1"]
    assert dict(got.metadata) == {"keep": "y"} and got.text is None
    hits = store.search(T, [0.0, 0.0, 1.0], 2).hits
    assert hits[0].doc_id == "d1" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert store.count(T) == 2
    assert store.search(T, [0.0, 0.0, 1.0], 1, {"keep": "x"}).hits == ()


def test_duplicate_ids_in_one_batch_keep_the_last(store: BaseStore) -> None:
    report = store.upsert(
        T, [Document(T, "x", [1.0, 0.0], {"v": 1}), Document(T, "x", [0.0, 1.0], {"v": 2})]
    )
    assert report.written == 1
    assert store.get(T, ["x"])["x"].metadata["v"] == 2


def test_delete_removes_and_counts_only_present_ids(store: BaseStore) -> None:
    batch = docs(30)
    store.upsert(T, batch)
    gone = [d.doc_id for d in batch[:10]]
    assert store.delete(T, [*gone, "never-existed"]) == 10
    assert store.delete(T, gone) == 0
    assert store.count(T) == 20
    assert store.get(T, gone) == {}
    for d in batch[:10]:
        assert d.doc_id not in store.search(T, d.vector, 30).doc_ids


def test_search_is_ordered_exact_and_capped_at_k(store: BaseStore) -> None:
    corpus = clustered_corpus(T, 300, 24, queries=5, seed=3)
    store.upsert(T, corpus.documents)
    reference = MemoryStore()
    reference.upsert(T, corpus.documents)
    for q in corpus.queries:
        got = store.search(T, q, 10)
        want = reference.search(T, q, 10)
        assert got.backend == store.kind
        assert len(got.hits) == 10
        scores = [h.score for h in got.hits]
        assert scores == sorted(scores, reverse=True)
        assert got.doc_ids == want.doc_ids
        assert scores == pytest.approx([h.score for h in want.hits], abs=1e-4)
        assert dict(got.hits[0].metadata) == dict(want.hits[0].metadata)


def test_k_larger_than_tenant_returns_everything(store: BaseStore) -> None:
    store.upsert(T, docs(7))
    assert len(store.search(T, docs(1, seed=9)[0].vector, 50).hits) == 7


def test_empty_tenant_is_empty_everywhere(store: BaseStore) -> None:
    store.upsert("other", docs(5, tenant="other"))
    assert store.search("nobody", [0.1] * 16, 5).hits == ()
    assert store.count("nobody") == 0
    assert store.get("nobody", ["other-doc-000000"]) == {}
    assert list(store.scan("nobody")) == []
    assert store.delete("nobody", ["other-doc-000000"]) == 0
    assert store.count("other") == 5


def test_search_before_any_write_is_empty(store: BaseStore) -> None:
    assert store.dimension is None
    assert store.search(T, [1.0, 2.0], 3).hits == ()


def test_scan_streams_every_document_once_in_id_order(store: BaseStore) -> None:
    batch = docs(237)
    store.upsert(T, batch)
    pages = list(store.scan(T, batch_size=50))
    assert [len(p) for p in pages] == [50, 50, 50, 50, 37]
    ids = [d.doc_id for p in pages for d in p]
    assert ids == sorted(d.doc_id for d in batch)
    hashes = {d.doc_id: d.content_hash for p in pages for d in p}
    assert hashes == {d.doc_id: d.content_hash for d in store.get(T, ids).values()}
    resumed = [d.doc_id for p in store.scan(T, batch_size=64, after=ids[99]) for d in p]
    assert resumed == ids[100:]


def test_count_and_tenants(store: BaseStore) -> None:
    store.upsert("t1", docs(5, tenant="t1"))
    store.upsert("t2", docs(3, tenant="t2"))
    store.upsert("t3", docs(2, tenant="t3"))
    store.delete("t3", [d.doc_id for d in docs(2, tenant="t3")])
    assert store.tenants() == ["t1", "t2"]
    assert (store.count("t1"), store.count("t2"), store.count("t3")) == (5, 3, 0)


UNICODE_IDS = [
    "é",
    "e\u0301",  # same look, other code points: a different id
    "中文文档",
    "emoji 🚀 id",
    "with/slash and space",
    "quote'\"; DROP TABLE docs; --",
    "percent%20and+plus",
    "x" * 200,
]


def test_unicode_ids_round_trip(store: BaseStore) -> None:
    batch = [Document(T, i, [float(n + 1), 1.0, 0.5]) for n, i in enumerate(UNICODE_IDS)]
    store.upsert(T, batch)
    assert sorted(store.get(T, UNICODE_IDS)) == sorted(UNICODE_IDS)
    scanned = [d.doc_id for p in store.scan(T, batch_size=3) for d in p]
    assert scanned == sorted(UNICODE_IDS)
    assert store.delete(T, ["é"]) == 1
    assert "e\u0301" in store.get(T, ["e\u0301"])


def test_wrong_dimension_is_refused_with_a_clear_error(store: BaseStore) -> None:
    store.upsert(T, [Document(T, "a", [1.0, 2.0, 3.0])])
    with pytest.raises(DimensionMismatch, match=r"2 dimensions.*3-dimensional"):
        store.upsert(T, [Document(T, "b", [1.0, 2.0])])
    with pytest.raises(DimensionMismatch, match="4 dimensions"):
        store.search(T, [1.0, 2.0, 3.0, 4.0], 1)
    # a new tenant cannot change the store's dimension either
    with pytest.raises(DimensionMismatch):
        store.upsert("t2", [Document("t2", "b", [1.0, 2.0])])
    assert store.count(T) == 1 and store.dimension == 3


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e39])
def test_non_finite_vectors_are_refused(store: BaseStore, bad: float) -> None:
    with pytest.raises(InvalidInput, match="not a finite number"):
        Document(T, "a", [1.0, bad])
    store.upsert(T, [Document(T, "a", [1.0, 2.0])])
    with pytest.raises(InvalidInput, match="not a finite number"):
        store.search(T, [bad, 1.0], 1)


def test_zero_vector_has_no_cosine(store: BaseStore) -> None:
    with pytest.raises(InvalidInput, match="no direction"):
        store.upsert(T, [Document(T, "z", [0.0, 0.0])])
    assert store.count(T) == 0


@pytest.mark.parametrize(
    ("tenant", "k"), [("", 1), ("bad tenant", 1), ("x" * 65, 1), ("ok", 0), ("ok", 1001)]
)
def test_bad_tenant_or_k_is_refused(store: BaseStore, tenant: str, k: int) -> None:
    with pytest.raises(InvalidInput):
        store.search(tenant, [1.0, 2.0], k)


def test_document_of_another_tenant_is_refused(store: BaseStore) -> None:
    with pytest.raises(InvalidInput, match="belongs to tenant 'b'"):
        store.upsert("a", [Document("b", "x", [1.0])])
    assert store.count("a") == 0 and store.count("b") == 0


FILTERS = [
    {"lang": "fr"},
    {"cluster": 3},
    {"cluster": 3.0},
    {"even": True},
    {"even": False, "lang": "en"},
    {"weight": 1.0},
    {"lang": "none-such"},
    {"missing_key": 1},
]


@pytest.mark.parametrize("flt", FILTERS, ids=[str(f) for f in FILTERS])
def test_filtered_search_is_exact(store: BaseStore, flt: dict[str, object]) -> None:
    corpus = clustered_corpus(T, 400, 16, queries=3, clusters=8, seed=5)
    store.upsert(T, corpus.documents)
    reference = MemoryStore()
    reference.upsert(T, corpus.documents)
    for q in corpus.queries:
        got = store.search(T, q, 10, flt)  # type: ignore[arg-type]
        want = reference.search(T, q, 10, flt)  # type: ignore[arg-type]
        assert got.doc_ids == want.doc_ids
        for hit in got.hits:
            for key, value in flt.items():
                assert hit.metadata[key] == value


def test_bool_filter_does_not_match_integers(store: BaseStore) -> None:
    store.upsert(
        T, [Document(T, "i", [1.0, 0.0], {"v": 1}), Document(T, "b", [0.0, 1.0], {"v": True})]
    )
    assert store.search(T, [1.0, 1.0], 5, {"v": True}).doc_ids == ["b"]
    assert store.search(T, [1.0, 1.0], 5, {"v": 1}).doc_ids == ["i"]


@pytest.mark.parametrize("metric", [Metric.L2, Metric.DOT])
@pytest.mark.parametrize("kind", REAL_KINDS)
def test_other_metrics_match_the_reference(
    make_store: StoreMaker, kind: str, metric: Metric
) -> None:
    corpus = clustered_corpus(T, 300, 16, queries=5, seed=11)
    store = make_store(kind, metric)
    reference = MemoryStore(metric=metric)
    store.upsert(T, corpus.documents)
    reference.upsert(T, corpus.documents)
    got = store.get(T, [corpus.documents[0].doc_id])[corpus.documents[0].doc_id]
    assert got.content_hash == corpus.documents[0].content_hash  # vectors kept as given
    for q in corpus.queries:
        a, b = store.search(T, q, 10), reference.search(T, q, 10)
        assert a.doc_ids == b.doc_ids
        assert [h.score for h in a.hits] == pytest.approx(
            [h.score for h in b.hits], rel=1e-4, abs=1e-4
        )


def test_health_reports_size(store: BaseStore) -> None:
    store.upsert("t1", docs(4, tenant="t1"))
    health = store.health()
    assert health.reachable and health.documents == 4 and health.tenants == 1
    assert health.dimension == 16 and health.metric == "cosine"


def _refusal(make_store: StoreMaker, kind: str, metric: Metric, name: str) -> str:
    """The message of the refusal to reopen store ``name`` with ``metric``: at open, or at the
    first call that reaches the engine."""
    with pytest.raises(IncompatibleStore) as info:
        reopened = make_store(kind, metric, name=name)
        reopened.search(T, docs(1, seed=2)[0].vector, 3)
        reopened.count(T)
    return str(info.value)


@pytest.mark.parametrize("kind", REAL_KINDS)
def test_reopening_with_another_metric_is_refused_naming_both(
    make_store: StoreMaker, kind: str
) -> None:
    store = make_store(kind, Metric.L2, name="m")
    store.upsert(T, docs(5))
    store.close()
    message = _refusal(make_store, kind, Metric.COSINE, "m")
    assert "'l2'" in message and "'cosine'" in message, message
    assert "RETRIEVAL_METRIC=l2" in message, message  # how to fix it
    again = make_store(kind, Metric.L2, name="m")  # the refusal changed nothing
    assert again.count(T) == 5 and again.health().metric == "l2"


@pytest.mark.parametrize("kind", ENGINE_METRIC_KINDS)
def test_the_engines_own_distance_is_checked_not_only_the_record(
    make_store: StoreMaker, kind: str
) -> None:
    """A record that says cosine over a collection or index the engine ranks by l2 (a record
    lost and remade, or edited): refused, naming the engine's distance and both metrics."""
    store = make_store(kind, Metric.L2, name="e")
    store.upsert(T, docs(5))
    location = store.location
    store.close()
    record_says(kind, location, Metric.COSINE, built=Metric.L2)
    message = _refusal(make_store, kind, Metric.COSINE, "e")
    assert "'cosine'" in message and "RETRIEVAL_METRIC=l2" in message, message
    assert "created with metric" not in message  # the engine's distance, not the record

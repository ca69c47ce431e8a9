"""OpenSearch adapter, tested at the HTTP level: client-level tests only.

No OpenSearch runs here. ``opensearch-py`` sends its real requests through the adapter to
`StubServer`, which answers with the documented response shapes; the tests assert the k-NN
mapping, the k-NN query with efficient filtering, the score conversion of each space
(https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/) and the
mapping of the client's errors. The behaviour both engines share (index per tenant, bulk,
mget, scan) is covered in depth by ``test_http_elastic.py``; here it is checked once on the
OpenSearch client.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from shadowswap.errors import IncompatibleStore, StoreError, StoreTimeout, StoreUnavailable
from shadowswap.similarity import Metric, canonical_vector
from shadowswap.stores.opensearch import SPACE, OpenSearchStore
from shadowswap.values import Document, to_vector
from tests.servers import free_port
from tests.stores.http_stubs import search_docs as os_docs
from tests.stores.http_stubs.server import Reply, StubServer, only, stub_server

T = "acme"
INDEX = "shadowswap-t-acme"
META = "shadowswap-meta"
MAPPINGS = "/shadowswap-t-\\*/_mapping/field/vector"  # every tenant index's vector field


@pytest.fixture
def stub() -> Iterator[StubServer]:
    yield from stub_server()


def open_store(stub: StubServer, metric: Metric = Metric.COSINE, url: str = "") -> OpenSearchStore:
    return OpenSearchStore(url or stub.url, metric, timeout_s=2.0)


def knn_mapping(space: str | None, *, in_method: bool = True) -> dict[str, Any]:
    """A tenant index's vector field: ``space`` in its method (as the adapter maps it) or on
    the field itself (OpenSearch 2.17+), or unset (None)."""
    method: dict[str, Any] = {"name": "hnsw", "engine": "lucene"}
    mapping: dict[str, Any] = {"type": "knn_vector", "dimension": 3, "method": method}
    if space is not None:
        (method if in_method else mapping)["space_type"] = space
    return mapping


def known(stub: StubServer, dimension: int = 3, metric: str = "cosine") -> None:
    stub.on(
        "GET",
        f"/{META}/_doc/store",
        os_docs.found(META, "store", {"format": "1", "metric": metric, "dimension": dimension}),
    )
    stub.on("GET", MAPPINGS, os_docs.field_mappings({INDEX: knn_mapping(SPACE[Metric(metric)])}))


SPACES = [
    # metric, space_type, _score answered, our score (k-NN "Spaces" reference)
    (Metric.COSINE, "cosinesimil", 0.75, 0.5),  # (2 - d) / 2 with d = 1 - cos
    (Metric.DOT, "innerproduct", 1.25, 0.25),  # lucene: x + 1 for x > 0
    (Metric.DOT, "innerproduct", 0.5, -1.0),  # lucene: 1 / (1 - x) for x <= 0
    (Metric.L2, "l2", 0.25, -3.0),  # 1 / (1 + d), d the squared distance
]


@pytest.mark.parametrize(("metric", "space", "os_score", "score"), SPACES)
def test_first_write_maps_a_lucene_knn_vector_and_search_converts_its_scores(
    stub: StubServer, metric: Metric, space: str, os_score: float, score: float
) -> None:
    stub.on("GET", f"/{META}/_doc/store", os_docs.index_missing(META))
    stub.on("GET", MAPPINGS, os_docs.field_mappings({}))
    stub.on("PUT", f"/{META}", os_docs.acknowledged(META))
    stub.on("PUT", f"/{META}/_create/store", os_docs.created(META, "store"))
    stub.on("PUT", f"/{INDEX}", os_docs.acknowledged(INDEX))
    stub.on("POST", f"/{INDEX}/_mget", lambda r: os_docs.mget_index_missing(INDEX, r))
    stub.on("POST", "/_bulk", os_docs.bulk_ok)
    store = open_store(stub, metric)
    store.upsert(T, [Document(T, "a", [0.0, 3.0, 4.0], {"lang": "en"})])

    created = only(stub.calls("PUT", f"/{INDEX}")).json()
    assert created["settings"] == {"index": {"knn": True}}
    assert created["mappings"]["properties"]["vector"] == {
        "type": "knn_vector",
        "dimension": 3,
        "method": {
            "name": "hnsw",
            "engine": "lucene",
            "space_type": space,
            "parameters": {"m": 16, "ef_construction": 100},
        },
    }
    bulk = only(stub.calls("POST", "/_bulk"))
    assert bulk.param("refresh") == "wait_for"
    assert [line.get("index") for line in bulk.ndjson()[::2]] == [{"_index": INDEX, "_id": "a"}]

    source = {"doc_id": "a", "payload": {"meta": '{"lang":"en"}'}}
    stub.on("POST", f"/{INDEX}/_search", os_docs.search_hits(INDEX, [("a", os_score, source)]))
    hits = store.search(T, [0.0, 3.0, 4.0], 7, {"lang": "en"}).hits
    assert [(h.doc_id, h.score) for h in hits] == [("a", pytest.approx(score, abs=1e-9))]
    vector = [0.0, 3.0, 4.0]
    if metric is Metric.COSINE:
        vector = [float(x) for x in canonical_vector(to_vector(vector), metric)]
    assert only(stub.calls("POST", f"/{INDEX}/_search")).json() == {
        "query": {
            "knn": {
                "vector": {
                    "vector": vector,
                    "k": 100,  # at least 100 candidates; size cuts to k
                    "filter": {"bool": {"filter": [{"term": {"tokens": "lang:s:en"}}]}},
                }
            }
        },
        "size": 7,
        "_source": ["doc_id", "payload.meta"],
    }


def test_unchanged_content_sends_no_bulk_and_delete_counts(stub: StubServer) -> None:
    known(stub)
    doc = Document(T, "a", [0.0, 0.6, 0.8])  # unit already: stored as is
    held = {"a": {"hash": doc.content_hash}}
    stub.on("POST", f"/{INDEX}/_mget", lambda r: os_docs.mget_docs(INDEX, r, held))
    stub.on("POST", "/_bulk", lambda r: os_docs.bulk_ok(r, deleted=["a"]))
    store = open_store(stub)
    assert store.upsert(T, [doc]).unchanged == 1
    assert stub.calls("POST", "/_bulk") == []
    assert store.delete(T, ["a", "b"]) == 1
    assert only(stub.calls("POST", "/_bulk")).ndjson() == [
        {"delete": {"_index": INDEX, "_id": "a"}},
        {"delete": {"_index": INDEX, "_id": "b"}},
    ]


def test_basic_auth_comes_from_the_url_and_401_names_the_variable(stub: StubServer) -> None:
    known(stub)
    stub.on("POST", f"/{INDEX}/_count", os_docs.error(401, "security_exception", "no"))
    store = open_store(stub, url=stub.url.replace("http://", "http://admin:Adm1n%21@"))
    with pytest.raises(StoreUnavailable) as info:
        store.count(T)
    assert "RETRIEVAL_OPENSEARCH_URL" in str(info.value) and "Adm1n" not in str(info.value)
    auth = only(stub.calls("POST", f"/{INDEX}/_count")).headers["authorization"]
    assert auth == "Basic " + base64.b64encode(b"admin:Adm1n!").decode()


@pytest.mark.parametrize(
    ("status", "kind", "error", "calls"),
    [
        (429, "rejected_execution_exception", StoreUnavailable, 3),  # retried twice
        (503, "cluster_manager_not_discovered_exception", StoreUnavailable, 3),
        (500, "exception", StoreUnavailable, 1),
        (400, "illegal_argument_exception", StoreError, 1),
        (403, "security_exception", StoreUnavailable, 1),
    ],
)
def test_error_statuses_map_to_store_errors(
    stub: StubServer, status: int, kind: str, error: type[StoreError], calls: int
) -> None:
    known(stub)
    stub.on("POST", f"/{INDEX}/_count", os_docs.error(status, kind, "details here"))
    with pytest.raises(error) as info:
        open_store(stub).count(T)
    assert f"HTTP {status}" in str(info.value) and kind in str(info.value)
    assert type(info.value) is error
    assert len(stub.calls("POST", f"/{INDEX}/_count")) == calls


def test_missing_index_reads_as_empty(stub: StubServer) -> None:
    known(stub)
    stub.on("POST", f"/{INDEX}/_count", os_docs.index_missing(INDEX))
    stub.on("POST", f"/{INDEX}/_search", os_docs.index_missing(INDEX))
    stub.on("POST", f"/{INDEX}/_mget", lambda r: os_docs.mget_index_missing(INDEX, r))
    store = open_store(stub)
    assert store.count(T) == 0
    assert store.search(T, [1.0, 0.0, 0.0], 3).hits == ()
    assert store.get(T, ["a"]) == {}
    assert list(store.scan(T)) == []


def test_timeout_and_connection_refused(stub: StubServer) -> None:
    known(stub)
    stub.on("POST", f"/{INDEX}/_count", Reply(200, {"count": 1}, delay_s=1.5))
    with pytest.raises(StoreTimeout):
        OpenSearchStore(stub.url, Metric.COSINE, timeout_s=0.3).count(T)
    dead = OpenSearchStore(f"http://127.0.0.1:{free_port()}", Metric.COSINE, timeout_s=2.0)
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        dead.count(T)
    assert "cannot reach" in dead.health().detail


@pytest.mark.parametrize(
    ("metric", "mapping", "held"),
    [
        (Metric.COSINE, knn_mapping("l2"), "l2"),
        (Metric.COSINE, knn_mapping("innerproduct", in_method=False), "innerproduct"),
        (Metric.COSINE, knn_mapping(None), "l2"),  # unset: the documented default
        (Metric.L2, knn_mapping("cosinesimil"), "cosinesimil"),
    ],
)
def test_a_tenant_index_of_another_space_is_refused_whatever_the_record_says(
    stub: StubServer, metric: Metric, mapping: dict[str, Any], held: str
) -> None:
    """Issue 15: the record agrees with RETRIEVAL_METRIC, the tenant index's space_type does
    not: refused before any search, naming the space and both metrics."""
    known(stub, metric=metric.value)
    stub.on("GET", MAPPINGS, os_docs.field_mappings({INDEX: mapping}))
    with pytest.raises(IncompatibleStore) as info:
        open_store(stub, metric).search(T, [1.0, 0.0, 0.0], 1)
    message = str(info.value)
    assert f"index '{INDEX}'" in message and f"space_type '{held}'" in message
    assert f"RETRIEVAL_METRIC is '{metric.value}', which needs space_type '{SPACE[metric]}'" in (
        message
    )
    assert "index_prefix in RETRIEVAL_OPENSEARCH_URL" in message
    assert stub.calls("POST", f"/{INDEX}/_search") == []


def test_a_model_based_field_cannot_be_checked_and_is_let_through(
    stub: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    known(stub)
    stub.on(
        "GET",
        MAPPINGS,
        os_docs.field_mappings({INDEX: {"type": "knn_vector", "model_id": "my-model"}}),
    )
    stub.on("POST", f"/{INDEX}/_search", os_docs.search_hits(INDEX, []))
    assert open_store(stub).search(T, [1.0, 0.0, 0.0], 1).hits == ()
    assert "does not report its space_type" in caplog.text

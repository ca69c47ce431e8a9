"""Elasticsearch adapter, tested at the HTTP level: client-level tests only.

No Elasticsearch runs here. The official 9.x client sends its real requests through the
adapter to `StubServer`; each test scripts Elasticsearch's documented answers
(`tests.stores.http_stubs.search_docs`) and asserts the requests: paths, query parameters,
headers and JSON/NDJSON bodies. What this proves and what it cannot is in docs/stores-http.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from shadowswap.errors import (
    DimensionMismatch,
    IncompatibleStore,
    InvalidInput,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.similarity import Metric, canonical_vector
from shadowswap.stores.elastic import SIMILARITY, ElasticStore
from shadowswap.stores.tokens import tokens
from shadowswap.values import Document, to_vector
from tests.servers import free_port
from tests.stores.http_stubs import search_docs as es
from tests.stores.http_stubs.server import Recorded, Reply, StubServer, only, stub_server

T = "acme"
INDEX = "shadowswap-t-acme"
META = "shadowswap-meta"
#: the vector field mapping of every tenant index, read once by the first call that needs the
#: store's dimension (the stub sees the path decoded)
MAPPINGS = "/shadowswap-t-\\*/_mapping/field/vector"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    yield from stub_server(es.ELASTIC_HEADERS)


def open_store(stub: StubServer, metric: Metric = Metric.COSINE, url: str = "") -> ElasticStore:
    return ElasticStore(url or stub.url, metric, timeout_s=2.0)


def vector_mapping(similarity: str | None, dimension: int = 3) -> dict[str, Any]:
    """A tenant index's vector field as the adapter maps it (``similarity`` None: unset)."""
    mapping: dict[str, Any] = {
        "type": "dense_vector",
        "dims": dimension,
        "index": True,
        "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
    }
    if similarity is not None:
        mapping["similarity"] = similarity
    return mapping


def known(stub: StubServer, dimension: int = 3, metric: str = "cosine") -> None:
    """Script a store that exists: its meta document says format 1, metric, dimension, and
    its tenant index is mapped with that metric's similarity."""
    stub.on(
        "GET",
        f"/{META}/_doc/store",
        es.found(META, "store", {"format": "1", "metric": metric, "dimension": dimension}),
    )
    similarity = SIMILARITY[Metric(metric)]
    stub.on("GET", MAPPINGS, es.field_mappings({INDEX: vector_mapping(similarity, dimension)}))


def new_store(stub: StubServer) -> None:
    """Script a store not made yet: no meta document, no tenant index."""
    stub.on("GET", f"/{META}/_doc/store", es.index_missing(META))
    stub.on("GET", MAPPINGS, es.field_mappings({}))


def holding(stub: StubServer, index: str, held: dict[str, dict[str, Any]]) -> None:
    stub.on("POST", f"/{index}/_mget", lambda r: es.mget_docs(index, r, held))


def docs() -> list[Document]:
    return [
        Document(T, "a", [3.0, 4.0, 0.0], {"lang": "en", "n": 7, "big": 2**62, "ok": True}),
        Document(T, "b", [0.0, 1.0, 0.0], {"lang": "fr", "x": 0.5}, text=""),
    ]


def canonical(doc: Document) -> Document:
    """The document as a cosine store keeps it (unit vector), hence its stored hash."""
    return doc.with_vector(canonical_vector(doc.vector, Metric.COSINE))


def unit(values: list[float]) -> list[float]:
    return [float(x) for x in canonical_vector(to_vector(values), Metric.COSINE)]


# -- writes -------------------------------------------------------------------------------
def test_first_write_records_the_store_then_maps_the_tenant_index_then_bulks(
    stub: StubServer,
) -> None:
    new_store(stub)
    stub.on("PUT", f"/{META}", es.acknowledged(META))
    stub.on("PUT", f"/{META}/_create/store", es.created(META, "store"))
    stub.on("PUT", f"/{INDEX}", es.acknowledged(INDEX))
    stub.on("POST", f"/{INDEX}/_mget", lambda r: es.mget_index_missing(INDEX, r))
    stub.on("PUT", "/_bulk", es.bulk_ok)
    store = open_store(stub)

    report = store.upsert(T, docs())

    assert (report.written, report.unchanged) == (2, 0)
    assert [f"{r.method} {r.path}" for r in stub.requests] == [
        f"GET /{META}/_doc/store",  # the store's dimension: unknown (read once)
        "GET /shadowswap-t-*/_mapping/field/vector",  # no tenant index of another metric
        f"PUT /{META}",
        f"PUT /{META}/_create/store",
        f"POST /{INDEX}/_mget",  # hashes held: none, the index does not exist yet
        f"PUT /{INDEX}",
        "PUT /_bulk",
    ]
    meta_doc = only(stub.calls("PUT", f"/{META}/_create/store"))
    assert meta_doc.json() == {"format": "1", "metric": "cosine", "dimension": 3}
    assert meta_doc.param("refresh") == "wait_for"
    assert only(stub.calls("PUT", f"/{META}")).json() == {"mappings": {"enabled": False}}

    mapping = only(stub.calls("PUT", f"/{INDEX}")).json()["mappings"]
    assert mapping["dynamic"] == "strict"
    assert mapping["_meta"] == {"shadowswap": {"format": "1", "tenant": T}}
    assert mapping["properties"] == {
        "doc_id": {"type": "keyword"},
        "hash": {"type": "keyword", "index": False},
        "tokens": {"type": "keyword"},
        "vector": {
            "type": "dense_vector",
            "dims": 3,
            "index": True,
            "similarity": "dot_product",
            # explicit: Elasticsearch 9.1 would otherwise quantize (int8_hnsw / bbq_hnsw)
            "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
        },
        "payload": {"type": "object", "enabled": False},
    }

    mget = only(stub.calls("POST", f"/{INDEX}/_mget"))
    assert mget.json() == {"ids": ["a", "b"]} and mget.query["_source"] == ["hash"]

    bulk = only(stub.calls("PUT", "/_bulk"))
    assert bulk.param("refresh") == "wait_for"
    assert bulk.headers["content-type"].startswith("application/vnd.elasticsearch+x-ndjson")
    lines = bulk.ndjson()
    assert lines[0] == {"index": {"_index": INDEX, "_id": "a"}}
    a = lines[1]
    assert a["doc_id"] == "a" and a["hash"] == canonical(docs()[0]).content_hash
    assert a["tokens"] == ["big:n:4611686018427387904", "lang:s:en", "n:n:7", "ok:b:true"]
    assert a["vector"] == unit([3.0, 4.0, 0.0])
    raw = np.frombuffer(base64.b64decode(a["payload"]["vector"]), dtype="<f4")
    assert raw.tolist() == a["vector"]  # the exact float32 copy
    assert json.loads(a["payload"]["meta"]) == {"big": 2**62, "lang": "en", "n": 7, "ok": True}
    assert a["payload"]["text"] is None and lines[3]["payload"]["text"] == ""


def test_unchanged_content_sends_no_bulk(stub: StubServer) -> None:
    known(stub)
    batch = docs()
    holding(stub, INDEX, {d.doc_id: {"hash": canonical(d).content_hash} for d in batch})
    store = open_store(stub)

    report = store.upsert(T, batch)

    assert (report.written, report.unchanged) == (0, 2)
    assert stub.calls("PUT", "/_bulk") == [] and stub.calls("PUT", f"/{INDEX}") == []


def test_new_content_replaces_the_whole_document(stub: StubServer) -> None:
    known(stub)
    old = Document(T, "a", [1.0, 0.0, 0.0], {"old": 1, "keep": "x"}, text="v1")
    new = Document(T, "a", [0.0, 0.0, 1.0], {"keep": "y"})
    holding(stub, INDEX, {"a": {"hash": old.content_hash}})
    stub.on("PUT", f"/{INDEX}", es.error(400, "resource_already_exists_exception", "exists"))
    stub.on("PUT", "/_bulk", es.bulk_ok)

    assert open_store(stub).upsert(T, [new]).written == 1

    action, source = only(stub.calls("PUT", "/_bulk")).ndjson()
    assert action == {"index": {"_index": INDEX, "_id": "a"}}  # index = replace, not update
    assert json.loads(source["payload"]["meta"]) == {"keep": "y"}
    assert source["tokens"] == ["keep:s:y"] and source["payload"]["text"] is None


def test_a_failed_bulk_item_raises_with_the_engine_reason(stub: StubServer) -> None:
    known(stub)
    holding(stub, INDEX, {})
    stub.on("PUT", f"/{INDEX}", es.acknowledged(INDEX))
    stub.on(
        "PUT",
        "/_bulk",
        lambda r: es.bulk_item_error(
            r, 400, "document_parsing_exception", "[1:12] failed to parse field [vector]"
        ),
    )
    with pytest.raises(StoreError) as info:
        open_store(stub).upsert(T, docs())
    message = str(info.value)
    assert "1 of 2 bulk items failed" in message and "document_parsing_exception" in message
    assert not isinstance(info.value, StoreUnavailable)


def test_rejected_bulk_items_are_reported_as_a_busy_store(stub: StubServer) -> None:
    known(stub)
    holding(stub, INDEX, {})
    stub.on("PUT", f"/{INDEX}", es.acknowledged(INDEX))
    stub.on(
        "PUT",
        "/_bulk",
        lambda r: es.bulk_item_error(r, 429, "es_rejected_execution_exception", "queue full"),
    )
    with pytest.raises(StoreUnavailable, match="rate limiting"):
        open_store(stub).upsert(T, docs())


def test_a_second_dimension_is_refused_when_another_writer_recorded_one(stub: StubServer) -> None:
    stub.on("GET", MAPPINGS, es.field_mappings({}))
    stub.on(
        "GET",
        f"/{META}/_doc/store",
        es.index_missing(META),  # read once by the upsert: no dimension yet
        es.found(META, "store", {"format": "1", "metric": "cosine", "dimension": 5}),
    )
    stub.on("PUT", f"/{META}", es.error(400, "resource_already_exists_exception", "exists"))
    stub.on(
        "PUT", f"/{META}/_create/store", es.error(409, "version_conflict_engine_exception", "x")
    )
    with pytest.raises(DimensionMismatch):
        open_store(stub).upsert(T, docs())
    assert stub.calls("PUT", "/_bulk") == []


def test_vectors_beyond_the_engine_limit_are_refused_before_any_write(stub: StubServer) -> None:
    new_store(stub)
    with pytest.raises(InvalidInput, match="at most 4096"):
        open_store(stub).upsert(T, [Document(T, "a", [1.0] * 4097)])
    assert {r.method for r in stub.requests} == {"GET"}


# -- reads --------------------------------------------------------------------------------
SCORES = [
    # metric, similarity in the mapping, _score answered, our score (dense-vector reference)
    (Metric.COSINE, "dot_product", 0.9, 0.8),  # (1 + x) / 2
    (Metric.DOT, "max_inner_product", 3.5, 2.5),  # x + 1 for x >= 0
    (Metric.DOT, "max_inner_product", 0.25, -3.0),  # 1 / (1 - x) for x < 0
    (Metric.L2, "l2_norm", 0.2, -4.0),  # 1 / (1 + d²)
]


@pytest.mark.parametrize(("metric", "similarity", "es_score", "score"), SCORES)
def test_search_sends_knn_with_the_filter_inside_and_converts_scores(
    stub: StubServer, metric: Metric, similarity: str, es_score: float, score: float
) -> None:
    known(stub, metric=metric.value)
    source = {"doc_id": "a", "payload": {"meta": '{"lang":"en","n":7}'}}
    stub.on("POST", f"/{INDEX}/_search", es.search_hits(INDEX, [("a", es_score, source)]))
    store = open_store(stub, metric)

    result = store.search(T, [3.0, 4.0, 0.0], 5, {"lang": "en", "n": 7.0})

    assert [(h.doc_id, h.score, dict(h.metadata)) for h in result.hits] == [
        ("a", pytest.approx(score, abs=1e-9), {"lang": "en", "n": 7})
    ]
    body = only(stub.calls("POST", f"/{INDEX}/_search")).json()
    query = [3.0, 4.0, 0.0] if metric is not Metric.COSINE else unit([3.0, 4.0, 0.0])
    assert body == {
        "knn": {
            "field": "vector",
            "query_vector": query,
            "k": 5,
            "num_candidates": 100,
            "filter": {
                "bool": {
                    "filter": [{"term": {"tokens": "lang:s:en"}}, {"term": {"tokens": "n:n:7"}}]
                }
            },
        },
        "track_total_hits": False,
        "size": 5,
        "_source": ["doc_id", "payload.meta"],
    }
    assert store._vector_mapping(3)["similarity"] == similarity


def test_hits_that_do_not_match_the_exact_filter_are_dropped(stub: StubServer) -> None:
    known(stub)
    hits = [
        ("a", 0.9, {"doc_id": "a", "payload": {"meta": '{"flag":true}'}}),
        ("b", 0.8, {"doc_id": "b", "payload": {"meta": '{"flag":1}'}}),  # 1 is not True
    ]
    stub.on("POST", f"/{INDEX}/_search", es.search_hits(INDEX, hits))
    result = open_store(stub).search(T, [1.0, 0.0, 0.0], 2, {"flag": True})
    assert result.doc_ids == ["a"]
    body = only(stub.calls("POST", f"/{INDEX}/_search")).json()
    assert body["knn"]["filter"] == {"bool": {"filter": [{"term": {"tokens": "flag:b:true"}}]}}


def test_searching_a_tenant_without_index_returns_nothing(stub: StubServer) -> None:
    known(stub)
    stub.on("POST", f"/{INDEX}/_search", es.index_missing(INDEX))
    assert open_store(stub).search(T, [1.0, 0.0, 0.0], 3).hits == ()


def test_every_tenant_request_names_only_that_tenants_index(stub: StubServer) -> None:
    known(stub)
    index = "shadowswap-t-_acme__1"  # "Acme_1": upper case and _ written one-to-one
    holding(stub, index, {})
    stub.on("PUT", f"/{index}", es.acknowledged(index))
    stub.on("PUT", "/_bulk", es.bulk_ok)
    stub.on("POST", f"/{index}/_search", es.search_hits(index, []))
    stub.on("POST", f"/{index}/_count", es.count(1))
    store = open_store(stub)
    tenant = "Acme_1"
    store.upsert(tenant, [Document(tenant, "a", [1.0, 0.0, 0.0])])
    store.search(tenant, [1.0, 0.0, 0.0], 1)
    store.get(tenant, ["a"])
    store.count(tenant)
    list(store.scan(tenant))
    for request in stub.requests:
        if request.path.startswith(f"/{META}") or request.path == MAPPINGS.replace("\\", ""):
            continue  # the store record, and the vector mapping of every tenant index (no data)
        if request.path == "/_bulk":
            assert {line["index"]["_index"] for line in request.ndjson()[::2]} == {index}
        else:
            assert request.path.split("/")[1] == index
    assert store.tenant_of(index) == tenant and store.index_name("acme_1") != index


def test_get_returns_exactly_what_was_written(stub: StubServer) -> None:
    """Elasticsearch returns ``_source`` as it was indexed, so feed the bulk line back."""
    new_store(stub)
    stub.on("PUT", f"/{META}", es.acknowledged(META))
    stub.on("PUT", f"/{META}/_create/store", es.created(META, "store"))
    stub.on("PUT", f"/{INDEX}", es.acknowledged(INDEX))
    holding(stub, INDEX, {})
    stub.on("PUT", "/_bulk", es.bulk_ok)
    store = open_store(stub)
    written = docs()
    store.upsert(T, written)
    lines = only(stub.calls("PUT", "/_bulk")).ndjson()
    held = {line["doc_id"]: line for line in lines[1::2]}
    holding(stub, INDEX, held)

    got = store.get(T, ["b", "missing", "a"])

    assert list(got) == ["b", "a"]
    for doc in written:
        assert got[doc.doc_id].content_hash == canonical(doc).content_hash
    assert type(got["a"].metadata["n"]) is int and got["a"].metadata["big"] == 2**62
    assert got["b"].text == "" and got["a"].text is None
    mget = stub.calls("POST", f"/{INDEX}/_mget")[-1]
    assert mget.query["_source"] == ["doc_id,hash,payload"]


def test_a_failed_mget_item_is_an_error_not_a_missing_document(stub: StubServer) -> None:
    known(stub)
    stub.on(
        "POST",
        f"/{INDEX}/_mget",
        Reply(
            200,
            {
                "docs": [
                    {
                        "_index": INDEX,
                        "_id": "a",
                        "error": {"type": "index_closed_exception", "reason": "closed"},
                    }
                ]
            },
        ),
    )
    with pytest.raises(StoreError, match="index_closed_exception"):
        open_store(stub).get(T, ["a"])


def test_scan_sorts_by_doc_id_and_pages_with_search_after(stub: StubServer) -> None:
    known(stub)
    written = [Document(T, i, [1.0, float(n), 0.0]) for n, i in enumerate(["a", "b", "é"])]
    sources = [ElasticStore._source(open_store(stub), d) for d in written]  # what was indexed
    stub.on(
        "POST",
        f"/{INDEX}/_search",
        es.search_hits(INDEX, [(s["doc_id"], None, s) for s in sources[:2]]),
        es.search_hits(INDEX, [(sources[2]["doc_id"], None, sources[2])]),
    )
    pages = list(open_store(stub).scan(T, batch_size=2, after="0"))
    assert [[d.doc_id for d in p] for p in pages] == [["a", "b"], ["é"]]
    first, second = (r.json() for r in stub.calls("POST", f"/{INDEX}/_search"))
    assert first == {
        "size": 2,
        "query": {"match_all": {}},
        "sort": [{"doc_id": "asc"}],
        "_source": ["doc_id", "hash", "payload"],
        "track_total_hits": False,
        "search_after": ["0"],
    }
    assert second["search_after"] == ["b"]


def test_delete_counts_only_documents_that_existed(stub: StubServer) -> None:
    known(stub)
    stub.on("PUT", "/_bulk", lambda r: es.bulk_ok(r, deleted=["a"]))
    assert open_store(stub).delete(T, ["a", "ghost", "a"]) == 1
    bulk = only(stub.calls("PUT", "/_bulk"))
    assert bulk.param("refresh") == "wait_for"
    assert bulk.ndjson() == [
        {"delete": {"_index": INDEX, "_id": "a"}},
        {"delete": {"_index": INDEX, "_id": "ghost"}},
    ]


def test_tenants_lists_non_empty_tenant_indexes_only(stub: StubServer) -> None:
    known(stub)
    stub.on(
        "GET",
        "/shadowswap-t-\\*/_alias",
        Reply(
            200,
            {
                "shadowswap-t-acme": {"aliases": {}},
                "shadowswap-t-_beta": {"aliases": {}},
                "shadowswap-t-empty": {"aliases": {}},
            },
        ),
    )
    stub.on("POST", "/shadowswap-t-acme/_count", es.count(3))
    stub.on("POST", "/shadowswap-t-_beta/_count", es.count(2))
    stub.on("POST", "/shadowswap-t-empty/_count", es.count(0))
    health = open_store(stub).health()
    assert health.reachable and (health.tenants, health.documents) == (2, 5)
    assert open_store(stub).tenants() == ["Beta", "acme"]


# -- failures -----------------------------------------------------------------------------
def test_auth_refusal_names_the_variable_and_hides_the_password(stub: StubServer) -> None:
    known(stub)
    stub.on(
        "POST",
        f"/{INDEX}/_count",
        es.error(401, "security_exception", "unable to authenticate user [ops]"),
    )
    url = stub.url.replace("http://", "http://ops:s3cret@")
    store = open_store(stub, url=url)
    with pytest.raises(StoreUnavailable) as info:
        store.count(T)
    message = str(info.value)
    assert "RETRIEVAL_ELASTIC_URL" in message and "HTTP 401" in message
    assert "s3cret" not in message and "s3cret" not in store.location
    auth = only(stub.calls("POST", f"/{INDEX}/_count")).headers["authorization"]
    assert auth == "Basic " + base64.b64encode(b"ops:s3cret").decode()


def test_an_api_key_is_sent_as_apikey_authorization(stub: StubServer) -> None:
    known(stub)
    stub.on("POST", f"/{INDEX}/_count", es.error(403, "security_exception", "action denied"))
    store = open_store(stub, url=stub.url + "?api_key=aWQ6a2V5")
    with pytest.raises(StoreUnavailable, match="denied this operation"):
        store.count(T)
    assert (
        only(stub.calls("POST", f"/{INDEX}/_count")).headers["authorization"] == "ApiKey aWQ6a2V5"
    )
    assert "aWQ6a2V5" not in store.location


def test_429_is_retried_twice_then_reported_as_rate_limiting(stub: StubServer) -> None:
    known(stub)
    stub.on("POST", f"/{INDEX}/_count", es.error(429, "es_rejected_execution_exception", "busy"))
    with pytest.raises(StoreUnavailable, match="rate limiting"):
        open_store(stub).count(T)
    assert len(stub.calls("POST", f"/{INDEX}/_count")) == 3


def test_a_server_error_is_unavailable_and_a_retry_can_succeed(stub: StubServer) -> None:
    known(stub)
    stub.on(
        "POST",
        f"/{INDEX}/_count",
        es.error(503, "cluster_block_exception", "blocked"),
        es.count(4),
    )
    assert open_store(stub).count(T) == 4  # the client's own retry
    stub.on("POST", f"/{INDEX}/_count", es.error(500, "exception", "boom"))
    with pytest.raises(StoreUnavailable, match="HTTP 500"):
        open_store(stub).count(T)


def test_no_answer_in_time_is_a_timeout(stub: StubServer) -> None:
    known(stub)
    stub.on("POST", f"/{INDEX}/_count", Reply(200, {"count": 1}, delay_s=1.5))
    store = ElasticStore(stub.url, Metric.COSINE, timeout_s=0.3)
    with pytest.raises(StoreTimeout):
        store.count(T)


def test_connection_refused_is_unavailable_and_health_says_cannot_reach() -> None:
    store = ElasticStore(f"http://127.0.0.1:{free_port()}", Metric.COSINE, timeout_s=2.0)
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        store.count(T)
    health = store.health()
    assert not health.reachable and "cannot reach" in health.detail


def test_an_elasticsearch_8_server_is_reported_with_the_fix(stub: StubServer) -> None:
    stub.on(
        "GET",
        f"/{META}/_doc/store",
        es.error(
            400,
            "media_type_header_exception",
            "Invalid media-type value on headers [Accept, Content-Type]",
        ),
    )
    with pytest.raises(IncompatibleStore, match="elasticsearch>=8,<9"):
        open_store(stub).upsert(T, docs())


def test_a_server_that_is_not_elasticsearch_is_refused() -> None:
    stub = StubServer()  # no X-Elastic-Product header
    try:
        stub.on("POST", f"/{INDEX}/_count", es.count(1))
        with pytest.raises(IncompatibleStore, match="X-Elastic-Product"):
            ElasticStore(stub.url, Metric.COSINE, timeout_s=2.0).count(T)
    finally:
        stub.close()


def test_a_store_made_with_another_metric_is_refused(stub: StubServer) -> None:
    known(stub, metric="l2")
    with pytest.raises(IncompatibleStore, match="RETRIEVAL_METRIC=l2"):
        open_store(stub).search(T, [1.0, 0.0, 0.0], 1)


def test_a_tenant_index_of_another_similarity_is_refused_whatever_the_record_says(
    stub: StubServer,
) -> None:
    """Issue 15: the record says cosine, the tenant index ranks by l2_norm: the store must not
    rank by l2 while reporting cosine (nor report itself healthy)."""
    known(stub)
    stub.on(
        "GET",
        MAPPINGS,
        es.field_mappings(
            {
                INDEX: vector_mapping("l2_norm"),
                "shadowswap-t-other": vector_mapping("dot_product"),
                "shadowswap-t-nofield": None,  # not ours: no vector field
                "shadowswap-t-Bad": vector_mapping("l2_norm"),  # not a tenant index name
            }
        ),
    )
    store = open_store(stub)
    with pytest.raises(IncompatibleStore) as info:
        store.search(T, [1.0, 0.0, 0.0], 1)
    message = str(info.value)
    assert f"index '{INDEX}'" in message and "similarity 'l2_norm' (metric 'l2')" in message
    assert "RETRIEVAL_METRIC is 'cosine', which needs similarity 'dot_product' or 'cosine'" in (
        message
    )
    assert "set RETRIEVAL_METRIC=l2, or pick another index_prefix in RETRIEVAL_ELASTIC_URL" in (
        message
    )
    assert stub.calls("POST", f"/{INDEX}/_search") == []
    stub.on("GET", "/shadowswap-t-\\*/_alias", Reply(200, {INDEX: {"aliases": {}}}))
    stub.on("POST", f"/{INDEX}/_count", es.count(3))
    health = store.health()
    assert not health.reachable and health.metric is None and "l2_norm" in health.detail


def test_a_lost_record_over_an_index_of_another_similarity_is_refused_before_any_write(
    stub: StubServer,
) -> None:
    """No meta document (lost), a tenant index mapped for l2: a cosine backfill into it must
    stop before recording cosine for the store or writing a document."""
    stub.on("GET", f"/{META}/_doc/store", es.index_missing(META))
    stub.on("GET", MAPPINGS, es.field_mappings({INDEX: vector_mapping("l2_norm")}))
    with pytest.raises(
        IncompatibleStore, match=r"'l2_norm' \(metric 'l2'\) but RETRIEVAL_METRIC is"
    ):
        open_store(stub).upsert(T, docs())
    assert {r.method for r in stub.requests} == {"GET"}


@pytest.mark.parametrize(
    ("metric", "similarity", "accepted"),
    [
        (Metric.COSINE, "cosine", True),  # scores our unit vectors as dot_product does
        (Metric.COSINE, None, True),  # unset: the dense_vector default, cosine
        (Metric.L2, None, False),
        (Metric.DOT, "dot_product", False),  # would refuse non-unit vectors, scores differ
        (Metric.DOT, "max_inner_product", True),
    ],
)
def test_which_similarities_each_metric_runs_on(
    stub: StubServer, metric: Metric, similarity: str | None, accepted: bool
) -> None:
    known(stub, metric=metric.value)
    stub.on("GET", MAPPINGS, es.field_mappings({INDEX: vector_mapping(similarity)}))
    stub.on("POST", f"/{INDEX}/_search", es.search_hits(INDEX, []))
    store = open_store(stub, metric)
    if accepted:
        assert store.search(T, [1.0, 0.0, 0.0], 1).hits == ()
        assert store.search(T, [0.0, 1.0, 0.0], 1).hits == ()
        assert only(stub.calls("GET", MAPPINGS)).query == {}  # read once per handle
    else:
        with pytest.raises(IncompatibleStore, match=f"RETRIEVAL_METRIC is '{metric.value}'"):
            store.search(T, [1.0, 0.0, 0.0], 1)


def test_bad_locations_are_refused_with_the_variable() -> None:
    from shadowswap.errors import ConfigError

    with pytest.raises(ConfigError, match="RETRIEVAL_ELASTIC_URL"):
        ElasticStore("./data/es")
    with pytest.raises(ConfigError, match="unknown parameter 'apikey'"):
        ElasticStore("https://es:9200?apikey=x")


def _request_tokens(request: Recorded) -> list[str]:
    return [c["term"]["tokens"] for c in request.json()["knn"]["filter"]["bool"]["filter"]]


def test_filter_tokens_are_the_records_tokens(stub: StubServer) -> None:
    known(stub)
    stub.on("POST", f"/{INDEX}/_search", es.search_hits(INDEX, []))
    flt = {"s": "x", "i": 3, "f": 0.5, "b": False}
    open_store(stub).search(T, [1.0, 0.0, 0.0], 1, flt)
    assert _request_tokens(only(stub.calls("POST", f"/{INDEX}/_search"))) == tokens(flt)

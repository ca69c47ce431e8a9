"""Pinecone adapter, tested at the HTTP level: client-level tests only.

Pinecone is a hosted service. The official ``pinecone`` SDK (10.x, REST over httpx) sends its
real data-plane requests through the adapter to `StubServer`; each test scripts Pinecone's
documented answers (`tests.stores.http_stubs.pinecone_docs`) and asserts the requests: paths,
query strings, headers and JSON bodies. What this proves and what it cannot is in
docs/stores-http.md.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shadowswap.errors import (
    ConfigError,
    IncompatibleStore,
    InvalidInput,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.similarity import Metric, canonical_vector
from shadowswap.stores.pinecone import PineconeStore, record_id
from shadowswap.values import Document, to_vector
from tests.servers import free_port
from tests.stores.http_stubs import pinecone_docs as pc
from tests.stores.http_stubs.server import Recorded, Reply, StubServer, only, stub_server

T = "acme"
KEY = "pcsk_test_key"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    yield from stub_server()


@pytest.fixture
def opened() -> Iterator[list[PineconeStore]]:
    stores: list[PineconeStore] = []
    yield stores
    for store in stores:
        store.close()


@pytest.fixture
def open_store(stub: StubServer, opened: list[PineconeStore]) -> Any:
    def make(
        metric: Metric = Metric.COSINE, url: str = "", timeout_s: float = 3.0
    ) -> PineconeStore:
        store = PineconeStore(url or f"{stub.url}?api_key={KEY}", metric, timeout_s=timeout_s)
        opened.append(store)
        return store

    return make


def holding(stub: StubServer, records: dict[str, dict[str, Any]]) -> None:
    stub.on("GET", "/vectors/fetch", lambda r: pc.fetched(r, records))


def stored(doc: Document) -> dict[str, Any]:
    """A record as the adapter writes it (and Pinecone's fetch returns it)."""
    canon = doc.with_vector(canonical_vector(doc.vector, Metric.COSINE))
    meta: dict[str, Any] = {
        "ss_doc_id": doc.doc_id,
        "ss_hash": canon.content_hash,
        "ss_meta": json.dumps(dict(doc.metadata), sort_keys=True, separators=(",", ":")),
    }
    if doc.text is not None:
        meta["ss_text"] = doc.text
    return {
        "id": record_id(doc.doc_id),
        "values": [float(x) for x in canon.vector],
        "metadata": meta,
    }


def test_the_index_is_described_once_with_key_and_api_version(
    stub: StubServer, open_store: Any
) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats({"acme": 2}))
    store = open_store()
    assert store.dimension == 3 and store.count(T) == 2
    first = stub.calls("POST", "/describe_index_stats")[0]
    assert first.headers["api-key"] == KEY
    assert first.headers["x-pinecone-api-version"] == "2026-07"
    assert first.json() == {}
    assert KEY not in store.location


def test_upsert_fetches_hashes_then_writes_whole_records(stub: StubServer, open_store: Any) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats())
    held = Document(T, "same", [0.0, 0.0, 1.0])
    holding(stub, {"same": stored(held)})
    stub.on("POST", "/vectors/upsert", pc.upserted)
    batch = [
        held,
        Document(T, "a", [3.0, 4.0, 0.0], {"n": 7, "big": 2**62, "ok": False}, text=""),
        Document(T, "héllo", [0.0, 1.0, 0.0], {"lang": "fr"}),
    ]
    report = open_store().upsert(T, batch)

    assert (report.written, report.unchanged) == (2, 1)
    fetch = only(stub.calls("GET", "/vectors/fetch"))
    hashed = "~" + hashlib.sha256("héllo".encode()).hexdigest()
    assert fetch.query["ids"] == ["same", "a", hashed] and fetch.param("namespace") == T
    body = only(stub.calls("POST", "/vectors/upsert")).json()
    assert body["namespace"] == T
    a, h = body["vectors"]
    assert a == {
        "id": "a",
        "values": [float(x) for x in canonical_vector(to_vector([3, 4, 0]), Metric.COSINE)],
        "metadata": {
            "ss_doc_id": "a",
            "ss_hash": stored(batch[1])["metadata"]["ss_hash"],
            "ss_meta": '{"big":4611686018427387904,"n":7,"ok":false}',
            "ss_tokens": ["big:n:4611686018427387904", "n:n:7", "ok:b:false"],
            "ss_text": "",
        },
    }
    assert h["id"] == hashed and h["id"].isascii() and h["metadata"]["ss_doc_id"] == "héllo"
    assert "ss_text" not in h["metadata"]  # no text: no key (Pinecone has no null)


def test_batches_stay_within_pinecones_request_limits(stub: StubServer, open_store: Any) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats())
    holding(stub, {})
    stub.on("POST", "/vectors/upsert", pc.upserted)
    small = [Document(T, f"d{i:04d}", [1.0, float(i), 0.0]) for i in range(1001)]
    open_store().upsert(T, small)
    assert [len(r.json()["vectors"]) for r in stub.calls("POST", "/vectors/upsert")] == [1000, 1]
    fetches = stub.calls("GET", "/vectors/fetch")
    assert max(len(r.query["ids"]) for r in fetches) <= 200
    assert sum(len(r.query["ids"]) for r in fetches) == 1001

    stub.reset()
    big = [Document(T, f"b{i:02d}", [1.0, float(i), 0.0], text="x" * 30_000) for i in range(70)]
    open_store().upsert(T, big)
    upserts = stub.calls("POST", "/vectors/upsert")
    assert len(upserts) == 2 and all(len(r.body) <= 2_000_000 for r in upserts)
    assert sum(len(r.json()["vectors"]) for r in upserts) == 70


def test_metadata_beyond_40_kb_is_refused_before_any_upsert(
    stub: StubServer, open_store: Any
) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats())
    holding(stub, {})
    with pytest.raises(InvalidInput, match="at most 40960 bytes of metadata"):
        open_store().upsert(T, [Document(T, "a", [1.0, 0.0, 0.0], text="é" * 21_000)])
    assert stub.calls("POST", "/vectors/upsert") == []


SCORES = [
    # our metric, the index's metric, Pinecone's score, our score
    (Metric.COSINE, "cosine", 0.75, 0.75),  # cosine similarity as is
    (Metric.COSINE, "dotproduct", 0.5, 0.5),  # inner product of unit vectors
    (Metric.DOT, "dotproduct", -2.5, -2.5),
    (Metric.L2, "euclidean", 4.0, -4.0),  # squared distance, lower is closer
]


@pytest.mark.parametrize("case", SCORES)
def test_query_filters_with_eq_on_tokens_and_converts_scores(
    stub: StubServer, open_store: Any, case: tuple[Metric, str, float, float]
) -> None:
    metric, index_metric, raw, score = case
    stub.on("POST", "/describe_index_stats", pc.stats(metric=index_metric))
    stub.on(
        "POST",
        "/query",
        pc.matches(
            T,
            [
                {
                    "id": "a",
                    "score": raw,
                    "metadata": {"ss_doc_id": "a", "ss_meta": '{"k":"v","n":2}'},
                },
                {"id": "b", "score": raw, "metadata": {"ss_doc_id": "b", "ss_meta": '{"k":"v"}'}},
            ],
        ),
    )
    hits = open_store(metric).search(T, [0.0, 3.0, 4.0], 2, {"k": "v", "n": 2.0}).hits
    assert [(h.doc_id, h.score) for h in hits] == [("a", score)]  # "b" lacks n: dropped
    body = only(stub.calls("POST", "/query")).json()
    vector = [0.0, 3.0, 4.0]
    if metric is Metric.COSINE:
        vector = [float(x) for x in canonical_vector(to_vector(vector), metric)]
    assert body == {
        "topK": 2,
        "includeValues": False,
        "includeMetadata": True,
        "namespace": T,
        "vector": vector,
        "filter": {"$and": [{"ss_tokens": {"$eq": "k:s:v"}}, {"ss_tokens": {"$eq": "n:n:2"}}]},
    }


def test_delete_counts_the_records_that_existed(stub: StubServer, open_store: Any) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats())
    holding(stub, {"a": stored(Document(T, "a", [1.0, 0.0, 0.0]))})
    stub.on("POST", "/vectors/delete", Reply(200, {}))
    assert open_store().delete(T, ["a", "ghost"]) == 1
    assert only(stub.calls("POST", "/vectors/delete")).json() == {"namespace": T, "ids": ["a"]}


def test_scan_lists_every_page_then_reads_in_doc_id_order(
    stub: StubServer, open_store: Any
) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats())
    written = [Document(T, d, [1.0, 0.0, 0.0]) for d in ["b", "é", "a", "c"]]
    records = {record_id(d.doc_id): stored(d) for d in written}
    hashed = record_id("é")

    def listing(request: Recorded) -> Reply:
        if request.param("paginationToken") is None:
            return pc.listed(T, ["a", "b"], next_token="tok-2")
        assert request.param("paginationToken") == "tok-2"
        return pc.listed(T, ["c", hashed])  # sorted by id bytes; "~..." sorts last

    stub.on("GET", "/vectors/list", listing)
    holding(stub, records)
    pages = list(open_store().scan(T, batch_size=2, after="a"))
    assert [[d.doc_id for d in p] for p in pages] == [["b", "c"], ["é"]]
    lists = stub.calls("GET", "/vectors/list")
    assert [(r.param("namespace"), r.param("limit")) for r in lists] == [(T, "100"), (T, "100")]


def test_tenants_are_the_non_empty_tenant_namespaces(stub: StubServer, open_store: Any) -> None:
    stub.on(
        "POST",
        "/describe_index_stats",
        pc.stats({"acme": 3, "Beta_2": 1, "empty": 0, "__default__": 9, "other app": 4}),
    )
    assert open_store().tenants() == ["Beta_2", "acme"]


def test_the_default_namespace_alias_is_not_a_tenant(stub: StubServer, open_store: Any) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats())
    with pytest.raises(InvalidInput, match="alias of the default namespace"):
        open_store().count("__default__")


# -- failures -----------------------------------------------------------------------------
def test_an_index_of_another_metric_or_kind_is_refused(stub: StubServer, open_store: Any) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats(metric="euclidean"))
    with pytest.raises(IncompatibleStore) as info:
        open_store().count(T)
    message = str(info.value)
    assert "uses metric 'euclidean' (metric 'l2') but RETRIEVAL_METRIC is 'cosine'" in message
    assert "which needs metric 'cosine' or 'dotproduct'; set RETRIEVAL_METRIC=l2" in message
    assert "point RETRIEVAL_PINECONE_URL at an index of such a metric" in message
    assert KEY not in message
    stub.on(
        "POST",
        "/describe_index_stats",
        Reply(
            200,
            {"namespaces": {}, "indexFullness": 0, "totalVectorCount": 0, "vectorType": "sparse"},
        ),
    )
    with pytest.raises(IncompatibleStore, match="not a dense vector index"):
        open_store().count(T)


def test_a_refused_key_names_the_variable_and_is_never_shown(
    stub: StubServer, open_store: Any
) -> None:
    stub.on("POST", "/describe_index_stats", pc.UNAUTHORIZED)
    with pytest.raises(StoreUnavailable) as info:
        open_store().count(T)
    assert "RETRIEVAL_PINECONE_URL" in str(info.value) and "HTTP 401" in str(info.value)
    assert KEY not in str(info.value)


def test_rate_limits_are_retried_by_the_sdk_then_reported(
    stub: StubServer, open_store: Any
) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats())
    stub.on("POST", "/query", pc.rpc_error(429, 8, "Too many requests", {"Retry-After": "0"}))
    with pytest.raises(StoreUnavailable, match="rate limiting"):
        open_store().search(T, [1.0, 0.0, 0.0], 1)
    assert len(stub.calls("POST", "/query")) == 4  # the SDK: 1 + 3 retries


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (pc.rpc_error(503, 14, "unavailable", {"Retry-After": "0"}), StoreUnavailable, "HTTP 503"),
        (pc.rpc_error(404, 5, "Not Found"), StoreUnavailable, "host of an existing index"),
        (
            pc.rpc_error(400, 3, "Vector dimension 4 does not match the dimension of the index 3"),
            StoreError,
            "HTTP 400",
        ),
    ],
)
def test_error_statuses_map_to_store_errors(
    stub: StubServer, open_store: Any, reply: Reply, error: type[StoreError], text: str
) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats())
    stub.on("POST", "/query", reply)
    with pytest.raises(error, match=text) as info:
        open_store().search(T, [1.0, 0.0, 0.0], 1)
    assert type(info.value) is error


def test_no_answer_in_time_is_a_timeout(stub: StubServer, open_store: Any) -> None:
    stub.on("POST", "/describe_index_stats", pc.stats(), Reply(200, {}, delay_s=1.0))
    store = open_store(timeout_s=0.3)
    assert store.dimension == 3
    with pytest.raises(StoreTimeout):
        store.count(T)


def test_an_unreachable_host_is_reported(open_store: Any) -> None:
    start = time.perf_counter()
    store = open_store(url=f"http://127.0.0.1:{free_port()}?api_key={KEY}")
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        store.count(T)
    assert time.perf_counter() - start < 30  # the SDK's own retries, with backoff


def test_a_missing_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"api_key=<key>"):
        PineconeStore("https://idx-abc.svc.pinecone.io")


def test_every_data_request_names_the_tenants_namespace(stub: StubServer, open_store: Any) -> None:
    tenant = "Acme_1"
    stub.on("POST", "/describe_index_stats", pc.stats({tenant: 1}))
    holding(stub, {"a": stored(Document(tenant, "a", [1.0, 0.0, 0.0]))})
    stub.on("POST", "/vectors/upsert", pc.upserted)
    stub.on("POST", "/query", pc.matches(tenant, []))
    stub.on("POST", "/vectors/delete", Reply(200, {}))
    stub.on("GET", "/vectors/list", pc.listed(tenant, ["a"]))
    store = open_store()
    store.upsert(tenant, [Document(tenant, "b", [0.0, 1.0, 0.0])])
    store.search(tenant, [1.0, 0.0, 0.0], 1)
    store.get(tenant, ["a"])
    store.delete(tenant, ["a"])
    list(store.scan(tenant))
    data = [r for r in stub.requests if r.path != "/describe_index_stats"]
    assert {r.path for r in data} == {
        "/vectors/fetch",
        "/vectors/upsert",
        "/query",
        "/vectors/delete",
        "/vectors/list",
    }
    for request in data:
        namespace = (
            request.param("namespace") if request.method == "GET" else request.json()["namespace"]
        )
        assert namespace == tenant, request.path

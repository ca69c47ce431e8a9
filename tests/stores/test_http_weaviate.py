"""Weaviate adapter, tested at the wire level: client-level tests only.

No Weaviate runs here. The official v4 client talks REST (schema, tenant existence, server
metadata) to `StubServer` and gRPC (search, fetch by id, batch import, batch delete, count,
tenant listing) to `WeaviateGrpcStub`, because that is how client 4.24 splits its calls and it
cannot be switched to REST. Each test scripts Weaviate's documented answers
(`tests.stores.http_stubs.weaviate_docs`) and asserts the requests, down to the protobuf
fields. What this proves and what it cannot is in docs/stores-http.md.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest

from shadowswap.errors import (
    DimensionMismatch,
    IncompatibleStore,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.similarity import Metric, canonical_vector
from shadowswap.stores.weaviate import NAMESPACE, WeaviateStore, object_id
from shadowswap.values import Document, to_vector
from tests.servers import free_port
from tests.stores.http_stubs import weaviate_docs as wv
from tests.stores.http_stubs.server import Reply, StubServer, only, stub_server
from tests.stores.http_stubs.weaviate_grpc import Abort, WeaviateGrpcStub

T = "acme"
SCHEMA = "/v1/schema/Shadowswap"
TENANT = f"{SCHEMA}/tenants/{T}"


@pytest.fixture
def rest() -> Iterator[StubServer]:
    for server in stub_server():
        server.on("GET", "/v1/meta", wv.meta())
        yield server


@pytest.fixture
def rpc() -> Iterator[WeaviateGrpcStub]:
    server = WeaviateGrpcStub()
    try:
        yield server
    finally:
        server.close()
    assert not server.unmatched, server.unmatched


@pytest.fixture
def opened() -> Iterator[list[WeaviateStore]]:
    """Every store a test opens, closed after it (the client warns about open connections)."""
    stores: list[WeaviateStore] = []
    yield stores
    for store in stores:
        store.close()


@pytest.fixture
def open_store(
    rest: StubServer, rpc: WeaviateGrpcStub, opened: list[WeaviateStore]
) -> Callable[..., WeaviateStore]:
    def make(metric: Metric = Metric.COSINE, extra: str = "") -> WeaviateStore:
        store = WeaviateStore(f"{rest.url}?grpc_port={rpc.port}{extra}", metric, timeout_s=3.0)
        opened.append(store)
        return store

    return make


def known(rest: StubServer, metric: str = "cosine", tenant_exists: bool = True) -> None:
    distance = "l2-squared" if metric == "l2" else "dot"
    rest.on("GET", SCHEMA, wv.schema_class(wv.record(3, metric), distance))
    rest.on("HEAD", TENANT, Reply(200 if tenant_exists else 404))


def unit(values: list[float]) -> np.ndarray:
    return canonical_vector(to_vector(values), Metric.COSINE)


def test_object_ids_are_uuid5_of_tenant_and_doc_id() -> None:
    assert object_id("acme", "a") == uuid.uuid5(NAMESPACE, "acme\0a")
    assert object_id("acme", "a") != object_id("acm", "ea")  # the separator matters
    assert object_id("acme", "é").version == 5


def test_first_write_creates_a_multi_tenant_collection_and_imports_over_grpc(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    rest.on("GET", SCHEMA, wv.rest_error(404, "not found"))
    rest.on("POST", "/v1/schema", lambda r: Reply(200, r.json()))
    rest.on("HEAD", TENANT, Reply(404))
    rpc.on("BatchObjects", wv.batch_reply())
    store = open_store()
    doc = Document(T, "a", [3.0, 4.0, 0.0], {"lang": "en", "n": 7}, text="")

    assert store.upsert(T, [doc]).written == 1

    created = only(rest.calls("POST", "/v1/schema")).json()
    assert created["class"] == "Shadowswap"
    assert json.loads(created["description"].split(" ", 2)[2]) == {
        "shadowswap": "1",
        "metric": "cosine",
        "dimension": 3,
    }
    assert created["multiTenancyConfig"] == {
        "enabled": True,
        "autoTenantCreation": True,
        "autoTenantActivation": True,
    }
    assert created["vectorConfig"]["default"]["vectorIndexConfig"] == {"distance": "dot"}
    assert created["vectorConfig"]["default"]["vectorizer"] == {"none": {}}
    props = {p["name"]: p for p in created["properties"]}
    assert props["ss_tokens"]["dataType"] == ["text[]"]
    assert props["ss_tokens"]["tokenization"] == "field" and props["ss_tokens"]["indexFilterable"]
    assert all(not props[n]["indexFilterable"] for n in ("doc_id", "ss_hash", "ss_meta", "ss_text"))
    assert props["ss_has_text"]["dataType"] == ["boolean"]

    assert rpc.calls("Search") == []  # unknown tenant: nothing to compare, no fetch
    batch = only(rpc.calls("BatchObjects"))
    (obj,) = batch.objects
    assert (obj.collection, obj.tenant, obj.uuid) == ("Shadowswap", T, str(object_id(T, "a")))
    fields = obj.properties.non_ref_properties.fields
    assert fields["doc_id"].string_value == "a"
    assert fields["ss_hash"].string_value == store._prepare(T, [doc])[0].content_hash
    assert json.loads(fields["ss_meta"].string_value) == {"lang": "en", "n": 7}
    assert fields["ss_text"].string_value == "" and fields["ss_has_text"].bool_value is True
    (tokens,) = obj.properties.text_array_properties
    assert (tokens.prop_name, list(tokens.values)) == ("ss_tokens", ["lang:s:en", "n:n:7"])
    (vector,) = obj.vectors
    assert vector.name == "default"
    assert np.frombuffer(vector.vector_bytes, "<f4").tobytes() == unit([3, 4, 0]).tobytes()


def test_a_concurrent_first_write_of_another_dimension_is_refused(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    rest.on(
        "GET",
        SCHEMA,
        wv.rest_error(404, "not found"),  # read once by the upsert: no collection yet
        wv.schema_class(wv.record(dimension=5)),  # another writer created it meanwhile
    )
    rest.on("POST", "/v1/schema", wv.rest_error(422, 'class name "Shadowswap" already exists'))
    with pytest.raises(DimensionMismatch):
        open_store().upsert(T, [Document(T, "a", [1.0, 0.0, 0.0])])
    assert rpc.requests == []


def test_unchanged_content_fetches_hashes_and_imports_nothing(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    known(rest)
    doc = Document(T, "a", [0.0, 0.6, 0.8])
    rpc.on(
        "Search",
        wv.search_reply(
            [wv.result(object_id(T, "a"), {"doc_id": "a", "ss_hash": doc.content_hash})]
        ),
    )
    assert open_store().upsert(T, [doc]).unchanged == 1
    assert rpc.calls("BatchObjects") == []
    fetch = only(rpc.calls("Search"))
    assert (fetch.collection, fetch.tenant, fetch.limit) == ("Shadowswap", T, 1)
    assert sorted(fetch.properties.non_ref_properties) == ["doc_id", "ss_hash"]
    assert fetch.filters.target.property == "_id"
    assert list(fetch.filters.value_text_array.values) == [str(object_id(T, "a"))]


@pytest.mark.parametrize("case", [("cosine", -0.8, 0.8), ("l2", 4.0, -4.0)])
def test_search_filters_inside_near_vector_and_scores_minus_the_distance(
    rest: StubServer,
    rpc: WeaviateGrpcStub,
    case: tuple[str, float, float],
    open_store: Callable[..., WeaviateStore],
) -> None:
    metric, distance, score = case  # Weaviate distance "dot" is -x, "l2-squared" is d²
    known(rest, metric)
    rpc.on(
        "Search",
        wv.search_reply(
            [
                wv.result(
                    object_id(T, "a"), {"doc_id": "a", "ss_meta": '{"n":1}'}, distance=distance
                ),
                wv.result(
                    object_id(T, "b"), {"doc_id": "b", "ss_meta": '{"n":true}'}, distance=9.0
                ),
            ]
        ),
    )
    store = open_store(Metric(metric))
    hits = store.search(T, [0.0, 3.0, 4.0], 4, {"n": 1.0}).hits
    assert [(h.doc_id, h.score, dict(h.metadata)) for h in hits] == [
        ("a", pytest.approx(score, abs=1e-6), {"n": 1})
    ]  # "b" holds True, which is not the number 1: dropped
    request = only(rpc.calls("Search"))
    assert (request.tenant, request.limit, request.metadata.distance) == (T, 4, True)
    assert list(request.near_vector.targets.target_vectors) == ["default"]
    sent = np.frombuffer(request.near_vector.vectors[0].vector_bytes, "<f4")
    expected = unit([0, 3, 4]) if metric == "cosine" else to_vector([0, 3, 4])
    assert sent.tobytes() == expected.tobytes()
    assert request.filters.target.property == "ss_tokens"
    assert request.filters.operator == request.filters.OPERATOR_CONTAINS_ALL
    assert list(request.filters.value_text_array.values) == ["n:n:1"]


def test_reads_of_a_tenant_weaviate_does_not_know_return_nothing(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    known(rest, tenant_exists=False)
    store = open_store()
    assert store.search(T, [1.0, 0.0, 0.0], 3).hits == ()
    assert store.count(T) == 0 and store.get(T, ["a"]) == {} and store.delete(T, ["a"]) == 0
    assert list(store.scan(T)) == []
    assert rpc.requests == []


def test_get_round_trips_vectors_types_and_empty_text(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    known(rest)
    vec = unit([1.0, 2.0, 2.0])
    rpc.on(
        "Search",
        wv.search_reply(
            [
                wv.result(
                    object_id(T, "a"),
                    {
                        "doc_id": "a",
                        "ss_meta": '{"big":4611686018427387904,"f":1.0,"i":1}',
                        "ss_text": "",
                        "ss_has_text": True,
                    },
                    vector=vec.tolist(),
                ),
                wv.result(
                    object_id(T, "b"),
                    {"doc_id": "b", "ss_meta": "{}", "ss_text": "", "ss_has_text": False},
                    vector=vec.tolist(),
                ),
            ]
        ),
    )
    got = open_store().get(T, ["b", "a", "zz"])
    assert list(got) == ["b", "a"]
    a, b = got["a"], got["b"]
    assert a.vector.tobytes() == vec.tobytes()
    assert dict(a.metadata) == {"big": 2**62, "f": 1.0, "i": 1} and type(a.metadata["i"]) is int
    assert type(a.metadata["f"]) is float and a.text == "" and b.text is None
    request = only(rpc.calls("Search"))
    assert request.metadata.vector is True
    assert sorted(request.properties.non_ref_properties) == [
        "doc_id",
        "ss_has_text",
        "ss_hash",
        "ss_meta",
        "ss_text",
    ]


def test_scan_lists_ids_by_uuid_then_yields_in_doc_id_order(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    known(rest)
    ids = ["zeta", "alpha", "mid"]  # the cursor pages by UUID, so doc ids come unsorted
    listing = wv.search_reply([wv.result(object_id(T, d), {"doc_id": d}) for d in ids])

    def fetch(request: object) -> object:
        wanted = set(request.filters.value_text_array.values)  # type: ignore[attr-defined]
        return wv.search_reply(
            [
                wv.result(
                    object_id(T, d),
                    {"doc_id": d, "ss_meta": "{}", "ss_has_text": False},
                    vector=[1.0, 0.0, 0.0],
                )
                for d in ids
                if str(object_id(T, d)) in wanted
            ]
        )

    rpc.on("Search", listing, fetch)
    pages = list(open_store().scan(T, batch_size=1, after="alpha"))
    assert [[d.doc_id for d in p] for p in pages] == [["mid"], ["zeta"]]
    first = rpc.calls("Search")[0]
    assert first.limit == 1000 and list(first.properties.non_ref_properties) == ["doc_id"]


def test_delete_counts_what_weaviate_deleted(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    known(rest)
    rpc.on("BatchDelete", wv.delete_reply(matches=1, successful=1))
    assert open_store().delete(T, ["a", "ghost"]) == 1
    request = only(rpc.calls("BatchDelete"))
    assert (request.collection, request.tenant) == ("Shadowswap", T)
    assert list(request.filters.value_text_array.values) == [
        str(object_id(T, "a")),
        str(object_id(T, "ghost")),
    ]


def test_count_and_tenants(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    known(rest)
    rpc.on("TenantsGet", wv.tenants_reply(["acme", "Beta", "empty"]))
    rpc.on("Aggregate", wv.count_reply(4), wv.count_reply(2), wv.count_reply(0))
    assert open_store().tenants() == ["Beta", "acme"]
    assert [r.tenant for r in rpc.calls("Aggregate")] == ["acme", "Beta", "empty"]
    assert all(r.objects_count for r in rpc.calls("Aggregate"))


def test_an_import_error_is_raised_with_weaviates_message(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    known(rest)
    rpc.on("Search", wv.search_reply([]))
    rpc.on("BatchObjects", wv.batch_reply({0: "vector lengths don't match: 3 vs 4"}))
    with pytest.raises(StoreError, match="vector lengths don't match"):
        open_store().upsert(T, [Document(T, "a", [1.0, 0.0, 0.0])])


# -- failures -----------------------------------------------------------------------------
def test_the_api_key_travels_as_bearer_on_rest_and_grpc(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    known(rest)
    rpc.on("Aggregate", Abort(grpc.StatusCode.UNAUTHENTICATED, "invalid api key"))
    store = open_store(extra="&api_key=s3cr3t")
    with pytest.raises(StoreUnavailable, match="api_key in RETRIEVAL_WEAVIATE_URL") as info:
        store.count(T)
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in store.location
    assert only(rest.calls("HEAD", TENANT)).headers["authorization"] == "Bearer s3cr3t"
    assert rpc.metadata[0]["authorization"] == "Bearer s3cr3t"


def test_a_rest_auth_refusal_names_the_variable(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    rest.on("GET", SCHEMA, wv.rest_error(401, "anonymous access not enabled"))
    with pytest.raises(StoreUnavailable, match="RETRIEVAL_WEAVIATE_URL"):
        open_store().search(T, [1.0, 0.0, 0.0], 1)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.DEADLINE_EXCEEDED, StoreTimeout),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, StoreUnavailable),
        (grpc.StatusCode.PERMISSION_DENIED, StoreUnavailable),
        (grpc.StatusCode.INTERNAL, StoreError),
    ],
)
def test_grpc_statuses_map_to_store_errors(
    rest: StubServer,
    rpc: WeaviateGrpcStub,
    code: grpc.StatusCode,
    error: type[StoreError],
    open_store: Callable[..., WeaviateStore],
) -> None:
    known(rest)
    rpc.on("Search", Abort(code, "details from weaviate"))
    with pytest.raises(error) as info:
        open_store().search(T, [1.0, 0.0, 0.0], 1)
    assert type(info.value) is error


def test_unavailable_grpc_is_retried_by_the_client_after_a_pause(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    """The client sleeps 1, 2, 4... s between UNAVAILABLE retries (documented in the module):
    one failure costs one second here."""
    known(rest)
    rpc.on("Aggregate", Abort(grpc.StatusCode.UNAVAILABLE, "restarting"), wv.count_reply(5))
    assert open_store().count(T) == 5
    assert len(rpc.calls("Aggregate")) == 2


def test_an_unreachable_server_fails_fast(opened: list[WeaviateStore]) -> None:
    rest_port, grpc_port = free_port(), free_port()
    start = time.perf_counter()
    store = WeaviateStore(
        f"http://127.0.0.1:{rest_port}?grpc_port={grpc_port}", Metric.COSINE, timeout_s=1.0
    )
    opened.append(store)
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        store.count(T)
    assert "cannot reach" in store.health().detail
    assert time.perf_counter() - start < 10


def test_a_closed_grpc_port_is_reported_before_any_call(
    rest: StubServer, opened: list[WeaviateStore]
) -> None:
    store = WeaviateStore(f"{rest.url}?grpc_port={free_port()}", Metric.COSINE, timeout_s=1.0)
    opened.append(store)
    with pytest.raises(StoreUnavailable, match="gRPC port"):
        store.count(T)
    assert rest.requests == []


def test_collections_of_another_metric_or_origin_are_refused(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    known(rest, metric="dot")
    with pytest.raises(IncompatibleStore, match="RETRIEVAL_METRIC=dot"):
        open_store().count(T)
    rest.on("GET", SCHEMA, wv.schema_class("a collection somebody else made"))
    with pytest.raises(IncompatibleStore, match="not created by shadowswap"):
        open_store().count(T)


@pytest.mark.parametrize(
    ("distance", "fix"),
    [
        ("l2-squared", "set RETRIEVAL_METRIC=l2, or pick another collection="),
        ("cosine", "(no metric shadowswap ranks by)"),  # renormalises: none of ours
    ],
)
def test_a_collection_of_another_distance_is_refused_whatever_the_record_says(
    rest: StubServer,
    rpc: WeaviateGrpcStub,
    open_store: Callable[..., WeaviateStore],
    distance: str,
    fix: str,
) -> None:
    """Issue 15: the record says cosine, the vector index ranks by another distance: refused
    before any search or write, naming the distance and both metrics."""
    rest.on("GET", SCHEMA, wv.schema_class(wv.record(3, "cosine"), distance))
    rest.on("HEAD", TENANT, Reply(200))
    store = open_store()
    for call in (
        lambda: store.search(T, [1.0, 0.0, 0.0], 1),
        lambda: store.upsert(T, [Document(T, "a", [1.0, 0.0, 0.0])]),
    ):
        with pytest.raises(IncompatibleStore) as info:
            call()
        message = str(info.value)
        assert f"uses distance '{distance}'" in message and fix in message
        assert "RETRIEVAL_METRIC is 'cosine', which needs distance 'dot'" in message
    assert rpc.requests == []
    health = store.health()
    assert not health.reachable and health.metric is None and distance in health.detail


def test_every_data_request_names_the_tenant(
    rest: StubServer, rpc: WeaviateGrpcStub, open_store: Callable[..., WeaviateStore]
) -> None:
    tenant = "Acme_1"
    rest.on("GET", SCHEMA, wv.schema_class(wv.record()))
    rest.on("HEAD", f"{SCHEMA}/tenants/{tenant}", Reply(200))
    rpc.on("Search", wv.search_reply([]))
    rpc.on("BatchObjects", wv.batch_reply())
    rpc.on("BatchDelete", wv.delete_reply(0, 0))
    rpc.on("Aggregate", wv.count_reply(1))
    store = open_store()
    store.upsert(tenant, [Document(tenant, "a", [1.0, 0.0, 0.0])])
    store.search(tenant, [1.0, 0.0, 0.0], 1)
    store.get(tenant, ["a"])
    store.delete(tenant, ["a"])
    store.count(tenant)
    list(store.scan(tenant))
    assert {name for name, _ in rpc.requests} == {
        "Search",
        "BatchObjects",
        "BatchDelete",
        "Aggregate",
    }
    for name, request in rpc.requests:
        objects = request.objects if name == "BatchObjects" else [request]
        assert {o.tenant for o in objects} == {tenant}, name

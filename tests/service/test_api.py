"""The gateway's endpoints in-process over a real FAISS store: answers, input rules (each a
4xx with a message), error mapping, status, readiness, metrics."""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from typing import Any

import pytest

from shadowswap import values
from shadowswap.dualwrite.outbox import Change
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.errors import StoreError
from shadowswap.metrics import CONTRACT_METRICS
from shadowswap.policy import write_plan_fingerprint
from shadowswap.stores import base
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.sync.freshness import record_write_plan
from shadowswap.sync.reconcile import Reconcile, save_last
from shadowswap.testing.faults import FailingStore, HangingStore
from tests.counting import CHECKS, count_calls
from tests.servers import free_port
from tests.service.conftest import Gateway

SEARCH = "/internal/retrieval/search"


def seed(gw: Gateway, tenant: str = "tenant-a", n: int = 5) -> None:
    docs = [
        {
            "doc_id": f"d{i}",
            "vector": [1.0, float(i), 0.0, 0.5],
            "metadata": {"lang": "en" if i % 2 else "fr", "n": i},
            "text": f"text {i}",
        }
        for i in range(n)
    ]
    r = gw.post("upsert", {"tenant": tenant, "documents": docs})
    assert r.status_code == 200, r.text


def test_upsert_search_delete_round_trip(gateway: Gateway) -> None:
    seed(gateway)
    r = gateway.post("search", {"tenant": "tenant-a", "vector": [1, 0, 0, 0.5], "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["backend"] == "faiss" and body["fallback"] is False
    assert body["hits"][0]["doc_id"] == "d0"
    assert body["hits"][0]["metadata"] == {"lang": "fr", "n": 0}
    assert body["hits"][0]["score"] >= body["hits"][1]["score"]
    assert body["trace_id"] == r.headers["x-trace-id"]
    filtered = gateway.post(
        "search", {"tenant": "tenant-a", "vector": [1, 0, 0, 0.5], "k": 5, "filter": {"lang": "en"}}
    ).json()
    assert {h["doc_id"] for h in filtered["hits"]} == {"d1", "d3"}
    again = gateway.post(
        "upsert", {"tenant": "tenant-a", "documents": [{"doc_id": "d0", "vector": [1, 0, 0, 0.5],
                                                        "metadata": {"lang": "fr", "n": 0},
                                                        "text": "text 0"}]},
    ).json()  # fmt: skip
    assert (again["written"], again["unchanged"], again["dual_write"]) == (0, 1, None)
    deleted = gateway.post("delete", {"tenant": "tenant-a", "doc_ids": ["d0", "d1", "nope"]})
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 2
    left = gateway.post("search", {"tenant": "tenant-a", "vector": [1, 0, 0, 0.5], "k": 10})
    assert {h["doc_id"] for h in left.json()["hits"]} == {"d2", "d3", "d4"}


def test_dual_write_result_names_the_other_backend(gateway_factory: Any) -> None:
    gw = gateway_factory(
        target=MemoryStore(), RETRIEVAL_TARGET_BACKEND="memory", FF_RETRIEVAL_DUAL_WRITE="ON"
    )
    seed(gw)
    body = gw.post("upsert", {"tenant": "tenant-a", "documents": [
        {"doc_id": "x", "vector": [0, 1, 0, 0]}]}).json()  # fmt: skip
    assert body["dual_write"]["backend"] == "memory"
    assert body["dual_write"]["outcome"] in ("deferred", "queued")
    assert gw.runtime.writer.flush(10.0)
    assert gw.runtime.target is not None and gw.runtime.target.count("tenant-a") == 6


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["trace_id"] == r.headers["x-trace-id"]
    return body  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ('{"tenant":"tenant-a","vector":[NaN,0,0,0],"k":3}', "vector[0]", "finite"),
        ('{"tenant":"tenant-a","vector":[1,Infinity,0,0],"k":3}', "vector[1]", "finite"),
        ('{"tenant":"tenant-a","vector":[1,-Infinity,0,0],"k":3}', "vector[1]", "finite"),
        ('{"tenant":"tenant-a","vector":[1e39,0,0,0],"k":3}', "vector", "float32"),
        ('{"tenant":"tenant-a","vector":[1,0,0],"k":3}', "vector", "4-dimensional"),
        ('{"tenant":"tenant-a","vector":[],"k":3}', "vector", "1 to"),
        ('{"tenant":"tenant-a","vector":["1",0,0,0],"k":3}', "vector[0]", "number"),
        ('{"tenant":"tenant-a","vector":[true,0,0,0],"k":3}', "vector[0]", "number"),
        ('{"tenant":"tenant-a","vector":[1,0,0,0],"k":0}', "k", "1 to 1000"),
        ('{"tenant":"tenant-a","vector":[1,0,0,0],"k":1001}', "k", "1 to 1000"),
        ('{"tenant":"tenant-a","vector":[1,0,0,0],"k":2.5}', "k", "1 to 1000"),
        ('{"tenant":"tenant-a","vector":[1,0,0,0]}', "k", "required"),
        ('{"tenant":"a b","vector":[1,0,0,0],"k":1}', "tenant", "A-Z a-z 0-9"),
        ('{"tenant":"","vector":[1,0,0,0],"k":1}', "tenant", "A-Z a-z 0-9"),
        ('{"tenant":"tenant-a","vector":[1,0,0,0],"k":1,"top_k":3}', "top_k", "unknown field"),
        ('{"tenant":"tenant-a","vector":[1,0,0,0],"k":1,"filter":[1]}', "filter", "dictionary"),
        ('{"tenant":"tenant-a","vector":[1,0,0,0],"k":1,"filter":{"a":{"b":1}}}', "filter.a",
         "not a supported value"),
        ('{"tenant":"tenant-a","vector":[1,0,0,0],"k":1,"filter":{"a":null}}', "filter.a",
         "null"),
        ('{"tenant":"tenant-a","vector":[1,0,0,0],"k":1,"filter":{"1x":"y"}}', "filter",
         "not allowed"),
    ],
)  # fmt: skip
def test_bad_search_input_gets_422_naming_the_field(
    gateway: Gateway, body: str, field: str, words: str
) -> None:
    seed(gateway)
    r = gateway.client.post(
        SEARCH, content=body, headers={**gateway.headers("a"), "content-type": "application/json"}
    )
    got = problem(r, 422)
    assert got["field"] == field, got
    assert words in got["detail"], got


def test_a_search_is_checked_once_past_pydantic(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic checks the shape; the value rules run once, into the `Query` the handler
    makes; neither the router nor the store checks it again."""
    seed(gateway)
    calls = count_calls(monkeypatch, [values, base], CHECKS)
    body = {"tenant": "tenant-a", "vector": [1, 0, 0, 0.5], "k": 5, "filter": {"lang": "en"}}
    r = gateway.post("search", body)
    assert r.status_code == 200 and {h["doc_id"] for h in r.json()["hits"]} == {"d1", "d3"}
    assert calls == Counter(dict.fromkeys(CHECKS, 1))


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        ({"doc_id": "", "vector": [1, 0, 0, 0]}, "documents[0].doc_id", "at least 1"),
        ({"doc_id": "a\u0001b", "vector": [1, 0, 0, 0]}, "documents[0].doc_id", "control"),
        ({"doc_id": "\u00e9" * 300, "vector": [1, 0, 0, 0]}, "documents[0].doc_id", "bytes"),
        ({"doc_id": "x", "vector": [1, 0]}, "documents[0].vector", "4-dimensional"),
        ({"doc_id": "x", "vector": [0, 0, 0, 0]}, "documents[0].vector", "zero"),
        ({"doc_id": "x", "vector": [1, 0, 0, 0], "metadata": {"k": [1]}},
         "documents[0].metadata.k", "not a supported value"),
        ({"doc_id": "x", "vector": [1, 0, 0, 0], "metadata": {"k": 2**70}},
         "documents[0].metadata.k", "64-bit"),
        ({"doc_id": "x", "vector": [1, 0, 0, 0], "text": 5}, "documents[0].text", "string"),
        ({"doc_id": "x", "vector": [1, 0, 0, 0], "extra": 1}, "documents[0].extra", "unknown"),
    ],
)  # fmt: skip
def test_bad_documents_get_422_naming_the_field(
    gateway: Gateway, document: dict[str, Any], field: str, words: str
) -> None:
    seed(gateway)
    r = gateway.post("upsert", {"tenant": "tenant-a", "documents": [document]}, key="a")
    got = problem(r, 422)
    assert got["field"] == field, got
    assert words in got["detail"], got
    assert gateway.runtime.primary.count("tenant-a") == 5  # nothing half-written


def test_bad_delete_input(gateway: Gateway) -> None:
    assert (
        problem(gateway.post("delete", {"tenant": "tenant-a", "doc_ids": []}), 422)["field"]
        == "doc_ids"
    )
    got = problem(gateway.post("delete", {"tenant": "tenant-a", "doc_ids": ["ok", "a\nb"]}), 422)
    assert got["field"] == "doc_ids[1]" and "control" in got["detail"]
    got = problem(gateway.post("delete", {"tenant": "tenant-a", "doc_ids": "abc"}), 422)
    assert got["field"] == "doc_ids"


def test_several_problems_are_all_listed(gateway: Gateway) -> None:
    got = problem(gateway.post("search", {"tenant": "", "vector": [], "k": 0}), 422)
    assert {e["field"] for e in got["errors"]} == {"tenant", "vector", "k"}
    assert "(and 2 more problems)" in got["detail"]


def test_body_shape_errors(gateway: Gateway) -> None:
    h = {**gateway.headers("a"), "content-type": "application/json"}
    assert problem(gateway.client.post(SEARCH, content="{", headers=h), 400)["error"] == (
        "invalid_json"
    )
    assert (
        "JSON object"
        in problem(gateway.client.post(SEARCH, content="[]", headers=h), 422)["detail"]
    )
    assert (
        "JSON object" in problem(gateway.client.post(SEARCH, content="", headers=h), 422)["detail"]
    )
    form = {**gateway.headers("a"), "content-type": "application/x-www-form-urlencoded"}
    got = problem(gateway.client.post(SEARCH, content='{"a":1}', headers=form), 415)
    assert "application/json" in got["detail"]
    assert problem(gateway.client.get("/nope"), 404)["error"] == "not_found"
    assert problem(gateway.client.get(SEARCH, headers=gateway.headers("a")), 405)["error"] == (
        "method_not_allowed"
    )


def test_values_are_never_echoed_in_errors(gateway: Gateway) -> None:
    seed(gateway)
    r = gateway.post(
        "upsert",
        {
            "tenant": "tenant-a",
            "documents": [
                {"doc_id": "x", "vector": [1, 0, 0, 0], "metadata": {"secret": "S3CRET" * 2000}}
            ],
        },
    )
    assert r.status_code == 422 and "S3CRET" not in r.text  # fmt: skip


def test_body_over_the_limit_gets_413_before_parsing(gateway_factory: Any) -> None:
    gw = gateway_factory(max_body_bytes=2048)
    big = {"tenant": "tenant-a", "documents": [{"doc_id": f"d{i}", "vector": [0.5] * 16}
                                               for i in range(40)]}  # fmt: skip
    got = problem(gw.post("upsert", big), 413)
    assert "RETRIEVAL_MAX_BODY_BYTES=2048" in got["detail"]

    def chunks() -> Any:  # no Content-Length: the limit holds on a streamed body too
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 500):
            yield payload[i : i + 500]

    r = gw.client.post(
        SEARCH, content=chunks(), headers={**gw.headers("a"), "content-type": "application/json"}
    )
    problem(r, 413)
    assert gw.runtime.primary.count("tenant-a") == 0
    small = gw.post(
        "upsert", {"tenant": "tenant-a", "documents": [{"doc_id": "a", "vector": [1, 0]}]}
    )
    assert small.status_code == 200  # fmt: skip


def test_a_failing_primary_gets_503_with_retry_after(gateway_factory: Any, tmp_path: Any) -> None:
    inner = FaissStore(str(tmp_path / "down"))
    gw = gateway_factory(primary=FailingStore(inner))
    got = problem(gw.post("search", {"tenant": "tenant-a", "vector": [1, 0], "k": 1}), 503)
    assert got["error"] == "backend_unavailable" and "injected fault" in got["detail"]
    r = gw.post("upsert", {"tenant": "tenant-a", "documents": [{"doc_id": "a", "vector": [1, 0]}]})
    assert problem(r, 503)["error"] == "backend_unavailable"
    assert r.headers["retry-after"] == "1"
    ready = gw.client.get("/readyz")
    assert problem(ready, 503)["error"] == "not_ready" and ready.headers["retry-after"] == "1"
    inner.close()


def test_a_hung_primary_answers_503_at_the_read_deadline(
    gateway_factory: Any, tmp_path: Any
) -> None:
    inner = FaissStore(str(tmp_path / "hung"))
    inner.upsert("tenant-a", [])
    hung = HangingStore(inner, ops=["search", "tenants"])
    gw = gateway_factory(primary=hung, RETRIEVAL_READ_TIMEOUT_MS="300")
    try:
        r = gw.post("search", {"tenant": "tenant-a", "vector": [1, 0], "k": 1})
        got = problem(r, 503)
        assert "RETRIEVAL_READ_TIMEOUT_MS=300" in got["detail"]
        assert r.headers["retry-after"] == "1"
        assert gw.client.get("/readyz").status_code == 503
        assert gw.client.get("/healthz").json() == {"status": "ok"}  # liveness is not readiness
    finally:
        hung.release()
        inner.close()


class _Broken(MemoryStore):
    """A store with a bug: raises something that is not a shadowswap error (on both ways in:
    raw arguments, and the router's checked `Query`)."""

    def search(self, *args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")

    def search_query(self, *args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")


def test_an_unexpected_exception_is_a_json_500_with_trace_id_and_a_log_line(
    gateway_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_factory(primary=_Broken(), RETRIEVAL_BACKEND="memory")
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with caplog.at_level(logging.ERROR, logger="shadowswap.service"):
        r = gw.post("search", {"tenant": "tenant-a", "vector": [1, 0], "k": 1},
                    headers={"traceparent": tp})  # fmt: skip
    got = problem(r, 500)
    assert (
        got["error"] == "internal_error" and got["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    )
    assert "a bug" not in r.text
    [record] = [rec for rec in caplog.records if rec.getMessage() == "unexpected error"]
    assert record.trace_id == "0af7651916cd43dd8448eb211c80319c"  # type: ignore[attr-defined]
    assert record.error == "ZeroDivisionError"  # type: ignore[attr-defined]


def test_status_shows_phase_flags_backends_breaker_outbox_reconcile(
    gateway_factory: Any, tmp_path: Any
) -> None:
    gw = gateway_factory(
        target=MemoryStore(),
        RETRIEVAL_TARGET_BACKEND="memory",
        FF_RETRIEVAL_DUAL_WRITE="ON",
        RETRIEVAL_PGVECTOR_URL="postgresql://svc:pw-123@db/x",
    )
    seed(gw)
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "reconcile_last.json").write_text(
        json.dumps(
            {
                "ok": True,
                "complete": True,
                "finished_at": "2025-10-21T14:50:00.000Z",
                "drift": 0,
                "missing": 0,
                "extra": 0,
                "stale": 0,
                "tenants": {"tenant-a": {"missing": 0}},
            }
        )
    )
    r = gw.client.get("/internal/retrieval/status", headers=gw.headers("admin"))  # fmt: skip
    assert r.status_code == 200
    s = r.json()
    assert s["phase"]["phase"] == "dual_write" and s["phase"]["next_step"]
    assert s["flags"]["FF_RETRIEVAL_DUAL_WRITE"] == "ON"
    assert "pw-123" not in r.text and s["flags"]["RETRIEVAL_PGVECTOR_URL"].startswith(
        "postgresql://svc:***@"
    )
    kinds = {b["kind"]: b for b in s["backends"]}
    assert kinds["faiss"]["role"] == "primary" and kinds["faiss"]["reachable"] is True
    assert kinds["faiss"]["documents"] == 5 and kinds["faiss"]["dimension"] == 4
    assert kinds["memory"]["role"] == "target"
    assert s["breaker"]["state"] == "closed"
    assert set(s["outbox"]) >= {"size", "oldest_age_s", "dropped_full", "dropped_ttl", "location"}
    assert s["reconcile"]["drift"] == 0 and s["reconcile"]["tenants"] == 1
    assert "tenant-a" not in json.dumps(s["reconcile"])
    # issue 15: a file of the old format records no write plan: stale, and said why
    assert s["reconcile"]["fresh"] is False and s["reconcile"]["age_s"] > 0
    assert s["reconcile"]["max_age_s"] == 86400
    assert "does not record the write plan" in s["reconcile"]["reasons"][0]
    assert s["router"]["shadow"]["accepted"] == 0
    assert s["service"]["auth"] == "ON"


def test_status_says_whether_the_last_reconcile_is_fresh(
    gateway_factory: Any, tmp_path: Any
) -> None:
    gw = gateway_factory(
        target=MemoryStore(), RETRIEVAL_TARGET_BACKEND="memory", FF_RETRIEVAL_DUAL_WRITE="ON"
    )
    settings = gw.runtime.settings.current()
    save_last(
        Reconcile(gw.runtime.primary, gw.runtime.target, settings=settings).run(),
        settings.state_dir,
    )
    s = gw.client.get("/internal/retrieval/status", headers=gw.headers("admin")).json()
    reconcile = s["reconcile"]
    assert reconcile["fresh"] is True and reconcile["reasons"] == []
    assert reconcile["write_plan"] == write_plan_fingerprint(settings)
    assert 0 <= reconcile["age_s"] < 600 and reconcile["drift"] == 0
    record_write_plan(settings.state_dir, settings, at=time.time() + 1, by="rollback")
    s = gw.client.get("/internal/retrieval/status", headers=gw.headers("admin")).json()
    assert s["reconcile"]["fresh"] is False
    assert s["reconcile"]["reasons"][0].startswith(
        "the write plan changed after the last reconcile (rollback at "
    )


def test_status_shows_an_unreachable_backend(gateway_factory: Any) -> None:
    dead = ChromaStore(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)  # nothing listens
    gw = gateway_factory(target=dead, RETRIEVAL_TARGET_BACKEND="chroma")
    s = gw.client.get("/internal/retrieval/status", headers=gw.headers("admin")).json()
    kinds = {b["kind"]: b for b in s["backends"]}
    assert kinds["faiss"]["reachable"] is True
    assert kinds["chroma"]["reachable"] is False and "cannot reach" in kinds["chroma"]["detail"]
    assert gw.client.get("/readyz").status_code == 200  # readiness is about the primary


def test_metrics_expose_every_contract_name_and_outbox_from_other_processes(
    gateway_factory: Any, tmp_path: Any
) -> None:
    gw = gateway_factory(
        target=MemoryStore(),
        RETRIEVAL_TARGET_BACKEND="memory",
        FF_RETRIEVAL_DUAL_WRITE="ON",
        FF_RETRIEVAL_SHADOW_READ="ON",
        FF_RETRIEVAL_SHADOW_SAMPLE_RATE="1.0",
    )
    seed(gw)
    for _ in range(3):
        gw.post("search", {"tenant": "tenant-a", "vector": [1, 0, 0, 0.5], "k": 3})
    assert gw.runtime.writer.flush(10.0)
    other = SqliteOutbox(tmp_path / "outbox.sqlite3")  # what a replay process would hold
    other.append([Change.delete("tenant-a", "zz", "memory")], now=time.time(), capacity=100,
                 ttl_s=3600)  # fmt: skip
    other.close()
    r = gw.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in CONTRACT_METRICS:
        assert f"# TYPE {name} " in r.text, name
    assert 'retrieval_total{backend="faiss",env="local",outcome="ok",role="primary"' in r.text
    assert 'retrieval_dual_write_outbox_size{env="local",shadow_version="dev"} 1.0' in r.text
    assert (
        'retrieval_phase_info{env="local",phase="shadow_read",shadow_version="dev"} 1.0' in r.text
    )


def test_openapi_documents_every_endpoint_and_the_keys(gateway: Gateway) -> None:
    doc = gateway.client.get("/openapi.json").json()
    assert set(doc["paths"]) >= {
        "/internal/retrieval/search", "/internal/retrieval/upsert", "/internal/retrieval/delete",
        "/internal/retrieval/status", "/healthz", "/readyz", "/metrics",
    }  # fmt: skip
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    search = doc["paths"]["/internal/retrieval/search"]["post"]
    assert set(search["responses"]) >= {"200", "401", "403", "413", "422", "503"}


def test_scores_are_finite_json(gateway: Gateway) -> None:
    seed(gateway)
    body = gateway.post("search", {"tenant": "tenant-a", "vector": [0, 0, 1, 0], "k": 5}).json()
    assert all(math.isfinite(h["score"]) for h in body["hits"])


def test_an_error_from_a_store_is_not_a_500(gateway_factory: Any, tmp_path: Any) -> None:
    inner = FaissStore(str(tmp_path / "err"))
    err = FailingStore(inner, ops=["upsert"], error=lambda op, t: StoreError("faiss", op, "disk"))
    gw = gateway_factory(primary=err)
    r = gw.post("upsert", {"tenant": "tenant-a", "documents": [{"doc_id": "a", "vector": [1, 0]}]})
    assert problem(r, 503)["detail"].endswith("disk")
    inner.close()

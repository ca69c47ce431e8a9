"""Pinecone data-plane answers in the documented shapes of API version 2026-07 (the version
the installed SDK sends in ``X-Pinecone-Api-Version``).

Sources (https://docs.pinecone.io/reference/api/2026-07/data-plane/...):
  describeindexstats  ``{"namespaces": {"ns": {"vectorCount": n}}, "dimension", "indexFullness",
                      "totalVectorCount", "metric", "vectorType"}``
  fetch               ``GET /vectors/fetch?ids=..&ids=..&namespace=..`` ->
                      ``{"vectors": {id: {"id", "values", "metadata"}}, "namespace", "usage"}``
  upsert              ``{"upsertedCount": n}``
  query               ``{"matches": [{"id", "score", "values", "metadata"}], "namespace",
                      "usage"}``, best match first
  delete              ``{}``
  list                ``{"vectors": [{"id"}], "pagination": {"next"}, "namespace", "usage"}``;
                      up to 100 ids per page, sorted by id bytes; no ``pagination`` on the last
  errors              an rpc-status body ``{"code", "message", "details"}``; 401 answers the JSON
                      string ``"Unauthorized"``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tests.stores.http_stubs.server import Recorded, Reply


def stats(
    namespaces: Mapping[str, int] | None = None, dimension: int = 3, metric: str | None = "cosine"
) -> Reply:
    counts = dict(namespaces or {})
    body: dict[str, Any] = {
        "namespaces": {name: {"vectorCount": n} for name, n in counts.items()},
        "dimension": dimension,
        "indexFullness": 0.0,
        "totalVectorCount": sum(counts.values()),
        "vectorType": "dense",
    }
    if metric is not None:
        body["metric"] = metric
    return Reply(200, body)


def fetched(request: Recorded, held: Mapping[str, Mapping[str, Any]]) -> Reply:
    """The fetch answer for the ids asked, with ``held`` (record id -> record) present."""
    ids = request.query.get("ids", [])
    return Reply(
        200,
        {
            "vectors": {i: dict(held[i]) for i in ids if i in held},
            "namespace": request.param("namespace") or "",
            "usage": {"readUnits": 1},
        },
    )


def upserted(request: Recorded) -> Reply:
    return Reply(200, {"upsertedCount": len(request.json()["vectors"])})


def matches(namespace: str, found: Sequence[Mapping[str, Any]]) -> Reply:
    return Reply(
        200,
        {
            "matches": [{"values": [], **m} for m in found],
            "namespace": namespace,
            "usage": {"readUnits": 6},
        },
    )


def listed(namespace: str, ids: Sequence[str], next_token: str | None = None) -> Reply:
    body: dict[str, Any] = {
        "vectors": [{"id": i} for i in ids],
        "namespace": namespace,
        "usage": {"readUnits": 1},
    }
    if next_token is not None:
        body["pagination"] = {"next": next_token}
    return Reply(200, body)


def rpc_error(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> Reply:
    return Reply(status, {"code": code, "message": message, "details": []}, headers=headers or {})


UNAUTHORIZED = Reply(401, b'"Unauthorized"', headers={"Content-Type": "application/json"})

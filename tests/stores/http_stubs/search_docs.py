"""Response bodies of Elasticsearch and OpenSearch, in the shapes their REST references
document. Both engines answer these APIs alike (OpenSearch forked Elasticsearch 7.10).

Sources (the shapes below follow their examples):
  bulk     https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-bulk
           https://docs.opensearch.org/latest/api-reference/document-apis/bulk/
           (per-item ``result`` is created/updated/deleted/not_found; a delete of a missing
           document is ``not_found`` with status 404 and does not set ``errors``)
  mget     https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-mget
           (HTTP 200 even when one item failed: the item carries ``error`` instead of
           ``found``, e.g. ``index_not_found_exception`` or ``index_closed_exception``)
  get      https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-get
           (404 with ``found: false`` for a missing document; 404 with an error body for a
           missing index)
  search   https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-search
  field mapping
           https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-indices-get-field-mapping
           https://docs.opensearch.org/latest/api-reference/index-apis/get-field-mapping/
           (``GET <indices>/_mapping/field/<field>``: per index, ``mappings`` -> field ->
           ``full_name`` and ``mapping``; an index without the field answers ``mappings: {}``,
           a wildcard matching no index answers ``{}``)
  errors   the common error body: ``{"error": {"root_cause": [...], "type", "reason"},
           "status"}``
  headers  every 2xx Elasticsearch answer carries ``X-Elastic-Product: Elasticsearch``,
           which the 9.x client checks
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tests.stores.http_stubs.server import Recorded, Reply

ELASTIC_HEADERS = {"X-Elastic-Product": "Elasticsearch"}


def error(status: int, kind: str, reason: str, index: str | None = None) -> Reply:
    cause: dict[str, Any] = {"type": kind, "reason": reason}
    if index is not None:
        cause.update({"index": index, "resource.type": "index_or_alias", "resource.id": index})
    return Reply(status, {"error": {"root_cause": [cause], **cause}, "status": status})


def index_missing(index: str) -> Reply:
    return error(404, "index_not_found_exception", f"no such index [{index}]", index)


def acknowledged(index: str) -> Reply:
    return Reply(200, {"acknowledged": True, "shards_acknowledged": True, "index": index})


def created(index: str, doc_id: str) -> Reply:
    return Reply(
        201,
        {
            "_index": index,
            "_id": doc_id,
            "_version": 1,
            "result": "created",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": 0,
            "_primary_term": 1,
        },
    )


def found(index: str, doc_id: str, source: Mapping[str, Any]) -> Reply:
    return Reply(
        200,
        {
            "_index": index,
            "_id": doc_id,
            "_version": 1,
            "_seq_no": 0,
            "_primary_term": 1,
            "found": True,
            "_source": dict(source),
        },
    )


def not_found(index: str, doc_id: str) -> Reply:
    return Reply(404, {"_index": index, "_id": doc_id, "found": False})


def mget_docs(index: str, request: Recorded, held: Mapping[str, Mapping[str, Any]]) -> Reply:
    """The mget answer for the ids asked, with ``held`` (id -> _source) found."""
    docs = []
    for doc_id in request.json()["ids"]:
        if doc_id in held:
            docs.append(
                {
                    "_index": index,
                    "_id": doc_id,
                    "_version": 1,
                    "_seq_no": 0,
                    "_primary_term": 1,
                    "found": True,
                    "_source": dict(held[doc_id]),
                }
            )
        else:
            docs.append({"_index": index, "_id": doc_id, "found": False})
    return Reply(200, {"docs": docs})


def mget_index_missing(index: str, request: Recorded) -> Reply:
    """The mget answer when the index does not exist: HTTP 200, one error per item."""
    cause = {
        "type": "index_not_found_exception",
        "reason": f"no such index [{index}]",
        "index": index,
    }
    docs = [
        {"_index": index, "_id": doc_id, "error": {"root_cause": [cause], **cause}}
        for doc_id in request.json()["ids"]
    ]
    return Reply(200, {"docs": docs})


def bulk_ok(request: Recorded, deleted: Sequence[str] = ()) -> Reply:
    """A successful bulk answer: index ops ``created``, delete ops ``deleted`` when the id is in
    ``deleted`` and ``not_found`` (status 404, still no error) otherwise."""
    lines = request.ndjson()
    items = []
    i = 0
    while i < len(lines):
        ((action, meta),) = lines[i].items()
        base = {"_index": meta["_index"], "_id": meta["_id"], "_version": 1}
        shards = {"_shards": {"total": 2, "successful": 1, "failed": 0}}
        if action == "delete":
            hit = meta["_id"] in deleted
            items.append(
                {
                    "delete": {
                        **base,
                        **shards,
                        "result": "deleted" if hit else "not_found",
                        "status": 200 if hit else 404,
                    }
                }
            )
            i += 1
        else:
            items.append({action: {**base, **shards, "result": "created", "status": 201}})
            i += 2
    return Reply(200, {"took": 3, "errors": False, "items": items})


def bulk_item_error(request: Recorded, status: int, kind: str, reason: str) -> Reply:
    """A bulk answer whose first item failed (``errors: true``), the others created."""
    reply = bulk_ok(request)
    items = reply.body["items"]
    ((action, item),) = items[0].items()
    items[0] = {
        action: {
            "_index": item["_index"],
            "_id": item["_id"],
            "status": status,
            "error": {"type": kind, "reason": reason},
        }
    }
    return Reply(200, {"took": 3, "errors": True, "items": items})


def search_hits(index: str, hits: Sequence[tuple[str, float | None, Mapping[str, Any]]]) -> Reply:
    """A search answer; each hit is (id, _score or None when sorted, _source)."""
    out = []
    for doc_id, score, source in hits:
        hit: dict[str, Any] = {
            "_index": index,
            "_id": doc_id,
            "_score": score,
            "_source": dict(source),
        }
        if score is None:
            hit["sort"] = [source.get("doc_id", doc_id)]
        out.append(hit)
    return Reply(
        200,
        {
            "took": 2,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "max_score": max((h["_score"] or 0.0 for h in out), default=None),
                "hits": out,
            },
        },
    )


def count(n: int) -> Reply:
    return Reply(
        200, {"count": n, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}
    )


def field_mappings(vectors: Mapping[str, Mapping[str, Any] | None]) -> Reply:
    """The get-field-mapping answer for the ``vector`` field: index -> the field's mapping as
    the index was created (None: an index without a ``vector`` field)."""
    body: dict[str, Any] = {}
    for index, mapping in vectors.items():
        if mapping is None:
            body[index] = {"mappings": {}}
        else:
            field = {"full_name": "vector", "mapping": {"vector": dict(mapping)}}
            body[index] = {"mappings": {"vector": field}}
    return Reply(200, body)

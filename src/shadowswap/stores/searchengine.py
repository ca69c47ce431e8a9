"""The Elasticsearch family (Elasticsearch, OpenSearch): what both engines share, so each
adapter only says how its client is called, how its vector field is mapped and how its kNN
query and score look.

Semantics (both engines)
    tenants     one index per tenant, ``<prefix>-t-<tenant>`` (prefix ``shadowswap``, or the
                URL's ``index_prefix``). Index names must be lower case, so the tenant id is
                written one-to-one: ``_`` as ``__``, an upper-case letter as ``_`` + its lower
                case (``Acme_1`` -> ``_acme__1``). Why not one shared index with a tenant field:
                an index per tenant keeps tenants apart by construction (a query can only reach
                the index it names; there is no filter to forget), a tenant's kNN graph holds
                only its own vectors (no cross-tenant filtering inside HNSW), a document's
                ``_id`` is its doc id as is (at most 512 bytes, the engine's limit), and
                dropping a tenant is dropping an index. The cost is one index (one shard by
                default) per tenant: thousands of tenants call for a cluster sized for that
                many shards. The mapping's ``_meta`` records the tenant id.
    store info  ``<prefix>-meta``, document ``store``: format, metric and dimension, created
                with ``op_type=create`` at the first write (a concurrent first write of
                another dimension is detected by the 409 and refused).
    metric      besides the record, the first call that needs the store's dimension reads the
                vector field mapping of every tenant index (``GET <prefix>-t-*/_mapping/field/
                vector``, one request) and refuses the store when an index ranks by a
                similarity ``RETRIEVAL_METRIC`` cannot run on (an index left from a store
                whose record was lost, or made by hand).
    fields      ``doc_id`` (keyword; sort key of ``scan``), ``hash`` (content hash),
                ``tokens`` (keyword array: the filter tokens of `shadowswap.stores.tokens`),
                ``vector`` (the engine's kNN field) and ``payload``, an object with
                ``enabled: false`` (stored in ``_source``, never parsed or indexed) holding the
                exact metadata as canonical JSON, the text (``null`` when absent) and the vector
                as base64 float32 (Elasticsearch 9.2 no longer keeps vectors in ``_source``
                and OpenSearch 3 may derive them from the index; the copy keeps the content
                hash exact whatever the version). The mapping is ``dynamic: strict``.
    filters     a ``bool.filter`` of ``term`` queries on ``tokens`` inside the kNN query, so
                the engine returns the top k among matching documents (not k hits filtered
                afterwards); hits are re-checked against the exact metadata.
    consistency writes and deletes use ``refresh=wait_for``: when the call returns, searches,
                counts and scans see them. Reading hashes and documents by id uses ``mget``,
                which is real-time. The price is up to one refresh interval (1 s by default)
                per write call, which bounds single-writer throughput to about one batch per
                second.
    batches     bulk requests of at most 500 documents and 8 MiB (Elastic's guidance is
                5-15 MB per bulk); ``mget`` of at most 1,000 ids; scan pages of at most 10,000
                (``index.max_result_window``) with ``search_after`` on ``doc_id``, which sorts
                keywords by UTF-8 bytes, that is by code point: the order ``scan`` promises.
    failures    a bulk answering ``errors: true`` raises after the whole bulk was sent: items
                that succeeded stay written (an upsert is idempotent, so the caller retries
                the batch). Retries: the client retries twice on 429/502/503/504 and on lost
                connections; timeouts are not retried.
"""

from __future__ import annotations

import abc
import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from shadowswap.errors import (
    ConfigError,
    InvalidInput,
    StoreError,
)
from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore, check_engine_metric, check_store_record, matches
from shadowswap.stores.remote import (
    FORMAT,
    Endpoint,
    chunks,
    corrupt,
    error_for_status,
    json_size,
    metadata_from_json,
    metadata_to_json,
    parse_endpoint,
    sized_chunks,
    vector_from_b64,
    vector_to_b64,
    vector_to_floats,
)
from shadowswap.stores.tokens import tokens
from shadowswap.values import Document, Filter, Hit, Vector

log = logging.getLogger("shadowswap.stores.searchengine")

META_ID = "store"
BULK_MAX_DOCS = 500
BULK_MAX_BYTES = 8 * 1024 * 1024
MGET_MAX_IDS = 1000
PAGE_MAX = 10_000
PREFIX_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
SOURCE_FIELDS = ["doc_id", "hash", "payload"]

OPTIONS = {
    "index_prefix": "index name prefix, [a-z][a-z0-9_]{0,31}, default shadowswap",
    "ca_certs": "path of a CA bundle for https",
}


def encode_tenant(tenant: str) -> str:
    """A tenant id as the lower-case part of an index name, one-to-one."""
    out = []
    for c in tenant:
        if c == "_":
            out.append("__")
        elif "A" <= c <= "Z":
            out.append("_" + c.lower())
        else:
            out.append(c)
    return "".join(out)


def decode_tenant(text: str) -> str | None:
    """The inverse of `encode_tenant`, or None when ``text`` is not one of its outputs."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "_":
            if i + 1 >= len(text):
                return None
            nxt = text[i + 1]
            if nxt == "_":
                out.append("_")
            elif "a" <= nxt <= "z":
                out.append(nxt.upper())
            else:
                return None
            i += 2
            continue
        if not (c.isascii() and (c.islower() or c.isdigit() or c == "-")):
            return None
        out.append(c)
        i += 1
    return "".join(out) or None


class SearchEngineStore(BaseStore, abc.ABC):
    """Shared by `ElasticStore` and `OpenSearchStore`; see the module docstring."""

    kind = "searchengine"
    #: the largest dimension the engine's vector field accepts
    max_dimension = 4096
    #: the mapping parameter naming the vector field's distance, and the values of it each
    #: metric runs on
    distance_setting = "similarity"
    distances: Mapping[Metric, tuple[str, ...]] = {}

    def __init__(
        self, location: str, metric: Metric = Metric.COSINE, *, timeout_s: float = 10.0
    ) -> None:
        self._endpoint = parse_endpoint(self.kind, location, OPTIONS)
        super().__init__(self._endpoint.shown, metric)
        prefix = self._endpoint.option("index_prefix", "shadowswap")
        if not PREFIX_RE.fullmatch(prefix):
            raise ConfigError(
                self._endpoint.variable,
                self._endpoint.shown + f"?index_prefix={prefix}",
                "index_prefix must match [a-z][a-z0-9_]{0,31}",
            )
        self._prefix = prefix
        self._meta_index = f"{prefix}-meta"
        self._timeout_s = timeout_s
        self._lock = threading.RLock()
        self._client_obj: Any = None
        self._dim: int | None = None
        self._indexes: set[str] = set()
        self._distances_checked = False

    # -- the engine-specific part ---------------------------------------------------------
    @abc.abstractmethod
    def _connect(self, endpoint: Endpoint, timeout_s: float) -> Any:
        """Build the vendor client (no request is sent yet)."""

    @abc.abstractmethod
    def _vector_mapping(self, dimension: int) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _index_settings(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _knn_body(
        self, vector: list[float], k: int, filter_clause: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The search body (without ``size``/``_source``) for the top ``k`` among matches."""

    @abc.abstractmethod
    def _similarity(self, score: float) -> float:
        """Our similarity from the engine's ``_score`` (see `shadowswap.stores.remote`)."""

    @abc.abstractmethod
    def _distance_of(self, mapping: Mapping[str, Any]) -> str | None:
        """The distance a vector field ``mapping`` ranks by (None when it cannot be told)."""

    # the vendor calls: each answers None (or an empty value) where the index is missing
    @abc.abstractmethod
    def _api_get(self, index: str, doc_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def _api_create_index(self, index: str, body: dict[str, Any]) -> bool:
        """Create the index; False when it exists already."""

    @abc.abstractmethod
    def _api_create_doc(self, index: str, doc_id: str, document: dict[str, Any]) -> bool:
        """Create the document (refresh=wait_for); False when it exists already (409)."""

    @abc.abstractmethod
    def _api_mget(self, index: str, ids: Sequence[str], fields: list[str]) -> list[Any]: ...

    @abc.abstractmethod
    def _api_bulk(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        """Send a bulk (refresh=wait_for) and return its response."""

    @abc.abstractmethod
    def _api_search(self, index: str, body: dict[str, Any]) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def _api_count(self, index: str) -> int: ...

    @abc.abstractmethod
    def _api_indices(self, pattern: str) -> list[str]: ...

    @abc.abstractmethod
    def _api_vector_mappings(self, pattern: str) -> dict[str, Any]:
        """``GET <pattern>/_mapping/field/vector``: index name -> ``{"mappings": ...}``; {}
        when no index matches."""

    @abc.abstractmethod
    def _api_close(self, client: Any) -> None: ...

    # -- names -----------------------------------------------------------------------------
    def index_name(self, tenant: str) -> str:
        return f"{self._prefix}-t-{encode_tenant(tenant)}"

    def tenant_of(self, index: str) -> str | None:
        head = f"{self._prefix}-t-"
        return decode_tenant(index[len(head) :]) if index.startswith(head) else None

    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                self._client_obj = self._connect(self._endpoint, self._timeout_s)
            return self._client_obj

    # -- store info ------------------------------------------------------------------------
    def _read_meta(self) -> dict[str, Any] | None:
        got = self._api_get(self._meta_index, META_ID)
        if got is None:
            return None
        source = got.get("_source")
        if not isinstance(source, dict):
            raise corrupt(self.kind, "open", f"{self._meta_index}/{META_ID}", "no _source")
        self._check_meta(source)
        return source

    def _check_meta(self, info: Mapping[str, Any]) -> None:
        check_store_record(
            self.kind, info, format=FORMAT, metric=self._metric, record=self._meta_index,
            store=f"indexes {self._prefix}-*", elsewhere="another index_prefix",
        )  # fmt: skip

    def _check_distances(self) -> None:
        """Refuse the store when one of its tenant indexes ranks by a distance our metric
        cannot run on, whatever the record says (once per handle)."""
        if self._distances_checked:
            return
        answer = self._api_vector_mappings(f"{self._prefix}-t-*")
        for index in sorted(answer):
            tenant = self.tenant_of(index)
            body = answer[index]
            mappings = body.get("mappings") if isinstance(body, Mapping) else None
            field = mappings.get("vector") if isinstance(mappings, Mapping) else None
            mapping = (
                (field.get("mapping") or {}).get("vector") if isinstance(field, Mapping) else None
            )
            if tenant is None or not isinstance(mapping, Mapping):
                continue  # not a tenant index, or one without our vector field
            check_engine_metric(
                self.kind, self._distance_of(mapping), metric=self._metric,
                accepted=self.distances, what=f"index {index!r} at {self._endpoint.shown}",
                setting=self.distance_setting,
                elsewhere=f"pick another index_prefix in {self._endpoint.variable}",
                tenant=tenant,
            )  # fmt: skip
        self._distances_checked = True

    def _stored_dimension(self) -> int | None:
        if self._dim is None:
            with self._lock:
                info = self._read_meta()
                self._check_distances()
                dim = None if info is None else info.get("dimension")
                if isinstance(dim, int) and not isinstance(dim, bool):
                    self._dim = dim
        return self._dim

    def _fix_dimension(self, dimension: int) -> int:
        if dimension > self.max_dimension:
            raise InvalidInput(
                "vector",
                f"{dimension} dimensions; {self.kind} vector fields hold at most "
                f"{self.max_dimension}",
            )
        with self._lock:
            self._api_create_index(self._meta_index, {"mappings": {"enabled": False}})
            record = {"format": FORMAT, "metric": self._metric.value, "dimension": dimension}
            if not self._api_create_doc(self._meta_index, META_ID, record):
                info = self._read_meta() or {}
                held = info.get("dimension")
                if isinstance(held, int) and held != dimension:
                    return held
            self._dim = dimension
            return dimension

    def _ensure_index(self, tenant: str) -> str:
        name = self.index_name(tenant)
        if name in self._indexes:
            return name
        dimension = self._stored_dimension()
        if dimension is None:  # pragma: no cover - _prepare fixes it before any write
            raise StoreError(self.kind, "upsert", "dimension unknown before the first write")
        body = {
            "settings": self._index_settings(),
            "mappings": {
                "dynamic": "strict",
                "_meta": {"shadowswap": {"format": FORMAT, "tenant": tenant}},
                "properties": {
                    "doc_id": {"type": "keyword"},
                    "hash": {"type": "keyword", "index": False},
                    "tokens": {"type": "keyword"},
                    "vector": self._vector_mapping(dimension),
                    "payload": {"type": "object", "enabled": False},
                },
            },
        }
        created = self._api_create_index(name, body)
        log.info("tenant index %s", "created" if created else "exists", extra={"tenant": tenant})
        self._indexes.add(name)
        return name

    # -- BaseStore -------------------------------------------------------------------------
    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        index = self.index_name(tenant)
        out: dict[str, str] = {}
        for chunk in chunks(doc_ids, MGET_MAX_IDS):
            for doc in self._found(self._api_mget(index, chunk, ["hash"]), "upsert", tenant):
                out[str(doc["_id"])] = str((doc.get("_source") or {}).get("hash", ""))
        return out

    def _found(self, docs: list[Any], op: str, tenant: str) -> Iterator[Mapping[str, Any]]:
        """The documents an mget found; a missing index means none, other errors raise."""
        for doc in docs:
            error = doc.get("error")
            if error is not None:
                if _error_type(error) == "index_not_found_exception":
                    continue
                raise StoreError(
                    self.kind,
                    op,
                    f"reading {doc.get('_id')!r} failed: {_error_type(error)}: "
                    f"{_error_reason(error)}",
                    tenant,
                )
            if doc.get("found"):
                yield doc

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        index = self._ensure_index(tenant)
        sources = [self._source(d) for d in documents]
        sizes = [json_size(s) for s in sources]
        pairs = list(zip(documents, sources, strict=True))
        for chunk in sized_chunks(pairs, sizes, BULK_MAX_DOCS, BULK_MAX_BYTES):
            operations: list[dict[str, Any]] = []
            for doc, source in chunk:
                operations.append({"index": {"_index": index, "_id": doc.doc_id}})
                operations.append(source)
            response = self._api_bulk(operations)
            self._raise_for_items(response, "upsert", tenant)

    def _source(self, doc: Document) -> dict[str, Any]:
        return {
            "doc_id": doc.doc_id,
            "hash": doc.content_hash,
            "tokens": tokens(doc.metadata),
            "vector": vector_to_floats(doc.vector),
            "payload": {
                "vector": vector_to_b64(doc.vector),
                "meta": metadata_to_json(doc.metadata),
                "text": doc.text,
            },
        }

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        index = self.index_name(tenant)
        removed = 0
        for chunk in chunks(doc_ids, BULK_MAX_DOCS):
            operations = [{"delete": {"_index": index, "_id": d}} for d in chunk]
            response = self._api_bulk(operations)
            removed += self._raise_for_items(response, "delete", tenant)
        return removed

    def _raise_for_items(self, response: Mapping[str, Any], op: str, tenant: str) -> int:
        """Raise for the first failed item of a bulk; return how many items changed a doc."""
        changed = 0
        failed: list[Mapping[str, Any]] = []
        for item in response.get("items") or []:
            result: Mapping[str, Any] = (
                next(iter(item.values()), {}) if isinstance(item, Mapping) else {}
            )
            error = result.get("error")
            if error is None:
                if result.get("result") in ("created", "updated", "deleted"):
                    changed += 1
                continue
            if op == "delete" and _error_type(error) == "index_not_found_exception":
                continue
            failed.append(result)
        if failed:
            first = failed[0]
            status = int(first.get("status") or 500)
            reason = f"{_error_type(first.get('error'))}: {_error_reason(first.get('error'))}"
            detail = f"{len(failed)} of {len(response.get('items') or [])} bulk items failed"
            if status >= 500 or status in (401, 403, 429):
                raise error_for_status(
                    self.kind,
                    op,
                    tenant,
                    status=status,
                    reason=f"{detail}; first: {reason}",
                    endpoint=self._endpoint,
                )
            raise StoreError(self.kind, op, f"{detail}; first (HTTP {status}) {reason}", tenant)
        return changed

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        clause = _filter_clause(filter)
        body = self._knn_body(vector_to_floats(vector), k, clause)
        body.update({"size": k, "_source": ["doc_id", "payload.meta"]})
        response = self._api_search(self.index_name(tenant), body)
        if response is None:
            return []
        hits = []
        for raw in (response.get("hits") or {}).get("hits") or []:
            source = raw.get("_source") or {}
            metadata = self._metadata(source, raw.get("_id"))
            if not matches(metadata, filter):
                continue
            hits.append(
                Hit(
                    str(source.get("doc_id", raw["_id"])), self._similarity(raw["_score"]), metadata
                )
            )
        hits.sort(key=lambda h: -h.score)
        return hits

    def _metadata(self, source: Mapping[str, Any], doc_id: object) -> dict[str, Any]:
        payload = source.get("payload") or {}
        try:
            return metadata_from_json(payload["meta"])
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise corrupt(
                self.kind, "read", f"document {doc_id!r}", f"bad metadata ({exc})"
            ) from exc

    def _document(self, tenant: str, source: Mapping[str, Any], doc_id: str) -> Document:
        payload = source.get("payload") or {}
        try:
            vector = vector_from_b64(payload["vector"])
        except (KeyError, TypeError, ValueError) as exc:
            raise corrupt(self.kind, "read", f"document {doc_id!r}", f"bad vector ({exc})") from exc
        text = payload.get("text")
        return Document(
            tenant,
            doc_id,
            vector,
            self._metadata(source, doc_id),
            text if isinstance(text, str) else None,
        )

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        index = self.index_name(tenant)
        out: dict[str, Document] = {}
        for chunk in chunks(doc_ids, MGET_MAX_IDS):
            for doc in self._found(self._api_mget(index, chunk, SOURCE_FIELDS), "get", tenant):
                doc_id = str(doc["_id"])
                out[doc_id] = self._document(tenant, doc.get("_source") or {}, doc_id)
        return {d: out[d] for d in doc_ids if d in out}

    def _scan_page(self, tenant: str, after: str | None, limit: int) -> list[Document]:
        index = self.index_name(tenant)
        page: list[Document] = []
        cursor = after
        while len(page) < limit:
            size = min(limit - len(page), PAGE_MAX)
            body: dict[str, Any] = {
                "size": size,
                "query": {"match_all": {}},
                "sort": [{"doc_id": "asc"}],
                "_source": SOURCE_FIELDS,
                "track_total_hits": False,
            }
            if cursor is not None:
                body["search_after"] = [cursor]
            response = self._api_search(index, body)
            raw_hits = [] if response is None else (response.get("hits") or {}).get("hits") or []
            for raw in raw_hits:
                source = raw.get("_source") or {}
                page.append(self._document(tenant, source, str(source.get("doc_id", raw["_id"]))))
            if len(raw_hits) < size:
                break
            cursor = page[-1].doc_id
        return page

    def _count(self, tenant: str) -> int:
        return self._api_count(self.index_name(tenant))

    def _tenants(self) -> list[str]:
        out = []
        for index in self._api_indices(f"{self._prefix}-t-*"):
            tenant = self.tenant_of(index)
            if tenant is not None and self._api_count(index) > 0:
                out.append(tenant)
        return out

    def _close(self) -> None:
        with self._lock:
            client, self._client_obj = self._client_obj, None
            self._indexes.clear()
        if client is not None:
            self._api_close(client)


def _filter_clause(flt: Filter) -> dict[str, Any] | None:
    if not flt:
        return None
    return {"bool": {"filter": [{"term": {"tokens": t}} for t in tokens(flt)]}}


def _error_type(error: object) -> str:
    if isinstance(error, Mapping):
        return str(error.get("type", "error"))
    return str(error)


def _error_reason(error: object) -> str:
    if isinstance(error, Mapping):
        return str(error.get("reason", ""))
    return ""


def api_error_reason(body: object, fallback: str) -> str:
    """``type: reason`` of an Elasticsearch-style error body (``{"error": {...}}``)."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            root = (error.get("root_cause") or [error])[0]
            if isinstance(root, Mapping):
                return f"{root.get('type', 'error')}: {root.get('reason', '')}".strip()
        if isinstance(error, str):
            return error
    return fallback

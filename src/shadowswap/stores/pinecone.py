"""Pinecone store: a dense, vector-based index through the official ``pinecone`` SDK (REST).

Tested here at the HTTP level only (Pinecone is a hosted service): the SDK's real requests go
to a scripted stub whose answers follow Pinecone's documented data-plane responses; see
``docs/stores-http.md`` for exactly what that does and does not prove. The SDK's gRPC
transport (``GrpcIndex``) is not used: REST needs no extra dependency and is what is tested.

Location: ``RETRIEVAL_PINECONE_URL=https://<index host>?api_key=KEY``, the host that
``describe_index`` reports (``http://localhost:5081``-style hosts work for Pinecone Local).
The index must exist: create it as a *dense* index with ``dimension`` = your embeddings' and
metric ``cosine`` (or ``dotproduct``) for ``RETRIEVAL_METRIC=cosine``, ``dotproduct`` for
``dot``, ``euclidean`` for ``l2``. The adapter only uses the data plane, so it needs no
cloud, region or plan settings. The key is passed explicitly; the SDK's own
``PINECONE_API_KEY`` fallback is never reached.

Semantics
    tenants     one namespace per tenant, named exactly as the tenant (namespaces are created
                by the first upsert). ``__default__`` is Pinecone's alias of the default
                namespace, so that one tenant id is refused. Dedicate the index to shadowswap:
                ``tenants()`` lists every namespace whose name is a tenant id.
    store info  the index itself: ``describe_index_stats`` reports its dimension (fixed when
                the index was created, so the store's dimension is known before any write)
                and its metric, which must fit ``RETRIEVAL_METRIC`` (checked on first use).
    ids         record ids are ASCII of at most 512 characters: a doc id that is ASCII and
                does not start with ``~`` is used as is; any other becomes ``~`` + the SHA-256
                hex of its UTF-8 bytes. The doc id itself is kept in metadata ``ss_doc_id``.
    metric      scores: ``cosine`` is the cosine similarity, ``dotproduct`` the inner product
                (both used as they are); ``euclidean`` is read as the squared distance,
                lower is closer (Pinecone's indexing overview), and negated.
    metadata    Pinecone keeps numbers as 64-bit floats, so ``7`` would come back ``7.0`` and
                integers beyond 2**53 would be rounded. The exact metadata therefore travels
                as canonical JSON in ``ss_meta`` (a string), the filter tokens in
                ``ss_tokens`` (a list of strings), the content hash in ``ss_hash`` and the
                text in ``ss_text`` (absent when the document has none). A record's metadata
                is limited to 40 KB: a document whose fields exceed it is refused before
                anything is sent.
    filters     ``{"$and": [{"ss_tokens": {"$eq": token}}, ...]}``: on a list field ``$eq``
                matches when the list holds the value, and Pinecone returns the top k among
                matching records; hits are re-checked against the exact metadata.
    consistency Pinecone is eventually consistent: an acknowledged upsert or delete becomes
                visible to query, fetch, list and the stats a short time later (seconds).
                Read-your-writes checks, counts right after writes, and a reconcile started
                right after a backfill can see the previous state; wait, or re-run.
    batches     upserts of at most 1,000 records and 2 MB (1.9 MiB here, for headroom),
                deletes of at most 1,000 ids, fetches of at most 200 ids and 8,000 characters
                of ids (a fetch carries its ids in the URL). ``list`` pages hold 100 ids.
    scan        ``list`` pages the ids of a namespace with no order we rely on: ``scan`` lists
                them once (memory grows with the number of ids), learns the doc ids of hashed
                ids, sorts by doc id and fetches in batches. ``list`` exists on serverless
                indexes only.
    failures    the SDK retries 408/429/5xx answers and lost connections three times with
                jittered backoff (honouring ``Retry-After``); this is not configurable on a
                data-plane ``Index``. Deletes first fetch which ids exist, because Pinecone's
                delete reports no count.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pinecone
import pinecone.errors.exceptions as pex

from shadowswap.errors import (
    ConfigError,
    IncompatibleStore,
    InvalidInput,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.similarity import Metric
from shadowswap.stores.base import check_engine_metric, matches
from shadowswap.stores.paging import SortedIdScan
from shadowswap.stores.remote import (
    chunks,
    corrupt,
    error_for_status,
    json_size,
    metadata_from_json,
    metadata_to_json,
    parse_endpoint,
    short,
    sized_chunks,
    vector_to_floats,
)
from shadowswap.stores.tokens import tokens
from shadowswap.values import TENANT_RE, Document, Filter, Hit, Vector

log = logging.getLogger("shadowswap.stores.pinecone")

UPSERT_MAX_RECORDS = 1000
UPSERT_MAX_BYTES = 1_900_000
DELETE_MAX_IDS = 1000
FETCH_MAX_IDS = 200
FETCH_MAX_ID_CHARS = 8000
LIST_PAGE = 100
METADATA_MAX_BYTES = 40 * 1024
DEFAULT_NAMESPACE = "__default__"
#: the index metrics each of our metrics can run on
INDEX_METRICS = {
    Metric.COSINE: ("cosine", "dotproduct"),
    Metric.DOT: ("dotproduct",),
    Metric.L2: ("euclidean",),
}


def record_id(doc_id: str) -> str:
    """The Pinecone record id of a doc id (see "ids" in the module docstring)."""
    if doc_id.isascii() and not doc_id.startswith("~"):
        return doc_id
    return "~" + hashlib.sha256(doc_id.encode("utf-8")).hexdigest()


class PineconeStore(SortedIdScan):
    """A Pinecone dense index, one namespace per tenant; see the module docstring."""

    kind = "pinecone"

    def __init__(
        self, location: str, metric: Metric = Metric.COSINE, *, timeout_s: float = 10.0
    ) -> None:
        self._endpoint = parse_endpoint(self.kind, location, {})
        super().__init__(self._endpoint.shown, metric)
        if not self._endpoint.api_key:
            raise ConfigError(
                self._endpoint.variable,
                self._endpoint.shown,
                "Pinecone needs an API key: add ?api_key=<key> to the index host URL",
            )
        self._timeout_s = timeout_s
        self._lock = threading.RLock()
        self._index_obj: Any = None
        self._dim: int | None = None
        self._index_metric: str | None = None

    # -- connection ------------------------------------------------------------------------
    def _index(self) -> Any:
        with self._lock:
            if self._index_obj is None:
                self._index_obj = pinecone.Index(
                    host=self._endpoint.base_url,
                    api_key=self._endpoint.api_key,
                    timeout=self._timeout_s,
                    source_tag="shadowswap",
                )
            return self._index_obj

    def _namespace(self, tenant: str) -> str:
        if tenant == DEFAULT_NAMESPACE:
            raise InvalidInput(
                "tenant",
                f"{DEFAULT_NAMESPACE!r} is Pinecone's alias of the default namespace and cannot "
                "be a tenant's namespace",
            )
        return tenant

    def _stats(self) -> Any:
        stats = self._index().describe_index_stats()
        self._check_index(stats)
        return stats

    def _check_index(self, stats: Any) -> None:
        if stats.vector_type not in (None, "dense") or stats.dimension is None:
            raise IncompatibleStore(
                self.kind,
                "open",
                f"{self._endpoint.shown} is not a dense vector index (vector_type "
                f"{stats.vector_type!r}); create a dense index with a dimension and a metric",
            )
        metric = stats.metric
        if metric is not None:
            check_engine_metric(
                self.kind, str(metric), metric=self._metric, accepted=INDEX_METRICS,
                what=f"the index at {self._endpoint.shown}", setting="metric",
                elsewhere=f"point {self._endpoint.variable} at an index of such a metric",
            )  # fmt: skip
        elif self._index_metric is None:
            log.warning("pinecone did not report the index metric; it cannot be checked")
        self._index_metric = (metric or INDEX_METRICS[self._metric][0]).lower()
        self._dim = int(stats.dimension)

    # -- BaseStore -------------------------------------------------------------------------
    def _stored_dimension(self) -> int | None:
        if self._dim is None:
            with self._lock:
                self._stats()
        return self._dim

    def _fix_dimension(self, dimension: int) -> int:  # pragma: no cover - never unknown
        """The index's dimension is known from its stats before any write."""
        return self._stored_dimension() or dimension

    def _fetch(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Any]:
        """Stored records of ``doc_ids`` by record id."""
        namespace = self._namespace(tenant)
        out: dict[str, Any] = {}
        ids = [record_id(d) for d in doc_ids]
        for chunk in sized_chunks(
            ids, [len(i) + 5 for i in ids], FETCH_MAX_IDS, FETCH_MAX_ID_CHARS
        ):
            out.update(self._index().fetch(ids=list(chunk), namespace=namespace).vectors)
        return out

    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        out = {}
        for record in self._fetch(tenant, doc_ids).values():
            meta = record.metadata or {}
            out[str(meta.get("ss_doc_id"))] = str(meta.get("ss_hash", ""))
        return out

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        namespace = self._namespace(tenant)
        records = [self._record(d) for d in documents]
        sizes = [json_size(r) for r in records]
        for chunk in sized_chunks(records, sizes, UPSERT_MAX_RECORDS, UPSERT_MAX_BYTES):
            response = self._index().upsert(vectors=list(chunk), namespace=namespace)
            if response.upserted_count != len(chunk):
                raise StoreError(
                    self.kind,
                    "upsert",
                    f"Pinecone acknowledged {response.upserted_count} of {len(chunk)} records",
                    tenant,
                )

    def _record(self, doc: Document) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "ss_doc_id": doc.doc_id,
            "ss_hash": doc.content_hash,
            "ss_meta": metadata_to_json(doc.metadata),
        }
        toks = tokens(doc.metadata)
        if toks:
            metadata["ss_tokens"] = toks
        if doc.text is not None:
            metadata["ss_text"] = doc.text
        size = json_size(metadata)
        if size > METADATA_MAX_BYTES:
            raise InvalidInput(
                f"document {doc.doc_id!r}",
                f"its metadata, text and shadowswap's fields take {size} bytes; Pinecone keeps "
                f"at most {METADATA_MAX_BYTES} bytes of metadata per record",
            )
        return {
            "id": record_id(doc.doc_id),
            "values": vector_to_floats(doc.vector),
            "metadata": metadata,
        }

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        namespace = self._namespace(tenant)
        present = list(self._fetch(tenant, doc_ids))
        for chunk in chunks(present, DELETE_MAX_IDS):
            self._index().delete(ids=list(chunk), namespace=namespace)
        return len(present)

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        namespace = self._namespace(tenant)
        query: dict[str, Any] = {
            "top_k": k,
            "vector": vector_to_floats(vector),
            "namespace": namespace,
            "include_metadata": True,
        }
        if filter:
            clauses = [{"ss_tokens": {"$eq": t}} for t in tokens(filter)]
            query["filter"] = clauses[0] if len(clauses) == 1 else {"$and": clauses}
        response = self._index().query(**query)
        euclidean = self._index_metric == "euclidean"
        hits = []
        for match in response.matches:
            meta = match.metadata or {}
            metadata = self._metadata(meta, match.id)
            if matches(metadata, filter):
                score = -float(match.score) if euclidean else float(match.score)
                hits.append(Hit(str(meta.get("ss_doc_id", match.id)), score, metadata))
        hits.sort(key=lambda h: -h.score)
        return hits

    def _metadata(self, meta: Mapping[str, Any], rid: str) -> dict[str, Any]:
        try:
            return metadata_from_json(str(meta["ss_meta"]))
        except (KeyError, ValueError, InvalidInput) as exc:
            raise corrupt(self.kind, "read", f"record {rid!r}", f"bad ss_meta ({exc})") from exc

    def _document(self, tenant: str, record: Any) -> Document:
        meta = record.metadata or {}
        doc_id = meta.get("ss_doc_id")
        if not isinstance(doc_id, str) or not record.values:
            raise corrupt(self.kind, "read", f"record {record.id!r}", "no ss_doc_id or values")
        text = meta.get("ss_text")
        return Document(
            tenant,
            doc_id,
            record.values,
            self._metadata(meta, record.id),
            text if isinstance(text, str) else None,
        )

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        docs = [self._document(tenant, r) for r in self._fetch(tenant, doc_ids).values()]
        by_id = {d.doc_id: d for d in docs}
        return {d: by_id[d] for d in doc_ids if d in by_id}

    def _all_ids(self, tenant: str) -> list[str]:
        namespace = self._namespace(tenant)
        plain: list[str] = []
        hashed: list[str] = []
        for page in self._index().list(namespace=namespace, limit=LIST_PAGE):
            for item in page.vectors:
                rid = str(item.id)
                (hashed if rid.startswith("~") else plain).append(rid)
        for chunk in chunks(hashed, FETCH_MAX_IDS):
            for record in (
                self._index().fetch(ids=list(chunk), namespace=namespace).vectors.values()
            ):
                doc_id = (record.metadata or {}).get("ss_doc_id")
                if isinstance(doc_id, str):
                    plain.append(doc_id)
        return plain

    def _count(self, tenant: str) -> int:
        summary = self._stats().namespaces.get(self._namespace(tenant))
        return 0 if summary is None else int(summary.vector_count)

    def _tenants(self) -> list[str]:
        return [
            name
            for name, summary in self._stats().namespaces.items()
            if name != DEFAULT_NAMESPACE and TENANT_RE.fullmatch(name) and summary.vector_count > 0
        ]

    def _close(self) -> None:
        with self._lock:
            index, self._index_obj = self._index_obj, None
        if index is not None:
            index.close()

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        where = self._endpoint.shown
        if isinstance(exc, pex.PineconeTimeoutError):
            return StoreTimeout(
                self.kind, op, f"{where}: no answer in {self._timeout_s:g} s", tenant
            )
        if isinstance(exc, pex.PineconeConnectionError):
            return StoreUnavailable(self.kind, op, f"cannot reach {where} ({short(exc)})", tenant)
        if isinstance(exc, pex.ApiError):
            reason = str(getattr(exc, "message", "") or short(exc))
            if exc.status_code == 404:
                return StoreUnavailable(
                    self.kind,
                    op,
                    f"{where} answered 404 ({reason}); is it the host of an existing index "
                    f"(describe_index's host) in {self._endpoint.variable}?",
                    tenant,
                )
            return error_for_status(
                self.kind,
                op,
                tenant,
                status=exc.status_code,
                reason=reason,
                endpoint=self._endpoint,
            )
        if isinstance(exc, pex.PineconeError):
            return StoreError(self.kind, op, f"{type(exc).__name__}: {short(exc)}", tenant)
        return None

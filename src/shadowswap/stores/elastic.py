"""Elasticsearch store: dense_vector kNN through the official ``elasticsearch`` client (9.x).

Tested here at the HTTP level only (no Elasticsearch runs on this machine): the client's real
requests go to a scripted stub whose answers follow Elastic's documented response shapes; see
``docs/stores-http.md`` for exactly what that does and does not prove.

Location: ``RETRIEVAL_ELASTIC_URL=https://user:password@host:9200`` (basic auth) or
``https://host:9200?api_key=<base64 id:key>`` (an API key, sent as ``Authorization: ApiKey``);
options ``index_prefix`` and ``ca_certs``.

Semantics (the shared ones are in `shadowswap.stores.searchengine`)
    vector field ``dense_vector`` with ``index_options: {"type": "hnsw"}`` set explicitly:
                since 9.1 Elasticsearch indexes float vectors as ``bbq_hnsw`` (>= 384
                dimensions) or ``int8_hnsw`` by default, and scores quantized vectors, which
                would make scores differ from every other store. At most 4,096 dimensions.
    metric      cosine -> ``dot_product`` on our unit vectors (Elasticsearch's ``cosine``
                renormalises stored vectors; ``dot_product`` keeps them and checks they are unit
                length), dot -> ``max_inner_product`` (``dot_product`` would refuse non-unit
                vectors), l2 -> ``l2_norm``. An existing tenant index must have that
                ``similarity`` (for cosine, ``cosine`` too: it scores our unit vectors alike;
                a mapping without one has the documented default, ``cosine``).
    scores      ``_score`` is ``(1 + x) / 2`` for dot_product, ``x + 1`` or ``1 / (1 - x)``
                for max_inner_product, ``1 / (1 + d²)`` for l2_norm (the dense_vector
                reference); converted back exactly by `shadowswap.stores.remote`.
    search      approximate (HNSW): ``knn`` with ``k``, ``num_candidates`` = max(100, 10 k)
                capped at 10,000, and the filter inside ``knn.filter`` (top k among matches).
    versions    the 9.x client sends ``compatible-with=9`` headers, which Elasticsearch 8
                refuses (``media_type_header_exception``): reported as an incompatible store
                with the fix (install ``elasticsearch>=8,<9`` for an 8.x cluster). The client
                also refuses a server that does not send ``X-Elastic-Product: Elasticsearch``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import elastic_transport
import elasticsearch

from shadowswap.errors import IncompatibleStore, StoreError, StoreTimeout, StoreUnavailable
from shadowswap.similarity import Metric
from shadowswap.stores.remote import (
    Endpoint,
    error_for_status,
    short,
    similarity_from_half_shift,
    similarity_from_inverse_square,
    similarity_from_mip,
)
from shadowswap.stores.searchengine import SearchEngineStore, api_error_reason

SIMILARITY = {Metric.COSINE: "dot_product", Metric.DOT: "max_inner_product", Metric.L2: "l2_norm"}
#: the similarities of an existing index each metric runs on (the first is the one we create)
SIMILARITIES = {
    Metric.COSINE: ("dot_product", "cosine"),
    Metric.DOT: ("max_inner_product",),
    Metric.L2: ("l2_norm",),
}
RETRY_ON_STATUS = (429, 502, 503, 504)


class ElasticStore(SearchEngineStore):
    """Elasticsearch 9.x; see the module docstring."""

    kind = "elastic"
    max_dimension = 4096
    distance_setting = "similarity"
    distances = SIMILARITIES

    def _connect(self, endpoint: Endpoint, timeout_s: float) -> Any:
        options: dict[str, Any] = {
            "request_timeout": timeout_s,
            "max_retries": 2,
            "retry_on_status": RETRY_ON_STATUS,
            "retry_on_timeout": False,
            # full-jitter backoff between retries (the client's default is none at all)
            "retry_backoff_base": 0.25,
            "retry_backoff_cap": 2.0,
        }
        if endpoint.username is not None:
            options["basic_auth"] = (endpoint.username, endpoint.password or "")
        if endpoint.api_key:
            options["api_key"] = endpoint.api_key
        if "ca_certs" in endpoint.options:
            options["ca_certs"] = endpoint.options["ca_certs"]
        return elasticsearch.Elasticsearch([endpoint.base_url], **options)

    def _vector_mapping(self, dimension: int) -> dict[str, Any]:
        return {
            "type": "dense_vector",
            "dims": dimension,
            "index": True,
            "similarity": SIMILARITY[self._metric],
            "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
        }

    def _index_settings(self) -> dict[str, Any]:
        return {}

    def _knn_body(
        self, vector: list[float], k: int, filter_clause: dict[str, Any] | None
    ) -> dict[str, Any]:
        knn: dict[str, Any] = {
            "field": "vector",
            "query_vector": vector,
            "k": k,
            "num_candidates": min(10_000, max(100, 10 * k)),
        }
        if filter_clause is not None:
            knn["filter"] = filter_clause
        return {"knn": knn, "track_total_hits": False}

    def _similarity(self, score: float) -> float:
        if self._metric is Metric.L2:
            return similarity_from_inverse_square(score)
        if self._metric is Metric.DOT:
            return similarity_from_mip(score)
        return similarity_from_half_shift(score)

    def _distance_of(self, mapping: Mapping[str, Any]) -> str | None:
        similarity = mapping.get("similarity", "cosine")  # the dense_vector default
        return str(similarity) if similarity is not None else None

    # -- the client's calls ----------------------------------------------------------------
    def _api_get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        try:
            return dict(self._client().get(index=index, id=doc_id).body)
        except elasticsearch.NotFoundError:
            return None

    def _api_create_index(self, index: str, body: dict[str, Any]) -> bool:
        try:
            self._client().indices.create(
                index=index, mappings=body["mappings"], settings=body.get("settings") or None
            )
        except elasticsearch.BadRequestError as exc:
            if "resource_already_exists_exception" in api_error_reason(exc.body, ""):
                return False
            raise
        return True

    def _api_create_doc(self, index: str, doc_id: str, document: dict[str, Any]) -> bool:
        try:
            self._client().create(index=index, id=doc_id, document=document, refresh="wait_for")
        except elasticsearch.ConflictError:
            return False
        return True

    def _api_mget(self, index: str, ids: Sequence[str], fields: list[str]) -> list[Any]:
        try:
            response = self._client().mget(index=index, ids=list(ids), source=fields)
        except elasticsearch.NotFoundError:
            return []
        return list(response.body.get("docs") or [])

    def _api_bulk(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self._client().bulk(operations=operations, refresh="wait_for").body)

    def _api_search(self, index: str, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return dict(self._client().search(index=index, body=body).body)
        except elasticsearch.NotFoundError:
            return None

    def _api_count(self, index: str) -> int:
        try:
            return int(self._client().count(index=index).body["count"])
        except elasticsearch.NotFoundError:
            return 0

    def _api_indices(self, pattern: str) -> list[str]:
        try:
            return sorted(self._client().indices.get_alias(index=pattern).body)
        except elasticsearch.NotFoundError:
            return []

    def _api_vector_mappings(self, pattern: str) -> dict[str, Any]:
        try:
            response = self._client().indices.get_field_mapping(index=pattern, fields="vector")
            return dict(response.body)
        except elasticsearch.NotFoundError:
            return {}

    def _api_close(self, client: Any) -> None:
        client.close()

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        where = self._endpoint.shown
        if isinstance(exc, elastic_transport.ConnectionTimeout):
            return StoreTimeout(
                self.kind, op, f"{where}: no answer in {self._timeout_s:g} s", tenant
            )
        if isinstance(exc, elastic_transport.ConnectionError):
            return StoreUnavailable(self.kind, op, f"cannot reach {where} ({short(exc)})", tenant)
        if isinstance(exc, elasticsearch.UnsupportedProductError):
            return IncompatibleStore(
                self.kind,
                op,
                f"{where} did not identify as Elasticsearch (no X-Elastic-Product header); "
                "point RETRIEVAL_ELASTIC_URL at an Elasticsearch 9 cluster",
                tenant,
            )
        if isinstance(exc, elasticsearch.ApiError):
            return self._api_error(exc, op, tenant)
        if isinstance(exc, elastic_transport.TransportError):
            return StoreUnavailable(self.kind, op, f"{where}: {short(exc)}", tenant)
        return None

    def _api_error(self, exc: elasticsearch.ApiError, op: str, tenant: str | None) -> StoreError:
        reason = api_error_reason(exc.body, str(exc.message))
        if "media_type_header_exception" in reason:
            return IncompatibleStore(
                self.kind,
                op,
                f"{self._endpoint.shown} refused the client's compatibility header ({reason}); "
                "the installed elasticsearch client is 9.x, which needs an Elasticsearch 9 "
                "server (for 8.x install elasticsearch>=8,<9)",
                tenant,
            )
        return error_for_status(
            self.kind, op, tenant, status=exc.meta.status, reason=reason, endpoint=self._endpoint
        )

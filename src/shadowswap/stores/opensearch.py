"""OpenSearch store: the k-NN plugin through the official ``opensearch-py`` client.

Tested here at the HTTP level only (no OpenSearch runs on this machine): the client's real
requests go to a scripted stub whose answers follow the OpenSearch documentation's response
shapes; see ``docs/stores-http.md`` for exactly what that does and does not prove.

Location: ``RETRIEVAL_OPENSEARCH_URL=https://user:password@host:9200`` (basic auth); options
``index_prefix`` and ``ca_certs``. AWS SigV4 signing is not supported.

Semantics (the shared ones are in `shadowswap.stores.searchengine`)
    vector field ``knn_vector`` with an ``hnsw`` method on the ``lucene`` engine, in an index
                with ``index.knn: true``. Lucene because it filters *during* the graph search
                and falls back to exact search when the filter is selective, so a filtered
                query returns the true top k among matching documents; Lucene also sets
                ``ef_search`` to the query's ``k``, which we raise to at least 100. At most
                16,000 dimensions. Needs OpenSearch 2.13 or later (``innerproduct`` on Lucene).
    metric      cosine -> ``cosinesimil``, dot -> ``innerproduct``, l2 -> ``l2`` (the
                ``space_type``). An existing tenant index must have that ``space_type`` (in its
                ``method`` or on the field; absent, the documented default is ``l2``).
    scores      per the k-NN "Spaces" reference: ``cosinesimil`` scores ``(2 - d) / 2`` with
                ``d = 1 - cos``, i.e. ``(1 + cos) / 2``; ``l2`` scores ``1 / (1 + d)`` with
                ``d`` the *squared* distance; ``innerproduct`` on Lucene scores ``x + 1`` for
                ``x > 0`` and ``1 / (1 - x)`` otherwise (Faiss and NMSLIB define it on
                ``d = -x`` and end at the same function). Converted back exactly by
                `shadowswap.stores.remote`. Other engines or spaces are not used.
    search      approximate (HNSW): a ``knn`` query with ``k`` = max(k, 100), ``size`` = k,
                the filter inside the ``knn`` clause (efficient filtering).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import opensearchpy

from shadowswap.errors import StoreError, StoreTimeout, StoreUnavailable
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

SPACE = {Metric.COSINE: "cosinesimil", Metric.DOT: "innerproduct", Metric.L2: "l2"}
#: the space types of an existing index each metric runs on
SPACES = {metric: (space,) for metric, space in SPACE.items()}
RETRY_ON_STATUS = (429, 502, 503, 504)


class OpenSearchStore(SearchEngineStore):
    """OpenSearch 2.13+ with the k-NN plugin; see the module docstring."""

    kind = "opensearch"
    max_dimension = 16_000
    distance_setting = "space_type"
    distances = SPACES

    def _connect(self, endpoint: Endpoint, timeout_s: float) -> Any:
        options: dict[str, Any] = {
            "timeout": timeout_s,
            "max_retries": 2,
            "retry_on_status": RETRY_ON_STATUS,
            "retry_on_timeout": False,
        }
        if endpoint.username is not None:
            options["http_auth"] = (endpoint.username, endpoint.password or "")
        if endpoint.secure:
            options["verify_certs"] = True
            if "ca_certs" in endpoint.options:
                options["ca_certs"] = endpoint.options["ca_certs"]
        return opensearchpy.OpenSearch([endpoint.base_url], **options)

    def _vector_mapping(self, dimension: int) -> dict[str, Any]:
        return {
            "type": "knn_vector",
            "dimension": dimension,
            "method": {
                "name": "hnsw",
                "engine": "lucene",
                "space_type": SPACE[self._metric],
                "parameters": {"m": 16, "ef_construction": 100},
            },
        }

    def _index_settings(self) -> dict[str, Any]:
        return {"index": {"knn": True}}

    def _knn_body(
        self, vector: list[float], k: int, filter_clause: dict[str, Any] | None
    ) -> dict[str, Any]:
        clause: dict[str, Any] = {"vector": vector, "k": max(k, 100)}
        if filter_clause is not None:
            clause["filter"] = filter_clause
        return {"query": {"knn": {"vector": clause}}}

    def _similarity(self, score: float) -> float:
        if self._metric is Metric.L2:
            return similarity_from_inverse_square(score)
        if self._metric is Metric.DOT:
            return similarity_from_mip(score)
        return similarity_from_half_shift(score)

    def _distance_of(self, mapping: Mapping[str, Any]) -> str | None:
        method = mapping.get("method")
        if isinstance(method, Mapping) and method.get("space_type"):
            return str(method["space_type"])
        if mapping.get("space_type"):
            return str(mapping["space_type"])
        if mapping.get("model_id"):
            return None  # the space is the trained model's: not in the mapping
        return "l2"  # the documented default

    # -- the client's calls ----------------------------------------------------------------
    def _api_get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        try:
            return dict(self._client().get(index=index, id=doc_id))
        except opensearchpy.NotFoundError:
            return None

    def _api_create_index(self, index: str, body: dict[str, Any]) -> bool:
        try:
            self._client().indices.create(index=index, body=body)
        except opensearchpy.RequestError as exc:
            if "resource_already_exists_exception" in api_error_reason(exc.info, str(exc.error)):
                return False
            raise
        return True

    def _api_create_doc(self, index: str, doc_id: str, document: dict[str, Any]) -> bool:
        try:
            self._client().create(index=index, id=doc_id, body=document, refresh="wait_for")
        except opensearchpy.ConflictError:
            return False
        return True

    def _api_mget(self, index: str, ids: Sequence[str], fields: list[str]) -> list[Any]:
        try:
            response = self._client().mget(index=index, body={"ids": list(ids)}, _source=fields)
        except opensearchpy.NotFoundError:
            return []
        return list(response.get("docs") or [])

    def _api_bulk(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self._client().bulk(body=operations, refresh="wait_for"))

    def _api_search(self, index: str, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return dict(self._client().search(index=index, body=body))
        except opensearchpy.NotFoundError:
            return None

    def _api_count(self, index: str) -> int:
        try:
            return int(self._client().count(index=index)["count"])
        except opensearchpy.NotFoundError:
            return 0

    def _api_indices(self, pattern: str) -> list[str]:
        try:
            return sorted(self._client().indices.get_alias(index=pattern))
        except opensearchpy.NotFoundError:
            return []

    def _api_vector_mappings(self, pattern: str) -> dict[str, Any]:
        try:
            return dict(self._client().indices.get_field_mapping(fields="vector", index=pattern))
        except opensearchpy.NotFoundError:
            return {}

    def _api_close(self, client: Any) -> None:
        client.close()

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        where = self._endpoint.shown
        if isinstance(exc, opensearchpy.ConnectionTimeout):
            return StoreTimeout(
                self.kind, op, f"{where}: no answer in {self._timeout_s:g} s", tenant
            )
        if isinstance(exc, opensearchpy.ConnectionError):
            return StoreUnavailable(self.kind, op, f"cannot reach {where} ({short(exc)})", tenant)
        if isinstance(exc, opensearchpy.TransportError) and isinstance(exc.status_code, int):
            reason = api_error_reason(exc.info, str(exc.error))
            return error_for_status(
                self.kind,
                op,
                tenant,
                status=exc.status_code,
                reason=reason,
                endpoint=self._endpoint,
            )
        if isinstance(exc, opensearchpy.OpenSearchException):
            return StoreUnavailable(self.kind, op, f"{where}: {short(exc)}", tenant)
        return None

"""Weaviate's answers, REST and gRPC, in their documented shapes.

Sources:
  REST  https://weaviate.io/developers/weaviate/api/rest (``GET /v1/meta``,
        ``GET/POST /v1/schema``, ``HEAD /v1/schema/{class}/tenants/{tenant}``; errors are
        ``{"error": [{"message": ...}]}``, 422 for an existing class)
  gRPC  Weaviate's ``v1/*.proto`` (``weaviate.v1.Weaviate``: Search, BatchObjects, BatchDelete,
        Aggregate, TenantsGet), whose generated classes ship with the client and are used here
  config reference: distances https://weaviate.io/developers/weaviate/config-refs/distances
        (``dot`` is ``-x``, ``l2-squared`` the squared distance), multi-tenancy
        https://weaviate.io/developers/weaviate/manage-data/multi-tenancy
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
)

from tests.stores.http_stubs.server import Reply

VERSION = "1.32.5"


def meta() -> Reply:
    return Reply(
        200,
        {
            "hostname": "http://[::]:8080",
            "modules": {},
            "version": VERSION,
            "grpcMaxMessageSize": 104858000,
        },
    )


def schema_class(description: str, distance: str = "dot", name: str = "Shadowswap") -> Reply:
    """``GET /v1/schema/{class}`` for a collection created as the adapter creates it."""
    return Reply(
        200,
        {
            "class": name,
            "description": description,
            "invertedIndexConfig": {
                "bm25": {"b": 0.75, "k1": 1.2},
                "cleanupIntervalSeconds": 60,
                "stopwords": {"additions": None, "preset": "en", "removals": None},
            },
            "multiTenancyConfig": {
                "enabled": True,
                "autoTenantCreation": True,
                "autoTenantActivation": True,
            },
            "properties": [
                {
                    "name": "doc_id",
                    "dataType": ["text"],
                    "indexFilterable": False,
                    "indexSearchable": False,
                    "indexRangeFilters": False,
                    "tokenization": "word",
                },
                {
                    "name": "ss_tokens",
                    "dataType": ["text[]"],
                    "indexFilterable": True,
                    "indexSearchable": False,
                    "indexRangeFilters": False,
                    "tokenization": "field",
                },
            ],
            "replicationConfig": {"factor": 1},
            "shardingConfig": {
                "actualCount": 1,
                "actualVirtualCount": 128,
                "desiredCount": 1,
                "desiredVirtualCount": 128,
                "function": "murmur3",
                "key": "_id",
                "strategy": "hash",
                "virtualPerPhysical": 128,
            },
            "vectorConfig": {
                "default": {
                    "vectorIndexConfig": {
                        "cleanupIntervalSeconds": 300,
                        "distance": distance,
                        "dynamicEfFactor": 8,
                        "dynamicEfMax": 500,
                        "dynamicEfMin": 100,
                        "ef": -1,
                        "efConstruction": 128,
                        "flatSearchCutoff": 40000,
                        "maxConnections": 32,
                        "skip": False,
                        "vectorCacheMaxObjects": 1000000000000,
                        "pq": {"enabled": False},
                        "bq": {"enabled": False},
                        "sq": {"enabled": False},
                    },
                    "vectorIndexType": "hnsw",
                    "vectorizer": {"none": {}},
                }
            },
        },
    )


def record(dimension: int = 3, metric: str = "cosine") -> str:
    return f'shadowswap store {{"dimension": {dimension}, "metric": "{metric}", "shadowswap": "1"}}'


def rest_error(status: int, message: str) -> Reply:
    return Reply(status, {"error": [{"message": message}]})


# -- gRPC replies -------------------------------------------------------------------------
def _value(value: Any) -> properties_pb2.Value:
    if isinstance(value, bool):
        return properties_pb2.Value(bool_value=value)
    if isinstance(value, str):
        return properties_pb2.Value(text_value=value)
    raise TypeError(value)


def result(
    object_uuid: uuid.UUID,
    props: Mapping[str, Any],
    vector: Sequence[float] | None = None,
    distance: float | None = None,
) -> search_get_pb2.SearchResult:
    metadata = search_get_pb2.MetadataResult(id=str(object_uuid))
    if distance is not None:
        metadata.distance = distance
        metadata.distance_present = True
    if vector is not None:
        metadata.vectors.append(
            base_pb2.Vectors(
                name="default",
                vector_bytes=np.asarray(vector, dtype="<f4").tobytes(),
                type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32,
            )
        )
    return search_get_pb2.SearchResult(
        properties=search_get_pb2.PropertiesResult(
            non_ref_props=properties_pb2.Properties(fields={k: _value(v) for k, v in props.items()})
        ),
        metadata=metadata,
    )


def search_reply(results: Sequence[search_get_pb2.SearchResult]) -> search_get_pb2.SearchReply:
    return search_get_pb2.SearchReply(took=0.001, results=list(results))


def batch_reply(errors: Mapping[int, str] | None = None) -> batch_pb2.BatchObjectsReply:
    return batch_pb2.BatchObjectsReply(
        took=0.002,
        errors=[
            batch_pb2.BatchObjectsReply.BatchError(index=i, error=e)
            for i, e in (errors or {}).items()
        ],
    )


def delete_reply(
    matches: int, successful: int, failed: int = 0
) -> batch_delete_pb2.BatchDeleteReply:
    return batch_delete_pb2.BatchDeleteReply(
        took=0.001, failed=failed, matches=matches, successful=successful
    )


def count_reply(n: int) -> aggregate_pb2.AggregateReply:
    return aggregate_pb2.AggregateReply(
        took=0.001, single_result=aggregate_pb2.AggregateReply.Single(objects_count=n)
    )


def tenants_reply(names: Sequence[str]) -> tenants_pb2.TenantsGetReply:
    return tenants_pb2.TenantsGetReply(
        took=0.001,
        tenants=[
            tenants_pb2.Tenant(name=n, activity_status=tenants_pb2.TENANT_ACTIVITY_STATUS_HOT)
            for n in names
        ],
    )

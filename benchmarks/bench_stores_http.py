"""Client-side cost of the hosted-store adapters: turning documents into request records.

Elasticsearch, OpenSearch, Weaviate and Pinecone cannot run here, so their search latency and
upsert rate cannot be measured; what can be is the work our adapters add before a request
leaves the process (filter tokens, exact metadata JSON, base64 float32 copy, JSON size), to
show it is not the bottleneck next to a network round trip.
"""

from __future__ import annotations

import time

from shadowswap.similarity import Metric, canonical_vector
from shadowswap.stores.elastic import ElasticStore
from shadowswap.stores.pinecone import PineconeStore
from shadowswap.stores.remote import json_size
from shadowswap.testing import clustered_corpus


def run(quick: bool) -> dict[str, float | str]:
    n = 2_000 if quick else 20_000
    docs = [
        d.with_vector(canonical_vector(d.vector, Metric.COSINE))
        for d in clustered_corpus("bench", n, 384, queries=0).documents
    ]
    elastic = ElasticStore("http://127.0.0.1:9", Metric.COSINE)  # never connects
    pinecone = PineconeStore("http://127.0.0.1:9?api_key=bench", Metric.COSINE)
    out: dict[str, float | str] = {"docs": float(n), "dimension": 384.0}

    t = time.perf_counter()
    total = sum(json_size(elastic._source(d)) for d in docs)
    out["elastic_encode_docs_per_s"] = n / (time.perf_counter() - t)
    out["elastic_bytes_per_doc"] = total / n

    t = time.perf_counter()
    total = sum(json_size(pinecone._record(d)) for d in docs)
    out["pinecone_encode_docs_per_s"] = n / (time.perf_counter() - t)
    out["pinecone_bytes_per_doc"] = total / n
    return out

"""The two ways `shadowswap.stores.qdrant.QdrantStore` reaches a Qdrant engine, behind one
small interface, chosen once when the store is opened (as qdrant-client itself does):

* `ClientEngine`: ``qdrant-client``, to a Qdrant server (REST) or in its local mode (a
  pure-Python emulation of the engine, in memory or in a directory; for tests and small data).
* `EdgeEngine`: ``qdrant-edge-py``, the Qdrant engine itself (Rust) running in this process on
  a directory: one shard, with its write-ahead log.

Both receive the same points (UUID ids, payloads with the reserved ``_ss_*`` fields) and the
same conditions (tenant, filter tokens); the store does the rest.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from qdrant_client import QdrantClient, models

from shadowswap.fileio import PRIVATE_FILE, atomic_write, make_private_dirs
from shadowswap.values import Vector

TENANT_FIELD = "_ss_tenant"
TOKENS_FIELD = "_ss_f"
ID_FIELD = "_ss_id"
FACET_LIMIT = 1_000_000
OPTIMIZE_EVERY = 200
_SCROLL = 1000

#: A point as stored: (point id, vector, payload).
Point = tuple[str, Vector, dict[str, Any]]
#: A point as read: (payload, vector or None, score or None).
Record = tuple[dict[str, Any], list[float] | None, float | None]


class Engine(Protocol):
    """What the Qdrant store needs from an engine."""

    description: str

    def identity(self) -> dict[str, str] | None:
        """The store's recorded format, metric and dimension, and the ``distance`` the engine
        ranks by (Qdrant's name: ``Dot``, ``Euclid``...); None before the first write."""

    def create(self, dimension: int, dot: bool, identity: dict[str, str]) -> None:
        """Create the collection (or shard); ``dot`` picks Dot, else Euclid distance."""

    def upsert(self, points: Sequence[Point]) -> None: ...

    def delete(self, point_ids: Sequence[str]) -> None: ...

    def retrieve(self, point_ids: Sequence[str], with_vector: bool) -> list[Record]: ...

    def search(
        self, vector: Vector, limit: int, tenant: str, tokens: Sequence[str]
    ) -> list[Record]: ...

    def scroll(self, tenant: str, fields: Sequence[str]) -> Iterator[list[dict[str, Any]]]: ...

    def count(self, tenant: str) -> int: ...

    def tenants(self) -> list[str]: ...

    def close(self) -> None: ...


class ClientEngine:
    """qdrant-client: a server URL, or local mode (``path`` or ``":memory:"``)."""

    def __init__(
        self,
        *,
        url: str | None = None,
        path: str | None = None,
        api_key: str | None = None,
        collection: str = "shadowswap",
        timeout_s: float = 10.0,
    ) -> None:
        self.models = models
        self.collection = collection
        self.local = url is None
        if url is not None:
            self.description = url
            # No version check: it runs in a thread that can only warn; our calls report errors.
            self.client = QdrantClient(
                url=url, api_key=api_key, timeout=int(timeout_s), check_compatibility=False
            )
        elif path == ":memory:":
            self.description = ":memory:"
            self.client = QdrantClient(location=":memory:")
        else:
            self.description = f"local:{path}"
            if path is not None:
                make_private_dirs(Path(path))  # documents: 0700 (shadowswap.fileio)
            self.client = QdrantClient(path=path)
        self._batch = 1000 if self.local else 256  # the server caps a request at 32 MB

    def identity(self) -> dict[str, str] | None:
        if not self.client.collection_exists(self.collection):
            return None
        info = self.client.get_collection(self.collection)
        meta = dict(info.config.metadata or {})
        params = info.config.params.vectors
        size = getattr(params, "size", None)
        distance = getattr(params, "distance", None)
        out = {k: str(v) for k, v in meta.items() if k in ("format", "metric")}
        if size is not None:
            out["dimension"] = str(size)
        if distance is not None:
            out["distance"] = str(getattr(distance, "value", distance))
        return out

    def create(self, dimension: int, dot: bool, identity: dict[str, str]) -> None:
        m = self.models
        distance = m.Distance.DOT if dot else m.Distance.EUCLID
        self.client.create_collection(
            self.collection,
            vectors_config=m.VectorParams(size=dimension, distance=distance),
            metadata=dict(identity),
        )
        if not self.local:  # local mode has no payload indexes (and warns when asked)
            self.client.create_payload_index(
                self.collection,
                TENANT_FIELD,
                m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True),
            )
            self.client.create_payload_index(
                self.collection, TOKENS_FIELD, m.PayloadSchemaType.KEYWORD
            )

    def upsert(self, points: Sequence[Point]) -> None:
        m = self.models
        for start in range(0, len(points), self._batch):
            chunk = points[start : start + self._batch]
            self.client.upsert(
                self.collection,
                [m.PointStruct(id=pid, vector=vec.tolist(), payload=pl) for pid, vec, pl in chunk],
                wait=True,
            )

    def delete(self, point_ids: Sequence[str]) -> None:
        self.client.delete(
            self.collection, self.models.PointIdsList(points=list(point_ids)), wait=True
        )

    def retrieve(self, point_ids: Sequence[str], with_vector: bool) -> list[Record]:
        got = self.client.retrieve(
            self.collection, list(point_ids), with_payload=True, with_vectors=with_vector
        )
        return [(dict(p.payload or {}), _dense(p.vector), None) for p in got]

    def _filter(self, tenant: str, tokens: Sequence[str]) -> Any:
        m = self.models
        return m.Filter(
            must=[
                m.FieldCondition(key=key, match=m.MatchValue(value=value))
                for key, value in [(TENANT_FIELD, tenant), *((TOKENS_FIELD, t) for t in tokens)]
            ]
        )

    def search(
        self, vector: Vector, limit: int, tenant: str, tokens: Sequence[str]
    ) -> list[Record]:
        params = None if self.local else self.models.SearchParams(exact=True)
        found = self.client.query_points(
            self.collection,
            query=vector.tolist(),
            query_filter=self._filter(tenant, tokens),
            search_params=params,
            limit=limit,
            with_payload=True,
        ).points
        return [(dict(p.payload or {}), None, float(p.score)) for p in found]

    def scroll(self, tenant: str, fields: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=self._filter(tenant, ()),
                limit=_SCROLL,
                offset=offset,
                with_payload=list(fields),
                with_vectors=False,
            )
            yield [dict(r.payload or {}) for r in records]
            if offset is None:
                return

    def count(self, tenant: str) -> int:
        return int(
            self.client.count(
                self.collection, count_filter=self._filter(tenant, ()), exact=True
            ).count
        )

    def tenants(self) -> list[str]:
        hits = self.client.facet(self.collection, TENANT_FIELD, limit=FACET_LIMIT, exact=True).hits
        return [str(h.value) for h in hits if h.count > 0]

    def close(self) -> None:
        self.client.close()


class EdgeEngine:
    """qdrant-edge: the Qdrant engine in this process, on a directory.

    Layout: ``shadowswap.json`` (format, metric, dimension) and ``shard/`` (Qdrant's own
    segments and write-ahead log; ``shard/edge_config.json`` holds the distance the shard ranks
    by). ``shadowswap.json`` is written for a new directory, never over a shard without it.
    """

    def __init__(self, path: str, identity: dict[str, str]) -> None:
        import qdrant_edge  # noqa: PLC0415 - optional: only this engine needs it

        self.qe = qdrant_edge
        self.root = Path(path)
        self.description = str(self.root)
        self._lock = threading.RLock()
        self._identity_file = self.root / "shadowswap.json"
        make_private_dirs(self.root)  # documents: 0700 (shadowswap.fileio)
        shard_dir = self.root / "shard"
        self._shard_config = shard_dir / "edge_config.json"
        if not self._identity_file.exists() and not self._shard_config.exists():
            self._save_identity(identity)
        self.shard: Any = None
        self._updates = 0
        if self._shard_config.exists():
            self.shard = qdrant_edge.EdgeShard.load(str(shard_dir))

    def _save_identity(self, identity: dict[str, str]) -> None:
        data = json.dumps(identity, sort_keys=True).encode("utf-8")
        atomic_write(self._identity_file, data, mode=PRIVATE_FILE)  # never through a link

    def identity(self) -> dict[str, str] | None:
        out: dict[str, str] = {}
        if self._identity_file.exists():
            data = json.loads(self._identity_file.read_text(encoding="utf-8"))
            out = {str(k): str(v) for k, v in data.items()}
        if self._shard_config.exists():
            config = json.loads(self._shard_config.read_text(encoding="utf-8"))
            distance = ((config.get("vectors") or {}).get("") or {}).get("distance")
            if distance is not None:
                out["distance"] = str(distance)
        return out

    def create(self, dimension: int, dot: bool, identity: dict[str, str]) -> None:
        qe = self.qe
        with self._lock:
            if self.shard is not None:
                return
            distance = qe.Distance.Dot if dot else qe.Distance.Euclid
            # Searches are exact, so an HNSW index would be built for nothing (indexing
            # threshold 0 turns it off); `optimize` then only vacuums and merges segments.
            config = qe.EdgeConfig(
                vectors=qe.EdgeVectorParams(size=dimension, distance=distance),
                optimizers=qe.EdgeOptimizersConfig(indexing_threshold=0),
            )
            shard = qe.EdgeShard.create(str(self.root / "shard"), config)
            shard.update(
                qe.UpdateOperation.create_field_index(
                    TENANT_FIELD, qe.KeywordIndexParams(is_tenant=True)
                )
            )
            shard.update(
                qe.UpdateOperation.create_field_index(TOKENS_FIELD, qe.PayloadSchemaType.Keyword)
            )
            self._save_identity(identity)
            self.shard = shard

    def upsert(self, points: Sequence[Point]) -> None:
        qe = self.qe
        with self._lock:
            self.shard.update(
                qe.UpdateOperation.upsert_points(
                    [qe.Point(pid, vec.tolist(), pl) for pid, vec, pl in points]
                )
            )
            self._maybe_optimize()

    def delete(self, point_ids: Sequence[str]) -> None:
        with self._lock:
            self.shard.update(self.qe.UpdateOperation.delete_points(list(point_ids)))
            self._maybe_optimize()

    def _maybe_optimize(self) -> None:
        """Qdrant Edge runs no background optimizer: without this, deleted and replaced
        points would never be vacuumed and small writes would pile up in one segment."""
        self._updates += 1
        if self._updates % OPTIMIZE_EVERY == 0:
            self.shard.optimize()

    def retrieve(self, point_ids: Sequence[str], with_vector: bool) -> list[Record]:
        if self.shard is None:
            return []
        got = self.shard.retrieve(list(point_ids), with_payload=True, with_vector=with_vector)
        return [(dict(p.payload or {}), _dense(p.vector), None) for p in got]

    def _filter(self, tenant: str, tokens: Sequence[str]) -> Any:
        qe = self.qe
        return qe.Filter(
            must=[
                qe.FieldCondition(key, match=qe.MatchValue(value))
                for key, value in [(TENANT_FIELD, tenant), *((TOKENS_FIELD, t) for t in tokens)]
            ]
        )

    def search(
        self, vector: Vector, limit: int, tenant: str, tokens: Sequence[str]
    ) -> list[Record]:
        if self.shard is None:
            return []
        qe = self.qe
        found = self.shard.search(
            qe.SearchRequest(
                query=qe.Query.Nearest(vector.tolist()),
                limit=limit,
                filter=self._filter(tenant, tokens),
                params=qe.SearchParams(exact=True),
                with_payload=True,
            )
        )
        return [(dict(p.payload or {}), None, float(p.score)) for p in found]

    def scroll(self, tenant: str, fields: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
        if self.shard is None:
            return
        qe = self.qe
        offset: Any = None
        while True:
            records, offset = self.shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=_SCROLL,
                    filter=self._filter(tenant, ()),
                    with_payload=list(fields),
                    with_vector=False,
                )
            )
            yield [dict(r.payload or {}) for r in records]
            if offset is None:
                return

    def count(self, tenant: str) -> int:
        if self.shard is None:
            return 0
        return int(
            self.shard.count(self.qe.CountRequest(exact=True, filter=self._filter(tenant, ())))
        )

    def tenants(self) -> list[str]:
        if self.shard is None:
            return []
        response = self.shard.facet(
            self.qe.FacetRequest(TENANT_FIELD, limit=FACET_LIMIT, exact=True)
        )
        return [str(h.value) for h in response.hits if h.count > 0]

    def close(self) -> None:
        with self._lock:
            if self.shard is not None:
                self.shard.flush()
                self.shard.close()
                self.shard = None


def _dense(vector: Any) -> list[float] | None:
    if vector is None:
        return None
    if isinstance(vector, dict):  # named vectors: ours is the unnamed default
        vector = vector.get("", next(iter(vector.values()), None))
    return None if vector is None else list(vector)


def point_id(tenant: str, doc_id: str) -> str:
    """The point id of a document: a UUID derived from (tenant, doc id); tenant ids cannot
    contain ``/``, so the pair is recovered unambiguously from the name."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}/{doc_id}"))


_NAMESPACE = uuid.UUID("6f1b7c5e-3c53-4d0e-9a53-5ad05a9e0001")

"""Qdrant store: a Qdrant server, the in-process Qdrant engine, or qdrant-client's local mode.

``RETRIEVAL_QDRANT_URL`` (default ``./data/qdrant``):

    ``./data/qdrant`` (a path)       Qdrant Edge (``qdrant-edge-py``): the Qdrant engine itself,
                                     in this process, on that directory; one process at a time.
    ``http(s)://host:6333``          a Qdrant server (REST), ``?api_key=...`` and
                                     ``?collection=...`` (default ``shadowswap``) accepted.
    ``local:./dir`` / ``:memory:``   qdrant-client's local mode: a pure-Python emulation, for
                                     tests and small data (it warns above 20,000 points).

Semantics
    tenants     one collection (server, local mode) or shard (Edge) for every tenant; each
                point carries ``_ss_tenant`` (a keyword index with ``is_tenant``, Qdrant's own
                multitenancy layout) and every read and write this adapter sends filters on it.
    ids         a point id is a UUID v5 of ``<tenant>/<doc id>`` (Qdrant accepts only unsigned
                integers and UUIDs); the doc id itself is kept in ``_ss_id``, and reads check
                both fields, so a (vanishingly unlikely) collision could not leak a document.
    metric      Qdrant's ``Dot`` distance for cosine (on our unit vectors: Qdrant's ``Cosine``
                would normalise again and change the stored bytes) and dot: score = the dot
                product; ``Euclid`` for l2, whose score Qdrant reports as the distance:
                score = -distance². On open the collection's (or shard's) distance is checked
                against ``RETRIEVAL_METRIC`` before the store record is.
    search      ``exact=True``: a full scan of the tenant's points, so results are exact and a
                filter never makes a search return fewer than k matches.
    filters     payload ``_ss_f`` holds the metadata tokens (`shadowswap.stores.tokens`); a
                filter is one ``MatchValue`` condition per token (Qdrant's own match would find
                ``True`` equal to ``1`` in local mode, and cannot match floats at all).
    fields      metadata is the payload's own keys (readable with Qdrant's tools); text under
                ``_ss_text`` only when the document has text; the content hash under ``_ss_hash``.
    delete      Qdrant does not count deletions, so ids are retrieved first and only present
                ones deleted and counted.
    scan        Qdrant scrolls in point id order, not doc id order: ids are listed and sorted.
    consistency writes use ``wait=True`` (server) or are applied in the call (Edge, local
                mode): visible to searches when the call returns.
    maintenance Qdrant Edge has no background optimizer: every ``OPTIMIZE_EVERY`` (200) writes
                the adapter runs its optimizer (vacuum of deleted points, segment merges; HNSW
                indexing is turned off since searches are exact).
    batches     server writes are sent 256 points per request (the server caps a request at
                32 MB; 256 x 16,000-d vectors stay under it).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import numpy as np
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from shadowswap.errors import (
    ConfigError,
    MissingDependency,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.settings.masking import mask_secrets
from shadowswap.similarity import Metric, score_from_distance
from shadowswap.stores.base import check_engine_metric, check_store_record
from shadowswap.stores.paging import SortedIdScan
from shadowswap.stores.qdrant_engines import (
    ID_FIELD,
    TENANT_FIELD,
    TOKENS_FIELD,
    ClientEngine,
    EdgeEngine,
    Engine,
    point_id,
)
from shadowswap.stores.tokens import tokens
from shadowswap.values import Document, Filter, Hit, MetaValue, Vector

FORMAT = "1"
HASH_FIELD = "_ss_hash"
TEXT_FIELD = "_ss_text"
_CHUNK = 1000
#: the distance of the collection (or shard) each metric needs
DISTANCES = {Metric.COSINE: ("Dot",), Metric.DOT: ("Dot",), Metric.L2: ("Euclid",)}


def open_engine(location: str, identity: dict[str, str], timeout_s: float) -> Engine:
    """The engine a location names (see the module docstring)."""
    if location.startswith(("http://", "https://")):
        parts = urlsplit(location)
        query = dict(parse_qsl(parts.query))
        api_key = query.pop("api_key", None)
        collection = query.pop("collection", "shadowswap")
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        return ClientEngine(url=url, api_key=api_key, collection=collection, timeout_s=timeout_s)
    if "://" in location:
        raise ConfigError(
            "RETRIEVAL_QDRANT_URL",
            mask_secrets(location),
            "expected http(s)://host:port for a Qdrant server, a directory for the embedded "
            "engine (Qdrant Edge), local:DIR or :memory: for qdrant-client's local mode",
        )
    if location == ":memory:":
        return ClientEngine(path=":memory:")
    if location.startswith("local:"):
        return ClientEngine(path=location.removeprefix("local:"))
    try:
        return EdgeEngine(location, identity)
    except ImportError as exc:
        raise MissingDependency("qdrant", "qdrant", "qdrant_edge") from exc


class QdrantStore(SortedIdScan):
    """Qdrant through one of its engines; see the module docstring."""

    kind = "qdrant"

    def __init__(
        self, location: str, metric: Metric = Metric.COSINE, *, timeout_s: float = 10.0
    ) -> None:
        super().__init__(location, metric)
        self._lock = threading.RLock()
        self._dim: int | None = None
        with self._edge("open", None):
            self._engine: Engine | None = open_engine(
                location, {"format": FORMAT, "metric": metric.value}, timeout_s
            )
            try:
                self._check_identity(self._engine.identity())
            except BaseException:
                self._engine.close()  # an embedded engine would keep its directory locked
                raise

    def _check_identity(self, identity: dict[str, str] | None) -> None:
        if identity is None:
            return
        if "distance" in identity:  # what the engine ranks by: checked before the record
            check_engine_metric(
                self.kind, identity["distance"], metric=self._metric, accepted=DISTANCES,
                what=f"the store at {self._shown()}", setting="distance",
                elsewhere="point RETRIEVAL_QDRANT_URL elsewhere",
            )  # fmt: skip
        check_store_record(
            self.kind, identity, format=FORMAT, metric=self._metric, record=self._shown(),
            store=self._shown(), elsewhere="use another location",
        )  # fmt: skip
        if identity.get("dimension"):
            self._dim = int(identity["dimension"])

    def _shown(self) -> str:
        return mask_secrets(self._location)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreUnavailable(self.kind, "use", "the store was closed")
        return self._engine

    # -- BaseStore ----------------------------------------------------------------------
    def _stored_dimension(self) -> int | None:
        if self._dim is None:
            with self._lock:
                identity = self.engine.identity()
                if identity and identity.get("dimension"):
                    self._dim = int(identity["dimension"])
        return self._dim

    def _fix_dimension(self, dimension: int) -> int:
        with self._lock:
            identity = {
                "format": FORMAT,
                "metric": self._metric.value,
                "dimension": str(dimension),
            }
            try:
                self.engine.create(dimension, self._metric is not Metric.L2, identity)
            except Exception:
                held = self.engine.identity()  # created meanwhile by another process?
                if not held or not held.get("dimension"):
                    raise
            held = self.engine.identity() or identity
            self._check_identity(held)
            self._dim = int(held["dimension"])
            return self._dim

    def _records(self, tenant: str, doc_ids: Sequence[str], with_vector: bool) -> list[Any]:
        """The tenant's points for these doc ids (checked: tenant and doc id both match)."""
        if self._stored_dimension() is None:
            return []
        out = []
        for start in range(0, len(doc_ids), _CHUNK):
            chunk = doc_ids[start : start + _CHUNK]
            wanted = set(chunk)
            for payload, vector, _score in self.engine.retrieve(
                [point_id(tenant, d) for d in chunk], with_vector
            ):
                if payload.get(TENANT_FIELD) == tenant and payload.get(ID_FIELD) in wanted:
                    out.append((payload, vector))
        return out

    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        return {
            p[ID_FIELD]: str(p.get(HASH_FIELD, ""))
            for p, _v in self._records(tenant, doc_ids, False)
        }

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        points = []
        for d in documents:
            payload: dict[str, Any] = {
                **d.metadata,
                TENANT_FIELD: tenant,
                ID_FIELD: d.doc_id,
                HASH_FIELD: d.content_hash,
                TOKENS_FIELD: tokens(d.metadata),
            }
            if d.text is not None:
                payload[TEXT_FIELD] = d.text
            points.append((point_id(tenant, d.doc_id), d.vector, payload))
        with self._lock:
            for start in range(0, len(points), _CHUNK):
                self.engine.upsert(points[start : start + _CHUNK])

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        with self._lock:
            present = [p[ID_FIELD] for p, _v in self._records(tenant, doc_ids, False)]
            if present:
                self.engine.delete([point_id(tenant, d) for d in present])
            return len(present)

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        if self._stored_dimension() is None:
            return []
        found = self.engine.search(vector, k, tenant, tokens(filter))
        hits = []
        for payload, _vector, score in found:
            if payload.get(TENANT_FIELD) != tenant:  # never: the engine filtered on it
                continue
            assert score is not None
            if self._metric is Metric.L2:
                value = score_from_distance(score, self._metric, "l2")
            else:
                value = score_from_distance(score, self._metric, "ip")
            hits.append(Hit(str(payload[ID_FIELD]), value, _user_metadata(payload)))
        hits.sort(key=lambda h: (-h.score, h.doc_id))
        return hits

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        out = {}
        for payload, vector in self._records(tenant, doc_ids, True):
            doc_id = str(payload[ID_FIELD])
            out[doc_id] = Document(
                tenant,
                doc_id,
                np.asarray(vector, dtype=np.float32),
                _user_metadata(payload),
                payload.get(TEXT_FIELD),
            )
        return {d: out[d] for d in doc_ids if d in out}

    def _all_ids(self, tenant: str) -> list[str]:
        if self._stored_dimension() is None:
            return []
        ids: list[str] = []
        for page in self.engine.scroll(tenant, [ID_FIELD]):
            ids += [str(p[ID_FIELD]) for p in page]
        return ids

    def _count(self, tenant: str) -> int:
        if self._stored_dimension() is None:
            return 0
        return self.engine.count(tenant)

    def _tenants(self) -> list[str]:
        if self._stored_dimension() is None:
            return []
        return self.engine.tenants()

    def _close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        text = str(exc)
        if "WouldBlock" in text or "already accessed by another instance" in text:
            return StoreUnavailable(
                self.kind,
                op,
                f"{self._shown()} is open in another process (an embedded Qdrant directory "
                "serves one process at a time; use a Qdrant server to share it)",
                tenant,
            )
        if isinstance(exc, ResponseHandlingException):
            if isinstance(getattr(exc, "source", None), httpx.TimeoutException):
                return StoreTimeout(self.kind, op, f"{self._shown()}: no answer in time", tenant)
            return StoreUnavailable(self.kind, op, f"cannot reach {self._shown()}", tenant)
        if isinstance(exc, UnexpectedResponse):
            status = exc.status_code or 0
            detail = f"{self._shown()} answered HTTP {status}"
            unavailable = status in (401, 403) or status >= 500
            return (StoreUnavailable if unavailable else StoreError)(self.kind, op, detail, tenant)
        return None


def _user_metadata(payload: dict[str, Any]) -> dict[str, MetaValue]:
    return {k: v for k, v in payload.items() if not k.startswith("_")}

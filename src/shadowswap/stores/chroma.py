"""Chroma store: embedded (a directory) or a Chroma server (``http://host:port``).

Semantics
    tenants     one collection per tenant, named ``ss_<tenant>_t`` (tenant ids only use
                characters Chroma accepts, and the fixed prefix and suffix make the mapping
                one-to-one). A search is a query on that collection alone.
    store info  a collection ``shadowswap_meta`` records the format, metric and dimension.
    metric      collections use Chroma's ``ip`` space for cosine (on our unit vectors) and dot,
                ``l2`` for l2. Chroma's own ``cosine`` space is not used: it normalises stored
                vectors itself and returns them changed in the last bit, which would change
                content hashes. Distances are converted: ip -> 1 - d, l2 -> -d. A tenant's
                collection is opened only if its space (the collection's HNSW configuration,
                or its older ``hnsw:space`` metadata) fits ``RETRIEVAL_METRIC``, whatever the
                store record says; a store with collections but no record (its record lost)
                gets one only when every collection's space fits.
    search      HNSW with ``ef_search`` 200 (approximate by design; on the contract suite's
                data it returns the exact top 10). Filters become a ``where`` clause with
                ``$eq``; Chroma compares numbers numerically and booleans only with booleans,
                which is our rule.
    fields      the content hash is kept in metadata under ``_ss_hash`` and whether the
                document has text under ``_ss_has_text`` (keys starting with ``_`` are reserved,
                so they cannot clash); text goes in ``documents``. Chroma merges metadata on
                upsert, so a replacement sets the old keys it drops to None (which deletes them).
    scan        Chroma cannot page by id, so ``scan`` lists the tenant's ids once (memory grows
                with the number of ids, not with vectors), sorts them and fetches in batches.
    batches     writes are split to the client's ``get_max_batch_size()``.
    consistency a write is visible when the call returns (embedded and single-node server).
    timeouts    the Chroma HTTP client waits forever by default; we set its httpx timeout to
                ``timeout_s`` (10 s) through the client's session, the only handle it offers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
import chromadb.errors
import httpx
from chromadb.config import Settings

from shadowswap.errors import (
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.fileio import make_private_dirs
from shadowswap.similarity import Metric, score_from_distance
from shadowswap.stores.base import check_engine_metric, check_store_record, note_unrecorded_metric
from shadowswap.stores.paging import SortedIdScan
from shadowswap.values import Document, Filter, Hit, MetaValue, Vector

FORMAT = "1"
META_COLLECTION = "shadowswap_meta"
HASH_KEY = "_ss_hash"
TEXT_KEY = "_ss_has_text"
_PREFIX, _SUFFIX = "ss_", "_t"
#: the space a collection must have for each metric
SPACES = {Metric.COSINE: ("ip",), Metric.DOT: ("ip",), Metric.L2: ("l2",)}


def collection_name(tenant: str) -> str:
    return f"{_PREFIX}{tenant}{_SUFFIX}"


def tenant_of(name: str) -> str | None:
    if name.startswith(_PREFIX) and name.endswith(_SUFFIX) and len(name) > 5:
        return name[len(_PREFIX) : -len(_SUFFIX)]
    return None


class ChromaStore(SortedIdScan):
    """Chroma, embedded or server; see the module docstring."""

    kind = "chroma"

    def __init__(
        self, location: str, metric: Metric = Metric.COSINE, *, timeout_s: float = 10.0
    ) -> None:
        super().__init__(location, metric)
        self._timeout_s = timeout_s
        self._lock = threading.RLock()
        self._client_obj: Any = None
        self._collections: dict[str, Any] = {}
        self._meta: Any = None
        self._dim: int | None = None
        self._batch = 1000

    # -- connection ---------------------------------------------------------------------
    def _client(self) -> Any:
        """Connect on first use, so an unreachable server is reported, not raised, by health."""
        with self._lock:
            if self._client_obj is None:
                settings = Settings(anonymized_telemetry=False)
                if self._location.startswith(("http://", "https://")):
                    url = urlsplit(self._location)
                    client = chromadb.HttpClient(
                        host=url.hostname or "localhost",
                        port=url.port or (443 if url.scheme == "https" else 8000),
                        ssl=url.scheme == "https",
                        settings=settings,
                    )
                    session = getattr(getattr(client, "_server", None), "_session", None)
                    if isinstance(session, httpx.Client):
                        session.timeout = httpx.Timeout(self._timeout_s)
                else:
                    make_private_dirs(Path(self._location))  # documents: 0700 (fileio)
                    client = chromadb.PersistentClient(path=self._location, settings=settings)
                self._batch = max(1, int(client.get_max_batch_size()))
                self._meta = self._open_meta(client)
                self._client_obj = client
            return self._client_obj

    def _open_meta(self, client: Any) -> Any:
        try:
            meta = client.get_collection(META_COLLECTION, embedding_function=None)
        except chromadb.errors.NotFoundError:
            # a new store, or one whose record is lost: its collections must fit the metric
            # before a record says they do
            names = [c if isinstance(c, str) else c.name for c in client.list_collections()]
            held = [n for n in names if tenant_of(n) is not None]
            for name in held:
                self._check_space(client.get_collection(name, embedding_function=None), None)
            if held:
                note_unrecorded_metric(self.kind, self._location, self._metric)
            meta = client.get_or_create_collection(
                META_COLLECTION,
                embedding_function=None,
                metadata={"format": FORMAT, "metric": self._metric.value},
            )
        info = dict(meta.metadata or {})
        check_store_record(
            self.kind, info, format=FORMAT, metric=self._metric, record=META_COLLECTION,
            store=self._location, elsewhere="use another location",
        )  # fmt: skip
        dim = info.get("dimension")
        self._dim = int(dim) if isinstance(dim, int) else None
        return meta

    def _collection(self, tenant: str, create: bool) -> Any:
        with self._lock:
            col = self._collections.get(tenant)
            if col is not None:
                return col
            client = self._client()
            name = collection_name(tenant)
            if create:
                space = "l2" if self._metric is Metric.L2 else "ip"
                col = client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    configuration={
                        "hnsw": {"space": space, "ef_construction": 200, "ef_search": 200}
                    },
                )
            else:
                try:
                    col = client.get_collection(name, embedding_function=None)
                except chromadb.errors.NotFoundError:
                    return None
            self._check_space(col, tenant)
            self._collections[tenant] = col
            return col

    def _check_space(self, col: Any, tenant: str | None) -> None:
        """Refuse a collection whose space is not the one our metric needs (it would rank by
        another distance than the one reported and promised)."""
        check_engine_metric(
            self.kind, collection_space(col), metric=self._metric, accepted=SPACES,
            what=f"collection {col.name!r} at {self._location}", setting="space",
            elsewhere="point RETRIEVAL_CHROMA_URL at a new location", tenant=tenant,
        )  # fmt: skip

    # -- BaseStore ----------------------------------------------------------------------
    def _stored_dimension(self) -> int | None:
        if self._dim is None:
            self._client()
        return self._dim

    def _fix_dimension(self, dimension: int) -> int:
        with self._lock:
            # read the record again: another process may have fixed the dimension since open
            self._meta = self._client().get_collection(META_COLLECTION, embedding_function=None)
            info = dict(self._meta.metadata or {})
            held = info.get("dimension")
            if isinstance(held, int):
                self._dim = held
                return held
            info["dimension"] = dimension
            self._meta.modify(metadata=info)
            self._dim = dimension
            return dimension

    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        col = self._collection(tenant, create=False)
        if col is None:
            return {}
        out: dict[str, str] = {}
        for chunk in self._chunks(doc_ids):
            got = col.get(ids=list(chunk), include=["metadatas"])
            for doc_id, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                out[doc_id] = str((meta or {}).get(HASH_KEY, ""))
        return out

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        col = self._collection(tenant, create=True)
        for chunk in self._chunks(documents):
            # Chroma's upsert merges metadata into what is stored and keeps the old text when
            # given None; a replacement must be whole, so stale keys are set to None (which
            # deletes them) and the presence of text is recorded under TEXT_KEY.
            held = col.get(ids=[d.doc_id for d in chunk], include=["metadatas"])
            old_keys = {
                i: set(m or {}) for i, m in zip(held["ids"], held["metadatas"] or [], strict=True)
            }
            metadatas = []
            for d in chunk:
                stale = old_keys.get(d.doc_id, set()) - set(d.metadata) - {HASH_KEY, TEXT_KEY}
                metadatas.append(
                    {
                        **dict.fromkeys(stale),
                        **d.metadata,
                        HASH_KEY: d.content_hash,
                        TEXT_KEY: d.text is not None,
                    }
                )
            col.upsert(
                ids=[d.doc_id for d in chunk],
                embeddings=[d.vector for d in chunk],
                metadatas=metadatas,
                documents=[d.text or "" for d in chunk],
            )

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        col = self._collection(tenant, create=False)
        if col is None:
            return 0
        removed = 0
        for chunk in self._chunks(doc_ids):
            present = col.get(ids=list(chunk), include=[])["ids"]
            if present:
                col.delete(ids=present)
                removed += len(present)
        return removed

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        col = self._collection(tenant, create=False)
        if col is None:
            return []
        res = col.query(
            query_embeddings=[vector],
            n_results=k,
            where=_where(filter),
            include=["metadatas", "distances"],
        )
        convention = "sq_l2" if self._metric is Metric.L2 else "one_minus_ip"
        hits = []
        for doc_id, dist, meta in zip(
            res["ids"][0], res["distances"][0], res["metadatas"][0], strict=True
        ):
            hits.append(
                Hit(
                    doc_id,
                    score_from_distance(float(dist), self._metric, convention),
                    _user_metadata(meta),
                )
            )
        hits.sort(key=lambda h: -h.score)
        return hits

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        col = self._collection(tenant, create=False)
        if col is None:
            return {}
        out: dict[str, Document] = {}
        for chunk in self._chunks(doc_ids):
            got = col.get(ids=list(chunk), include=["embeddings", "metadatas", "documents"])
            for doc_id, vec, meta, stored_text in zip(
                got["ids"], got["embeddings"], got["metadatas"], got["documents"], strict=True
            ):
                text = None if (meta or {}).get(TEXT_KEY) is False else stored_text
                out[doc_id] = Document(tenant, doc_id, vec, _user_metadata(meta), text)
        return {d: out[d] for d in doc_ids if d in out}

    def _all_ids(self, tenant: str) -> list[str]:
        col = self._collection(tenant, create=False)
        if col is None:
            return []
        ids: list[str] = []
        while True:
            got = col.get(include=[], limit=self._batch, offset=len(ids))["ids"]
            ids += got
            if len(got) < self._batch:
                return ids

    def _count(self, tenant: str) -> int:
        col = self._collection(tenant, create=False)
        return 0 if col is None else int(col.count())

    def _tenants(self) -> list[str]:
        names = [c if isinstance(c, str) else c.name for c in self._client().list_collections()]
        out = []
        for name in names:
            tenant = tenant_of(name)
            if tenant is not None and self._count(tenant) > 0:
                out.append(tenant)
        return out

    def _close(self) -> None:
        with self._lock:
            self._collections.clear()
            self._client_obj = None
            self._meta = None

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        if isinstance(exc, httpx.TimeoutException):
            return StoreTimeout(self.kind, op, f"{self._location}: no answer in time", tenant)
        if isinstance(exc, httpx.TransportError) or (
            isinstance(exc, ValueError) and "Could not connect" in str(exc)
        ):
            return StoreUnavailable(self.kind, op, f"cannot reach {self._location}", tenant)
        if isinstance(exc, chromadb.errors.NotFoundError):
            self._collections.pop(tenant or "", None)
            return StoreError(self.kind, op, f"collection vanished: {exc}", tenant)
        if isinstance(exc, chromadb.errors.ChromaError):
            return StoreError(self.kind, op, f"{type(exc).__name__}: {exc}", tenant)
        return None

    def _chunks(self, items: Sequence[Any]) -> Iterator[Sequence[Any]]:
        for start in range(0, len(items), self._batch):
            yield items[start : start + self._batch]


def collection_space(col: Any) -> str | None:
    """The distance a collection ranks by: its HNSW (or SPANN, on distributed Chroma)
    configuration's ``space``, else the ``hnsw:space`` metadata of collections made before
    Chroma had configurations; None when neither can be read."""
    # the raw JSON: the parsed ``configuration`` warns about "legacy" embedding functions
    config = getattr(col, "configuration_json", None)
    if isinstance(config, dict):
        for index in ("hnsw", "spann"):
            part = config.get(index)
            if isinstance(part, dict) and part.get("space"):
                return str(part["space"])
    metadata = getattr(col, "metadata", None) or {}
    space = metadata.get("hnsw:space")
    return str(space) if space else None


def _where(flt: Filter) -> dict[str, Any] | None:
    clauses = [{key: {"$eq": value}} for key, value in flt.items()]
    if not clauses:
        return None
    if len(clauses) == 1:
        return clauses[0]
    return {"$and": clauses}


def _user_metadata(meta: dict[str, Any] | None) -> dict[str, MetaValue]:
    if not meta:
        return {}
    return {k: v for k, v in meta.items() if not k.startswith("_") and v is not None}

"""The store boundary: one Protocol every backend implements, and the base class that holds
the rules common to all of them, so each adapter only speaks to its engine.

What every store promises (checked by ``tests/stores/test_contract.py``):

* ``upsert`` is idempotent per ``(tenant, doc_id)``: the same content again writes nothing
  (it is counted as unchanged), new content replaces the old document whole.
* ``search`` sees only the tenant's documents, returns at most ``k`` hits best first, with
  scores as similarities (higher is better, `shadowswap.similarity`), and applies an optional
  metadata equality filter exactly: every hit matches, and no better match is left out.
  Booleans match only booleans; numbers match numerically (``1`` matches ``1.0``).
* ``scan`` streams every document of a tenant once, in ascending doc id order (code point
  order), in batches, resumable with ``after=<last doc id seen>``.
* ``digests`` and ``hashes`` (on `BaseStore`, not part of the Protocol) give content hashes
  without vectors: ``digests`` streams ``(doc_id, content_hash)`` pages in scan order (FAISS
  lists its stored hashes, other adapters recompute them from scanned documents); ``hashes``
  looks ids up the way upsert does to stay idempotent.
* a store's dimension is fixed by its first write; vectors of another length are refused.
* a store's metric is fixed when it is created; opening it with another metric is refused.
  The adapter's own record of the metric is checked, and so is the distance the engine itself
  ranks by, where it keeps one (a Chroma collection's space, a Milvus index's metric type, an
  Elasticsearch mapping's similarity...): `check_engine_metric`.
* vendor errors are mapped to `shadowswap.errors.StoreError` subclasses at the adapter's edge.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shadowswap.errors import (
    DimensionMismatch,
    IncompatibleStore,
    InvalidInput,
    ShadowswapError,
    StoreError,
)
from shadowswap.similarity import Metric, canonical_vector

# The k rule lives with `Query` in `shadowswap.values`; importable from here as before.
from shadowswap.values import MAX_K as MAX_K  # noqa: PLC0414 - explicit re-export
from shadowswap.values import (
    Document,
    Filter,
    Hit,
    MetaValue,
    Query,
    SearchResult,
    Vector,
    VectorLike,
    WriteReport,
    check_doc_id,
    check_doc_ids,
    check_tenant,
    to_vector,
)
from shadowswap.values import check_k as check_k  # noqa: PLC0414 - explicit re-export

DEFAULT_SCAN_BATCH = 500

log = logging.getLogger("shadowswap.stores")


@dataclass(frozen=True)
class Health:
    """The answer of a health check; ``detail`` says why when not reachable."""

    kind: str
    location: str
    reachable: bool
    round_trip_s: float
    documents: int | None = None
    tenants: int | None = None
    dimension: int | None = None
    metric: str | None = None
    detail: str = ""


@runtime_checkable
class VectorStore(Protocol):
    """The boundary between shadowswap and one vector store engine."""

    @property
    def kind(self) -> str: ...

    @property
    def location(self) -> str: ...

    @property
    def metric(self) -> Metric: ...

    @property
    def dimension(self) -> int | None: ...

    def upsert(self, tenant: str, documents: Sequence[Document]) -> WriteReport: ...

    def delete(self, tenant: str, doc_ids: Sequence[str]) -> int: ...

    def search(
        self, tenant: str, vector: VectorLike, k: int, filter: Filter | None = None
    ) -> SearchResult: ...

    def get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]: ...

    def scan(
        self, tenant: str, *, batch_size: int = DEFAULT_SCAN_BATCH, after: str | None = None
    ) -> Iterator[list[Document]]: ...

    def count(self, tenant: str) -> int: ...

    def tenants(self) -> list[str]: ...

    def health(self) -> Health: ...

    def close(self) -> None: ...


class BaseStore(abc.ABC):
    """Validation, canonicalisation and error mapping shared by every adapter.

    Subclasses implement the underscore methods, which receive validated, canonical input.
    """

    kind: str = "base"

    def __init__(self, location: str, metric: Metric) -> None:
        self._location = location
        self._metric = metric

    # -- the engine-specific part -------------------------------------------------------
    @abc.abstractmethod
    def _stored_dimension(self) -> int | None: ...

    @abc.abstractmethod
    def _fix_dimension(self, dimension: int) -> int:
        """Record ``dimension`` on the first write (only called while it looked unknown), unless
        another writer fixed one meanwhile; return the dimension the store holds now. The
        caller refuses the batch when that is not ``dimension``."""

    @abc.abstractmethod
    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of those of ``doc_ids`` the tenant holds."""

    @abc.abstractmethod
    def _write(self, tenant: str, documents: Sequence[Document]) -> None: ...

    @abc.abstractmethod
    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int: ...

    @abc.abstractmethod
    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]: ...

    @abc.abstractmethod
    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]: ...

    def _scan_page(self, tenant: str, after: str | None, limit: int) -> list[Document]:
        """Up to ``limit`` documents with doc id > ``after``, ascending by doc id.

        Implement this, or override `_scan_pages` when the engine cannot page by id.
        """
        raise NotImplementedError

    def _scan_pages(
        self, tenant: str, batch_size: int, after: str | None
    ) -> Iterator[list[Document]]:
        cursor = after
        while True:
            with self._edge("scan", tenant):
                page = self._scan_page(tenant, cursor, batch_size)
            if not page:
                return
            yield page
            if len(page) < batch_size:
                return
            cursor = page[-1].doc_id

    def _digest_pages(
        self, tenant: str, batch_size: int, after: str | None
    ) -> Iterator[list[tuple[str, str]]]:
        """``(doc_id, content_hash)`` pages for `digests`; by default the hash is recomputed
        from every scanned document. Override when the engine can list stored hashes cheaply."""
        for page in self._scan_pages(tenant, batch_size, after):
            yield [(doc.doc_id, doc.content_hash) for doc in page]

    @abc.abstractmethod
    def _count(self, tenant: str) -> int: ...

    @abc.abstractmethod
    def _tenants(self) -> list[str]: ...

    def _close(self) -> None:  # noqa: B027 - optional hook, most engines need it
        """Release the engine's resources."""

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        """Map a vendor exception to a `StoreError`, or None to let it through unchanged."""
        return None

    # -- the public boundary ------------------------------------------------------------
    @property
    def location(self) -> str:
        return self._location

    @property
    def metric(self) -> Metric:
        return self._metric

    @property
    def dimension(self) -> int | None:
        with self._edge("dimension", None):
            return self._stored_dimension()

    def upsert(self, tenant: str, documents: Sequence[Document]) -> WriteReport:
        check_tenant(tenant)
        docs = self._prepare(tenant, documents)
        if not docs:
            return WriteReport(0, 0)
        with self._edge("upsert", tenant):
            held = self._hashes(tenant, [d.doc_id for d in docs])
            changed = [d for d in docs if held.get(d.doc_id) != d.content_hash]
            if changed:
                self._write(tenant, changed)
        return WriteReport(written=len(changed), unchanged=len(docs) - len(changed))

    def delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        check_tenant(tenant)
        ids = check_doc_ids(doc_ids)
        if not ids:
            return 0
        with self._edge("delete", tenant):
            return self._delete(tenant, ids)

    def search(
        self, tenant: str, vector: VectorLike, k: int, filter: Filter | None = None
    ) -> SearchResult:
        """Search with raw arguments: they are checked here (as a `Query`), then searched."""
        return self.search_query(Query(tenant, vector, k, filter))

    def search_query(self, query: Query) -> SearchResult:
        """Search with a `Query`, which was checked when it was made: only what this store
        alone knows is applied here (the dimension it holds, its metric's canonical vector).
        The router's way in (`search_store`), so a routed read is validated once."""
        vector = self._canonical_query(query.vector)
        if vector is None:
            return SearchResult(self.kind, ())
        with self._edge("search", query.tenant):
            hits = self._search(query.tenant, vector, query.k, query.filter)
        return SearchResult(self.kind, tuple(hits[: query.k]))

    def get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        check_tenant(tenant)
        ids = check_doc_ids(doc_ids)
        if not ids:
            return {}
        with self._edge("get", tenant):
            return self._get(tenant, ids)

    def scan(
        self, tenant: str, *, batch_size: int = DEFAULT_SCAN_BATCH, after: str | None = None
    ) -> Iterator[list[Document]]:
        """Validate now, stream later: bad arguments raise here, not at the first ``next``."""
        check_tenant(tenant)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput("batch_size", "must be a positive integer")
        if after is not None:
            check_doc_id(after, "after")
        return self._scan_pages(tenant, batch_size, after)

    def hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        """The content hashes of those of ``doc_ids`` the tenant holds, as the adapter keeps
        them for idempotent upserts (cheaper than `get`: no vectors are read)."""
        check_tenant(tenant)
        ids = check_doc_ids(doc_ids)
        if not ids:
            return {}
        with self._edge("get", tenant):
            return self._hashes(tenant, ids)

    def digests(
        self, tenant: str, *, batch_size: int = DEFAULT_SCAN_BATCH, after: str | None = None
    ) -> Iterator[list[tuple[str, str]]]:
        """Like `scan`, but only ``(doc_id, content_hash)`` pairs: what comparing two stores
        needs (``shadowswap.sync``). Same order, batching and ``after`` as `scan`."""
        check_tenant(tenant)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput("batch_size", "must be a positive integer")
        if after is not None:
            check_doc_id(after, "after")
        return self._digest_pages(tenant, batch_size, after)

    def count(self, tenant: str) -> int:
        check_tenant(tenant)
        with self._edge("count", tenant):
            return self._count(tenant)

    def tenants(self) -> list[str]:
        with self._edge("tenants", None):
            return sorted(self._tenants())

    def health(self) -> Health:
        """Reachability, size and round-trip time; never raises for an unreachable store."""
        start = time.perf_counter()
        try:
            tenants = self.tenants()
            documents = sum(self.count(t) for t in tenants)
            dimension = self.dimension
        except ShadowswapError as exc:
            return Health(
                self.kind,
                self.location,
                reachable=False,
                round_trip_s=time.perf_counter() - start,
                detail=str(exc),
            )
        return Health(
            self.kind,
            self.location,
            reachable=True,
            round_trip_s=time.perf_counter() - start,
            documents=documents,
            tenants=len(tenants),
            dimension=dimension,
            metric=self.metric.value,
        )

    def close(self) -> None:
        with self._edge("close", None):
            self._close()

    def __enter__(self) -> BaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------
    def check_query(self, vector: VectorLike) -> Vector | None:
        """Validate a query vector; None when the store holds no vectors yet."""
        return self._canonical_query(to_vector(vector))

    def _canonical_query(self, query: Vector) -> Vector | None:
        """A valid query vector as this store compares it: refused when its dimension is not
        the store's (`DimensionMismatch`), unit length under cosine; None when the store holds
        no vectors yet (every search is empty)."""
        held = self.dimension
        if held is None:
            return None
        if query.shape[0] != held:
            raise DimensionMismatch("vector", held, int(query.shape[0]), self.kind)
        return canonical_vector(query, self._metric)

    def _prepare(self, tenant: str, documents: Sequence[Document]) -> list[Document]:
        """Check tenants and dimension, canonicalise vectors, keep the last of duplicate ids.

        The store's dimension is read once (a round trip on remote stores). When it is not
        fixed yet, the batch's own dimension is fixed before anything is written; if another
        writer fixed a different one meanwhile, the batch is refused here.
        """
        batch = check_batch(documents)
        if not batch:
            return []
        held = self.dimension
        docs, dimension = canonical_batch(
            tenant, batch, self._metric, dimension=held, kind=self.kind
        )
        if held is None and dimension is not None:
            with self._edge("upsert", tenant):
                fixed = self._fix_dimension(dimension)
            if fixed != dimension:  # another writer fixed the dimension first
                raise DimensionMismatch("documents[0].vector", fixed, dimension, self.kind)
        return docs

    @contextmanager
    def _edge(self, op: str, tenant: str | None) -> Iterator[None]:
        """Map engine exceptions raised inside the block to shadowswap's errors."""
        try:
            yield
        except ShadowswapError:
            raise
        except Exception as exc:
            mapped = self._translate(exc, op, tenant)
            if mapped is None:
                mapped = StoreError(self.kind, op, f"{type(exc).__name__}: {exc}", tenant)
            raise mapped from exc


def check_batch(documents: object) -> Sequence[Document]:
    """A batch must be a list (or other sequence) of documents, not one document."""
    if isinstance(documents, Document) or not isinstance(documents, Sequence):
        raise InvalidInput("documents", "expected a list of documents")
    return documents


def canonical_batch(
    tenant: str,
    documents: Sequence[Document],
    metric: Metric,
    *,
    dimension: int | None = None,
    kind: str = "store",
) -> tuple[list[Document], int | None]:
    """One tenant's batch as the stores keep it: every document of ``tenant``, of one dimension
    (``dimension`` when given, else the first document's), vectors canonical for ``metric``
    (unit length under cosine), the last of duplicate ids kept. Returns the documents and the
    batch's dimension. Shared by every store's upsert and by the dual writer, whose outbox
    records the content hashes of exactly these documents."""
    by_id: dict[str, Document] = {}
    for i, doc in enumerate(check_batch(documents)):
        if not isinstance(doc, Document):
            raise InvalidInput(f"documents[{i}]", "expected a Document")
        if doc.tenant != tenant:
            raise InvalidInput(
                f"documents[{i}].tenant",
                f"document belongs to tenant {doc.tenant!r}, not {tenant!r}",
            )
        if dimension is None:
            dimension = doc.dimension
        elif doc.dimension != dimension:
            raise DimensionMismatch(f"documents[{i}].vector", dimension, doc.dimension, kind)
        vec = canonical_vector(doc.vector, metric, f"documents[{i}].vector")
        by_id[doc.doc_id] = doc if vec is doc.vector else doc.with_vector(vec)
    return list(by_id.values()), dimension


def search_store(store: VectorStore, query: Query) -> SearchResult:
    """Search ``store`` with a checked `Query`: a `BaseStore` trusts it (`BaseStore.
    search_query`); any other `VectorStore` (a wrapper, a user's own store) gets the raw
    parts through the Protocol's ``search`` and checks them itself."""
    if isinstance(store, BaseStore):
        return store.search_query(query)
    return store.search(query.tenant, query.vector, query.k, query.filter)


def check_store_record(
    kind: str,
    info: Mapping[str, object],
    *,
    format: str,
    metric: Metric,
    record: str,
    store: str,
    elsewhere: str,
    format_key: str = "format",
) -> None:
    """Refuse a store whose record (``info``, kept at ``record``) was written by another
    format version of an adapter, or whose store (``store``) was created with another metric:
    `IncompatibleStore`, saying what to do (``elsewhere``: where else the data could go)."""
    held = info.get(format_key)
    if held != format:
        raise IncompatibleStore(
            kind, "open", f"{record} has format {held!r}; this version reads {format}"
        )
    held_metric = info.get("metric")
    if held_metric != metric.value:
        raise IncompatibleStore(
            kind,
            "open",
            f"{store} was created with metric {held_metric!r}, not {metric.value!r}; set "
            f"RETRIEVAL_METRIC={held_metric} or {elsewhere}",
        )


def check_engine_metric(
    kind: str,
    held: str | None,
    *,
    metric: Metric,
    accepted: Mapping[Metric, Sequence[str]],
    what: str,
    setting: str,
    elsewhere: str,
    tenant: str | None = None,
) -> None:
    """Refuse ``what`` (a collection, index or table, as the message names it) when the engine
    ranks it by ``held``, its ``setting`` (Chroma's ``space``, Milvus's ``metric_type``...),
    and ``metric`` cannot run on that: `IncompatibleStore` naming both and the fix (set
    RETRIEVAL_METRIC to what fits ``held``, or ``elsewhere``: where else the data could go).
    ``accepted`` lists the engine's names each metric runs on (compared ignoring case). A
    ``held`` of None (the engine did not say) is let through with a warning."""
    if held is None:
        log.warning(
            "%s: %s does not report its %s; it cannot be checked against RETRIEVAL_METRIC=%s",
            kind,
            what,
            setting,
            metric.value,
        )
        return
    if held.lower() in {a.lower() for a in accepted[metric]}:
        return
    fits = [m.value for m in Metric if held.lower() in {a.lower() for a in accepted[m]}]
    if not fits:
        ranks = " (no metric shadowswap ranks by)"
    elif fits == [held]:
        ranks = ""  # the engine's name is the metric's
    else:
        ranks = " (metric " + " or ".join(repr(f) for f in fits) + ")"
    wanted = " or ".join(repr(a) for a in accepted[metric])
    fix = " or ".join(f"RETRIEVAL_METRIC={f}" for f in fits)
    raise IncompatibleStore(
        kind,
        "open",
        f"{what} uses {setting} {held!r}{ranks} but RETRIEVAL_METRIC is {metric.value!r}, "
        f"which needs {setting} {wanted}; " + (f"set {fix}, or {elsewhere}" if fits else elsewhere),
        tenant,
    )


def note_unrecorded_metric(kind: str, where: str, metric: Metric) -> None:
    """Say that a store holding data without a record of its metric (made before its adapter
    recorded it, or whose record was lost) is taken to have ``metric``, recorded now."""
    log.warning(
        "%s: %s holds data but no record of its metric (made by an older shadowswap, or the "
        "record was lost); taking RETRIEVAL_METRIC=%s and recording it",
        kind,
        where,
        metric.value,
    )


def matches(metadata: Mapping[str, MetaValue], flt: Mapping[str, MetaValue]) -> bool:
    """The equality-filter rule shared by every store (see the module docstring)."""
    for key, want in flt.items():
        if key not in metadata:
            return False
        have = metadata[key]
        if isinstance(want, bool) or isinstance(have, bool):
            if not (isinstance(want, bool) and isinstance(have, bool) and want == have):
                return False
        elif isinstance(want, str) or isinstance(have, str):
            if not (isinstance(want, str) and isinstance(have, str) and want == have):
                return False
        elif have != want:
            return False
    return True

"""LanceDB store: embedded, a directory of Lance tables (or an object-store URI LanceDB reads).

Layout of ``RETRIEVAL_LANCEDB_URL`` (default ``./data/lancedb``)::

    shadowswap_meta.lance   key/value rows: format, metric, dimension
    ss_<tenant>.lance       one table per tenant

Semantics
    tenants     one table per tenant (``ss_<tenant>``; tenant ids only use characters LanceDB
                accepts in table names). A search reads that table alone: no filter to forget.
    ids         the doc id is the ``doc_id`` column itself (Arrow UTF-8, any Unicode); writes
                are ``merge_insert`` on it, so a replaced document is replaced whole.
    metric      vectors are stored as ``fixed_size_list<float32>[dimension]`` exactly as given
                (unit vectors under cosine, from `shadowswap.similarity`). Search uses
                LanceDB's ``dot`` distance for cosine and dot, which it reports as
                ``1 - inner product`` (score = 1 - distance), and ``l2``, the squared
                Euclidean distance (score = -distance). Distances are computed in float32.
                The distance is chosen per query and no ANN index is used, so the store's
                record is its metric: a store recorded with another metric is refused.
    search      exact by design: a flat scan (``bypass_vector_index``), so results equal the
                reference store's even if someone builds an ANN index on the table.
    filters     each document carries its metadata tokens (`shadowswap.stores.tokens`) in a
                ``list<string>`` column; a filter is ``array_has_all(ftok, [...])`` applied
                before the vector ranking (``prefilter``), so a filtered search returns the
                exact top k of the matching documents, never fewer than exist.
    fields      metadata is kept as JSON text (exact types: ints stay ints, floats floats),
                text as a nullable string (None and "" stay apart), the content hash as text.
    scan        ``ORDER BY doc_id`` with ``doc_id > after``: Arrow compares UTF-8 bytes, which
                is code point order.
    consistency every write is a new table version, committed when the call returns; handles
                check for newer versions on every read (``read_consistency_interval=0``), so
                another process's writes are visible at its next call.
    maintenance every ``COMPACT_EVERY`` writes to a table this process compacts its fragments
                and removes versions older than an hour (small dual writes would otherwise
                leave thousands of fragments and slow every scan).
    batches     no engine limit; ``IN (...)`` lists are sent 500 ids at a time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
from lancedb.query import ColumnOrdering

from shadowswap.errors import (
    StoreError,
    StoreUnavailable,
)
from shadowswap.fileio import make_private_dirs
from shadowswap.similarity import Metric, score_from_distance
from shadowswap.stores.base import BaseStore, check_store_record, note_unrecorded_metric
from shadowswap.stores.tokens import tokens
from shadowswap.values import Document, Filter, Hit, Vector

FORMAT = "1"
META_TABLE = "shadowswap_meta"
TABLE_PREFIX = "ss_"
COMPACT_EVERY = 200
_CHUNK = 500
_DOC_COLUMNS = ["doc_id", "vector", "metadata", "text", "hash"]


def table_name(tenant: str) -> str:
    return f"{TABLE_PREFIX}{tenant}"


def _quote(text: str) -> str:
    """A SQL string literal (LanceDB's DataFusion dialect: quotes doubled, no backslash escapes)."""
    return "'" + text.replace("'", "''") + "'"


def _in_list(values: Sequence[str]) -> str:
    return "(" + ", ".join(_quote(v) for v in values) + ")"


class LanceDBStore(BaseStore):
    """LanceDB, embedded, exact; see the module docstring."""

    kind = "lancedb"

    def __init__(self, location: str, metric: Metric = Metric.COSINE) -> None:
        super().__init__(location, metric)
        self._lock = threading.RLock()
        self._db: Any = None
        self._meta: Any = None
        self._tables: dict[str, Any] = {}
        self._writes: dict[str, int] = {}
        self._dim: int | None = None
        self._closed = False
        with self._edge("open", None):
            self._connect()

    # -- opening ------------------------------------------------------------------------
    def _connect(self) -> Any:
        with self._lock:
            if self._closed:
                raise StoreUnavailable(self.kind, "use", "the store was closed")
            if self._db is None:
                if "://" not in self._location:  # embedded: documents, 0700 (fileio)
                    make_private_dirs(Path(self._location))
                db = lancedb.connect(self._location, read_consistency_interval=timedelta(0))
                schema = pa.schema(
                    [
                        pa.field("key", pa.string(), nullable=False),
                        pa.field("value", pa.string(), nullable=False),
                    ]
                )
                meta = db.create_table(META_TABLE, schema=schema, exist_ok=True)
                held = self._read_meta(meta)
                if "dimension" in held and "metric" not in held:
                    note_unrecorded_metric(self.kind, self._location, self._metric)
                self._insert_absent(meta, {"format": FORMAT, "metric": self._metric.value})
                info = self._read_meta(meta)
                check_store_record(
                    self.kind, info, format=FORMAT, metric=self._metric, record=self._location,
                    store=self._location, elsewhere="use another location",
                )  # fmt: skip
                dim = info.get("dimension")
                self._dim = int(dim) if dim else None
                self._db, self._meta = db, meta
            return self._db

    @staticmethod
    def _insert_absent(meta: Any, values: dict[str, str]) -> None:
        """Insert the keys not set yet; a concurrent writer's values win (read back after)."""
        rows = pa.Table.from_pylist(
            [{"key": k, "value": v} for k, v in values.items()], schema=meta.schema
        )
        meta.merge_insert("key").when_not_matched_insert_all().execute(rows)

    @staticmethod
    def _read_meta(meta: Any) -> dict[str, str]:
        rows = meta.search().select(["key", "value"]).limit(None).to_list()
        return {r["key"]: r["value"] for r in rows}

    def _table(self, tenant: str, create: bool) -> Any:
        with self._lock:
            table = self._tables.get(tenant)
            if table is not None:
                return table
            db = self._connect()
            name = table_name(tenant)
            if create:
                table = db.create_table(name, schema=self._schema(), exist_ok=True)
            elif name in self._table_names():
                table = db.open_table(name)
            else:
                return None
            self._tables[tenant] = table
            return table

    def _schema(self) -> pa.Schema:
        dim = self._stored_dimension()
        if dim is None:  # pragma: no cover - the base fixes the dimension before any write
            raise StoreError(self.kind, "upsert", "dimension unknown before the first write")
        return pa.schema(
            [
                pa.field("doc_id", pa.string(), nullable=False),
                pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
                pa.field("metadata", pa.string(), nullable=False),
                pa.field("ftok", pa.list_(pa.string()), nullable=False),
                pa.field("text", pa.string(), nullable=True),
                pa.field("hash", pa.string(), nullable=False),
            ]
        )

    def _table_names(self) -> list[str]:
        db = self._connect()
        names: list[str] = []
        token: str | None = None
        while True:
            page = db.list_tables(page_token=token)
            names += list(page.tables)
            token = page.page_token
            if not token:
                return names

    # -- BaseStore ----------------------------------------------------------------------
    def _stored_dimension(self) -> int | None:
        if self._dim is None and self._meta is not None:
            with self._lock:
                dim = self._read_meta(self._meta).get("dimension")
                self._dim = int(dim) if dim else None
        return self._dim

    def _fix_dimension(self, dimension: int) -> int:
        with self._lock:
            self._connect()
            self._insert_absent(self._meta, {"dimension": str(dimension)})
            self._dim = int(self._read_meta(self._meta)["dimension"])
            return self._dim

    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        table = self._table(tenant, create=False)
        if table is None:
            return {}
        out: dict[str, str] = {}
        for chunk in _chunks(doc_ids):
            rows = (
                table.search()
                .where(f"doc_id IN {_in_list(chunk)}")
                .select(["doc_id", "hash"])
                .limit(None)
                .to_list()
            )
            out.update({r["doc_id"]: r["hash"] for r in rows})
        return out

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        table = self._table(tenant, create=True)
        data = pa.Table.from_pylist(
            [
                {
                    "doc_id": d.doc_id,
                    "vector": d.vector,
                    "metadata": json.dumps(dict(d.metadata), ensure_ascii=False),
                    "ftok": tokens(d.metadata),
                    "text": d.text,
                    "hash": d.content_hash,
                }
                for d in documents
            ],
            schema=table.schema,
        )
        (
            table.merge_insert("doc_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(data)
        )
        self._maybe_compact(tenant, table)

    def _maybe_compact(self, tenant: str, table: Any) -> None:
        with self._lock:
            self._writes[tenant] = self._writes.get(tenant, 0) + 1
            due = self._writes[tenant] % COMPACT_EVERY == 0
        if due:
            table.optimize(cleanup_older_than=timedelta(hours=1))

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        table = self._table(tenant, create=False)
        if table is None:
            return 0
        removed = 0
        for chunk in _chunks(doc_ids):
            result = table.delete(f"doc_id IN {_in_list(chunk)}")
            removed += int(result.num_deleted_rows)
        if removed:
            self._maybe_compact(tenant, table)
        return removed

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        table = self._table(tenant, create=False)
        if table is None:
            return []
        distance = "l2" if self._metric is Metric.L2 else "dot"
        query = (
            table.search(vector, vector_column_name="vector")
            .distance_type(distance)
            .bypass_vector_index()
            .select(["doc_id", "metadata", "_distance"])
            .limit(k)
        )
        if filter:
            wanted = ", ".join(_quote(t) for t in tokens(filter))
            query = query.where(f"array_has_all(ftok, [{wanted}])", prefilter=True)
        convention = "sq_l2" if self._metric is Metric.L2 else "one_minus_ip"
        hits = [
            Hit(
                row["doc_id"],
                score_from_distance(float(row["_distance"]), self._metric, convention),
                json.loads(row["metadata"]),
            )
            for row in query.to_list()
        ]
        hits.sort(key=lambda h: (-h.score, h.doc_id))
        return hits

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        table = self._table(tenant, create=False)
        if table is None:
            return {}
        out: dict[str, Document] = {}
        for chunk in _chunks(doc_ids):
            rows = (
                table.search()
                .where(f"doc_id IN {_in_list(chunk)}")
                .select(_DOC_COLUMNS)
                .limit(None)
                .to_arrow()
            )
            for doc in _documents(tenant, rows):
                out[doc.doc_id] = doc
        return {d: out[d] for d in doc_ids if d in out}

    def _scan_page(self, tenant: str, after: str | None, limit: int) -> list[Document]:
        table = self._table(tenant, create=False)
        if table is None:
            return []
        query = table.search()
        if after is not None:
            query = query.where(f"doc_id > {_quote(after)}")
        rows = (
            query.select(_DOC_COLUMNS)
            .order_by([ColumnOrdering(column_name="doc_id")])
            .limit(limit)
            .to_arrow()
        )
        return list(_documents(tenant, rows))

    def _count(self, tenant: str) -> int:
        table = self._table(tenant, create=False)
        return 0 if table is None else int(table.count_rows())

    def _tenants(self) -> list[str]:
        out = []
        for name in self._table_names():
            if name.startswith(TABLE_PREFIX):
                tenant = name[len(TABLE_PREFIX) :]
                if self._count(tenant) > 0:
                    out.append(tenant)
        return out

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            self._tables.clear()
            self._meta = None
            self._db = None

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        if isinstance(exc, PermissionError | FileNotFoundError | NotADirectoryError):
            return StoreUnavailable(self.kind, op, f"{self._location}: {exc}", tenant)
        if isinstance(exc, OSError):
            return StoreUnavailable(self.kind, op, f"{self._location}: {exc}", tenant)
        return None


def _documents(tenant: str, rows: pa.Table) -> Iterator[Document]:
    ids = rows.column("doc_id").to_pylist()
    metadata = rows.column("metadata").to_pylist()
    texts = rows.column("text").to_pylist()
    vectors = rows.column("vector").combine_chunks()
    dim = vectors.type.list_size
    flat = vectors.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    for i, doc_id in enumerate(ids):
        yield Document(tenant, doc_id, flat[i], json.loads(metadata[i]), texts[i])


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]

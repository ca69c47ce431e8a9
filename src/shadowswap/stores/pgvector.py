"""pgvector store: any PostgreSQL with the ``vector`` extension, through psycopg 3.

``RETRIEVAL_PGVECTOR_URL`` is a libpq DSN (``postgresql://user:pass@host:5432/db``; any libpq
parameter works, e.g. ``?sslmode=require`` or ``?options=-csearch_path%3Dretrieval`` to keep the
tables in another schema). Tables, created on first use in the DSN's current schema::

    shadowswap_meta   key/value rows: format, metric, dimension
    shadowswap_docs   (tenant, doc_id) primary key, embedding vector(dimension), metadata (JSON
                      text), ftok text[] (GIN index), body bytea, hash

Semantics
    tenants     a ``tenant`` column, first in the primary key; every statement this adapter
                sends has ``WHERE tenant = $1`` (one code path builds them), so no call reads or
                changes another tenant's rows.
    ids         ``doc_id`` is a ``text COLLATE "C"`` column: exact comparison, and ``ORDER BY``
                in UTF-8 byte order, which is code point order (the database must use UTF8).
    metric      ``<#>`` (negative inner product) for cosine, on our unit vectors, and for dot:
                score = -distance; ``<->`` (Euclidean) for l2: score = -distance². pgvector
                stores float32 and computes distances in float32. The operator is chosen per
                query and no index is used for ranking (see search), whatever its operator
                class, so the store's record is its metric: a store recorded with another
                metric is refused.
    search      exact by design: ``ORDER BY distance, doc_id`` is a sequential scan of the
                tenant's rows with a top-k sort, never an ANN index, so a filter can never make
                a search return fewer than k matches (the trap of HNSW post-filtering).
    filters     ``ftok @> ARRAY[...]``: the metadata tokens of `shadowswap.stores.tokens`.
    fields      metadata as JSON text (jsonb would turn ``1e300`` into an integer and lose the
                int/float distinction), text as UTF-8 bytes in ``body`` (PostgreSQL text cannot
                hold NUL characters, our documents may), vectors in pgvector's binary format.
    consistency each call is one transaction, committed when it returns: visible to every
                connection at once (read committed).
    batches     writes go in one transaction per call, ``executemany`` pipelined; id lists are
                bound as one array parameter (no length limit that matters here).
    connection  a pool of up to ``pool_size`` (4) connections, opened on demand, so searches
                from several threads run in parallel; a connection that broke is dropped and
                the next call opens a new one. ``connect_timeout`` defaults to 10 s.
"""

from __future__ import annotations

import json
import re
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from psycopg import errors as pgerrors
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

from shadowswap.errors import (
    ConfigError,
    IncompatibleStore,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.settings.masking import mask_secrets
from shadowswap.similarity import Metric, score_from_distance
from shadowswap.stores.base import BaseStore, check_store_record, note_unrecorded_metric
from shadowswap.stores.tokens import tokens
from shadowswap.values import Document, Filter, Hit, Vector

FORMAT = "1"
META = "shadowswap_meta"
DOCS = "shadowswap_docs"
_LOCK_KEY = 0x5AD0_5A9E  # advisory lock that serialises schema creation across processes


class PgVector:
    """A float32 vector on its way to PostgreSQL (binary pgvector format)."""

    __slots__ = ("array",)

    def __init__(self, array: Vector) -> None:
        self.array = array


def _register_vector(conn: psycopg.Connection[Any]) -> None:
    """Teach this connection pgvector's binary format, both ways."""
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise IncompatibleStore(
            "pgvector",
            "open",
            "the 'vector' extension is not installed in this database; run "
            "CREATE EXTENSION vector as a user allowed to (or install pgvector on the server)",
        )

    vector_oid = info.oid

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = vector_oid

        def dump(self, obj: Any) -> bytes:
            array = obj.array
            header = struct.pack(">HH", array.shape[0], 0)
            return header + bytes(array.astype(">f4").tobytes())

    class VectorLoader(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> Any:
            (dim,) = struct.unpack_from(">H", data)
            return np.frombuffer(bytes(data), dtype=">f4", count=dim, offset=4).astype(np.float32)

    conn.adapters.register_dumper(PgVector, VectorDumper)
    conn.adapters.register_loader(info.oid, VectorLoader)


class PgvectorStore(BaseStore):
    """PostgreSQL + pgvector, exact; see the module docstring."""

    kind = "pgvector"

    def __init__(self, dsn: str, metric: Metric = Metric.COSINE, *, pool_size: int = 4) -> None:
        super().__init__(dsn, metric)
        if not dsn.startswith(("postgresql://", "postgres://")) and "=" not in dsn:
            raise ConfigError(
                "RETRIEVAL_PGVECTOR_URL",
                display_dsn(dsn),
                "expected a PostgreSQL DSN such as postgresql://user:password@host:5432/db "
                "(the database needs the pgvector extension); shadowswap does not start an "
                "embedded PostgreSQL",
            )
        self._dsn = dsn
        self._lock = threading.RLock()
        self._pool = _Pool(self._connect, pool_size)
        self._prepared = False
        self._dim: int | None = None
        self._has_docs = False

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        """A new connection, ready for our types; the first one also checks the database."""
        params: dict[str, Any] = {}
        if "connect_timeout" not in self._dsn:
            params["connect_timeout"] = 10
        conn = psycopg.connect(self._dsn, autocommit=True, **params)
        try:
            with self._lock:
                if not self._prepared:
                    self._prepare_database(conn)
                    self._prepared = True
            _register_vector(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare_database(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute("SHOW server_encoding").fetchone()
        if row is None or str(row[0]).upper() not in ("UTF8", "UTF-8"):
            raise IncompatibleStore(
                self.kind,
                "open",
                f"the database encoding is {row[0] if row else '?'}; shadowswap needs UTF8 "
                "(CREATE DATABASE ... ENCODING 'UTF8')",
            )
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            has_vector = conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
            if has_vector is None:
                try:
                    with conn.transaction():
                        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except (pgerrors.InsufficientPrivilege, pgerrors.UndefinedFile) as exc:
                    raise IncompatibleStore(
                        self.kind,
                        "open",
                        f"the 'vector' extension is missing and cannot be created ({exc}); "
                        "run CREATE EXTENSION vector as a user allowed to, or install pgvector",
                    ) from exc
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {META} (key text PRIMARY KEY, value text NOT NULL)"
            )
            held = dict(conn.execute(f"SELECT key, value FROM {META}").fetchall())
            if "dimension" in held and "metric" not in held:
                note_unrecorded_metric(self.kind, "this database", self._metric)
            conn.execute(
                f"INSERT INTO {META} (key, value) VALUES ('format', %s), ('metric', %s) "
                "ON CONFLICT (key) DO NOTHING",
                (FORMAT, self._metric.value),
            )
        info = dict(conn.execute(f"SELECT key, value FROM {META}").fetchall())
        check_store_record(
            self.kind, info, format=FORMAT, metric=self._metric, record=META,
            store="this database", elsewhere="use another database or schema",
        )  # fmt: skip
        dim = info.get("dimension")
        self._dim = int(dim) if dim else None
        self._has_docs = self._dim is not None

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            cur = conn.execute(sql, params, binary=True)
            return cur.fetchall() if cur.description is not None else []

    # -- BaseStore ----------------------------------------------------------------------
    def _stored_dimension(self) -> int | None:
        if self._dim is None:
            rows = self._exec(f"SELECT value FROM {META} WHERE key = 'dimension'")
            with self._lock:
                self._dim = int(rows[0][0]) if rows else None
                self._has_docs = self._dim is not None
        return self._dim

    def _fix_dimension(self, dimension: int) -> int:
        with self._pool.connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute(
                    f"INSERT INTO {META} (key, value) VALUES ('dimension', %s) "
                    "ON CONFLICT (key) DO NOTHING",
                    (str(dimension),),
                )
                row = conn.execute(f"SELECT value FROM {META} WHERE key = 'dimension'").fetchone()
                held = int(row[0]) if row else dimension
                if held != dimension:
                    return held
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {DOCS} ("
                    'tenant text COLLATE "C" NOT NULL, '
                    'doc_id text COLLATE "C" NOT NULL, '
                    f"embedding vector({dimension}) NOT NULL, "
                    "metadata text NOT NULL, "
                    "ftok text[] NOT NULL, "
                    "body bytea, "
                    "hash text NOT NULL, "
                    "PRIMARY KEY (tenant, doc_id))"
                )
                conn.execute(f"CREATE INDEX IF NOT EXISTS {DOCS}_ftok ON {DOCS} USING gin (ftok)")
            self._dim = held
            self._has_docs = True
            return held

    def _ready(self) -> bool:
        """Whether the documents table exists (it is created with the first write)."""
        return self._has_docs or self._stored_dimension() is not None

    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        if not self._ready():
            return {}
        rows = self._exec(
            f"SELECT doc_id, hash FROM {DOCS} WHERE tenant = %s AND doc_id = ANY(%s)",
            (tenant, list(doc_ids)),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        rows = [
            (
                tenant,
                d.doc_id,
                PgVector(d.vector),
                json.dumps(dict(d.metadata), ensure_ascii=False),
                tokens(d.metadata),
                None if d.text is None else d.text.encode("utf-8"),
                d.content_hash,
            )
            for d in documents
        ]
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(binary=True) as cur,
        ):
            cur.executemany(
                f"INSERT INTO {DOCS} (tenant, doc_id, embedding, metadata, ftok, body, hash) "
                "VALUES (%s, %s, %b, %s, %s, %s, %s) ON CONFLICT (tenant, doc_id) DO UPDATE "
                "SET embedding = excluded.embedding, metadata = excluded.metadata, "
                "ftok = excluded.ftok, body = excluded.body, hash = excluded.hash",
                rows,
            )

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        if not self._ready():
            return 0
        rows = self._exec(
            f"DELETE FROM {DOCS} WHERE tenant = %s AND doc_id = ANY(%s) RETURNING 1",
            (tenant, list(doc_ids)),
        )
        return len(rows)

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        if not self._ready():
            return []
        op = "<->" if self._metric is Metric.L2 else "<#>"
        where = "tenant = %s"
        params: list[Any] = [PgVector(vector), tenant]
        if filter:
            where += " AND ftok @> %s"
            params.append(tokens(filter))
        params.append(k)
        rows = self._exec(
            f"SELECT doc_id, metadata, embedding {op} %b AS distance FROM {DOCS} "
            f"WHERE {where} ORDER BY distance, doc_id LIMIT %s",
            params,
        )
        hits = []
        for doc_id, metadata, distance in rows:
            if self._metric is Metric.L2:
                score = score_from_distance(float(distance), self._metric, "l2")
            else:
                score = score_from_distance(-float(distance), self._metric, "ip")
            hits.append(Hit(str(doc_id), score, json.loads(metadata)))
        return hits

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        if not self._ready():
            return {}
        rows = self._exec(
            f"SELECT doc_id, embedding, metadata, body FROM {DOCS} "
            "WHERE tenant = %s AND doc_id = ANY(%s)",
            (tenant, list(doc_ids)),
        )
        out = {str(r[0]): _document(tenant, r) for r in rows}
        return {d: out[d] for d in doc_ids if d in out}

    def _scan_page(self, tenant: str, after: str | None, limit: int) -> list[Document]:
        if not self._ready():
            return []
        if after is None:
            rows = self._exec(
                f"SELECT doc_id, embedding, metadata, body FROM {DOCS} WHERE tenant = %s "
                "ORDER BY doc_id LIMIT %s",
                (tenant, limit),
            )
        else:
            rows = self._exec(
                f"SELECT doc_id, embedding, metadata, body FROM {DOCS} WHERE tenant = %s "
                "AND doc_id > %s ORDER BY doc_id LIMIT %s",
                (tenant, after, limit),
            )
        return [_document(tenant, r) for r in rows]

    def _count(self, tenant: str) -> int:
        if not self._ready():
            return 0
        rows = self._exec(f"SELECT count(*) FROM {DOCS} WHERE tenant = %s", (tenant,))
        return int(rows[0][0])

    def _tenants(self) -> list[str]:
        if not self._ready():
            return []
        # A loose index scan over the primary key: one probe per tenant, not one per row.
        rows = self._exec(
            f"WITH RECURSIVE t AS (SELECT min(tenant) AS tenant FROM {DOCS} UNION ALL "
            f"SELECT (SELECT min(tenant) FROM {DOCS} WHERE tenant > t.tenant) FROM t "
            "WHERE t.tenant IS NOT NULL) SELECT tenant FROM t WHERE tenant IS NOT NULL"
        )
        return [str(r[0]) for r in rows]

    def _close(self) -> None:
        self._pool.close()

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        where = display_dsn(self._dsn)
        if isinstance(exc, pgerrors.QueryCanceled):
            return StoreTimeout(self.kind, op, f"{where}: statement cancelled ({exc})", tenant)
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(self.kind, op, f"cannot reach {where}: {exc}", tenant)
        if isinstance(exc, psycopg.ProgrammingError | psycopg.DataError):
            return StoreError(self.kind, op, f"{type(exc).__name__}: {exc}", tenant)
        if isinstance(exc, psycopg.Error):
            return StoreUnavailable(self.kind, op, f"{where}: {exc}", tenant)
        return None


class _Pool:
    """At most ``size`` connections, opened on demand, shared by the store's threads.

    A connection that broke (server restart, network cut) is dropped when it is handed back,
    so the next call opens a new one. After `close`, every call fails as unavailable.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], size: int) -> None:
        if size < 1:
            raise ValueError("pool_size must be at least 1")
        self._connect = connect
        self._size = size
        self._idle: list[psycopg.Connection[Any]] = []
        self._open = 0
        self._closed = False
        self._cv = threading.Condition()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _take(self) -> psycopg.Connection[Any]:
        with self._cv:
            while True:
                if self._closed:
                    raise StoreUnavailable("pgvector", "use", "the store was closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self._size:
                    self._open += 1
                    break
                self._cv.wait()
        try:
            return self._connect()
        except BaseException:
            with self._cv:
                self._open -= 1
                self._cv.notify()
            raise

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        with self._cv:
            if self._closed or conn.closed or conn.broken:
                self._open -= 1
                conn.close()
            else:
                self._idle.append(conn)
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._open -= len(self._idle)
            self._idle.clear()
            self._cv.notify_all()


def _document(tenant: str, row: tuple[Any, ...]) -> Document:
    doc_id, embedding, metadata, body = row
    text = None if body is None else bytes(body).decode("utf-8")
    return Document(tenant, str(doc_id), embedding, json.loads(metadata), text)


def display_dsn(dsn: str) -> str:
    """The DSN without its password, for messages (URL and ``key=value`` forms)."""
    if "://" in dsn:
        return mask_secrets(dsn)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)

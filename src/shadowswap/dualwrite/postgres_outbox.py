"""The shared outbox: PostgreSQL, when ``RETRIEVAL_DUAL_WRITE_OUTBOX_URL`` is a
``postgresql://`` DSN, so that several replicas of the service append to one outbox and one
replay drains it.

Why PostgreSQL and how concurrency is handled: replicas on several machines cannot share a
SQLite file. Appends are plain inserts (many replicas at once); the size is a ``count(*)``
rather than a counter row, which would make every replica's append wait on one row lock, so
the capacity is exact for one appender and may be exceeded by at most the number of
concurrent appenders. The tenants' shares are decided from the same snapshot (a ``GROUP BY
tenant`` count), so concurrent appends of a flooding tenant may reach into another's share
by at most what they append at that moment; the next appends see them and stop. Claims
take a transaction-scoped advisory lock (so a document's items are always claimed whole by
one replay) and lock the rows they read ``FOR UPDATE SKIP LOCKED`` (so a claim never waits
on a row another replay is acking); leases then keep other replays off those documents until
acked, failed, released or expired. Times are the
injected clock's (``time.time()`` in production): machines sharing an outbox need clocks in
step to within a small part of the lease (300 s) and of the item TTL.

The tables live in the schema ``shadowswap`` of the DSN's database (created when missing)::

    shadowswap.outbox_meta, shadowswap.outbox_items, shadowswap.outbox_dropped,
    shadowswap.outbox_counters, shadowswap.outbox_tenants

with the columns of the SQLite outbox (``seq`` is a ``bigint`` identity). psycopg 3 comes
with the ``postgres`` extra; this module is imported only when a DSN is configured
(`shadowswap.dualwrite.outbox_url.open_outbox`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg

from shadowswap.dualwrite.sql_outbox import Query, SqlOutbox
from shadowswap.errors import (
    ConfigError,
    IncompatibleStore,
    StoreError,
    StoreUnavailable,
)
from shadowswap.settings.masking import mask_secrets

FORMAT = "1"
SCHEMA = "shadowswap"
_LOCK_SCHEMA = 0x5348_4457_0001  # advisory lock keys ("SHDW" + purpose)
_LOCK_CLAIM = 0x5348_4457_0002
_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.outbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.outbox_items (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    content_hash TEXT,
    trace_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_attempt_at DOUBLE PRECISION,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS outbox_items_key ON {SCHEMA}.outbox_items (tenant, doc_id, seq);
CREATE INDEX IF NOT EXISTS outbox_items_created ON {SCHEMA}.outbox_items (created_at);
CREATE TABLE IF NOT EXISTS {SCHEMA}.outbox_dropped (
    tenant TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    reason TEXT NOT NULL,
    dropped_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, doc_id, destination)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.outbox_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.outbox_tenants (
    tenant TEXT PRIMARY KEY,
    dropped_full BIGINT NOT NULL DEFAULT 0,
    dropped_ttl BIGINT NOT NULL DEFAULT 0
);
INSERT INTO {SCHEMA}.outbox_counters (name, value)
    VALUES ('dropped_full', 0), ('dropped_ttl', 0) ON CONFLICT DO NOTHING;
INSERT INTO {SCHEMA}.outbox_meta (key, value) VALUES ('format', '{FORMAT}') ON CONFLICT DO NOTHING;
"""


class _Q:
    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def _execute(self, sql: str, params: Sequence[Any]) -> None:
        self._cur.execute(sql.replace("?", "%s"), tuple(params))

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._execute(sql, params)
        return list(self._cur.fetchall()) if self._cur.description else []

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._execute(sql, params)
        row: tuple[Any, ...] | None = self._cur.fetchone()
        return row

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._execute(sql, params)
        return int(self._cur.rowcount)


class PostgresOutbox(SqlOutbox):
    """The outbox in a PostgreSQL database; see the module docstring."""

    tables: ClassVar[dict[str, str]] = {
        "items": f"{SCHEMA}.outbox_items",
        "dropped": f"{SCHEMA}.outbox_dropped",
        "counters": f"{SCHEMA}.outbox_counters",
        "tenants": f"{SCHEMA}.outbox_tenants",
    }
    lock_rows = " FOR UPDATE SKIP LOCKED"

    def __init__(self, dsn: str, *, connect_timeout_s: int = 10) -> None:
        self._dsn = dsn
        self._masked = mask_secrets(dsn)
        self._timeout = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._lock, self._edge("open"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_SCHEMA,))
                cur.execute(_DDL)
                cur.execute(f"SELECT value FROM {SCHEMA}.outbox_meta WHERE key = 'format'")
                row = cur.fetchone()
        if row is None or row[0] != FORMAT:
            raise IncompatibleStore(
                "outbox",
                "open",
                f"{self._masked} has outbox format {row[0] if row else None!r}; this version "
                f"reads format {FORMAT}",
            )

    @property
    def location(self) -> str:
        return self._masked

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(
                    self._dsn, autocommit=True, connect_timeout=self._timeout
                )
            except psycopg.ProgrammingError as exc:
                raise ConfigError(
                    "RETRIEVAL_DUAL_WRITE_OUTBOX_URL",
                    self._masked,
                    f"not a usable PostgreSQL DSN ({exc}); expected postgresql://user@host/db",
                ) from exc
        return self._conn

    # -- SqlOutbox ------------------------------------------------------------------------
    @contextmanager
    def _tx(self, op: str, *, write: bool = True) -> Iterator[Query]:
        with self._lock, self._edge(op):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield _Q(cur)

    def _claim_lock(self, q: Query) -> None:
        q.one("SELECT pg_advisory_xact_lock(?)", (_LOCK_CLAIM,))

    def _size(self, q: Query) -> int:
        row = q.one(f"SELECT count(*) FROM {SCHEMA}.outbox_items")
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _edge(self, op: str) -> Iterator[None]:
        """psycopg's errors, mapped to ours; messages name the database, password masked."""
        try:
            yield
        except (StoreError, ConfigError):
            raise
        except psycopg.OperationalError as exc:
            self._drop_connection()
            raise StoreUnavailable("outbox", op, f"{self._masked}: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError("outbox", op, f"{self._masked}: {_first_line(exc)}") from exc

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

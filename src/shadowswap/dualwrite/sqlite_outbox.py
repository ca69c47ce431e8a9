"""The default outbox: one SQLite file (``RETRIEVAL_DUAL_WRITE_OUTBOX_URL``, a path).

Why SQLite: it is on every machine, needs no server, and its WAL mode gives exactly what the
outbox promises. Each commit reaches the WAL before ``append`` returns, so an item
acknowledged as enqueued survives the process being killed at any instant
(``tests/dualwrite/test_crash.py`` kills a writer with SIGKILL).

Durability level (``?synchronous=`` on the path, default ``normal``): with ``normal`` the WAL
is written but not fsync'd at each commit, so the item survives any process crash and is lost
only if the machine itself loses power before the OS writes it out. That loses no
acknowledged write: the caller's write is durable in the synchronous backend, and the target
document the lost item described is found and repaired by ``shadowswap reconcile --repair``.
``?synchronous=full`` fsyncs every commit (a power cut loses nothing either) at about 0.3 ms
per write, which is what makes a dual write cost twice a local FAISS write
(``benchmarks/bench_dualwrite.py`` measures both).
WAL checkpoints (copying the log back into the database file, with an fsync) run on a
background thread of the outbox (`_Checkpointer`, every 0.2 s or 256 commits), not inside the
commit of the write that crosses SQLite's 1,000-page threshold: that commit is a caller's
write, and the checkpoint made it the slowest 1 % (``benchmarks/bench_dualwrite.py``).
Several processes on one machine may share the file (the service appends, cron replays):
writers take the file's write lock with ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout``.
Replicas on several machines need the PostgreSQL outbox instead.

Schema (format 1)::

    outbox_meta      (key, value)                 format
    outbox_items     (seq INTEGER PRIMARY KEY AUTOINCREMENT — never reused, tenant, doc_id,
                      destination, op, content_hash, trace_id, created_at, attempts,
                      last_error, last_attempt_at, lease_owner, lease_until): no content
    outbox_dropped   (tenant, doc_id, destination) -> reason, dropped_at: for reconcile
    outbox_counters  size (kept by triggers), dropped_full, dropped_ttl
    outbox_tenants   tenant -> dropped_full, dropped_ttl (its part of those totals), items
                     (kept by triggers, as ``size``: the tenants' shares are read from here,
                     one row per tenant, instead of counting the items at every append).
                     Added by issue 16 with CREATE IF NOT EXISTS: format 1 files gain it on
                     open, and ``items`` is recounted at every open.

A file that is not a SQLite database, or one that belongs to something else, is refused with
an error naming the file; nothing is ever written to it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

from shadowswap.dualwrite.sql_outbox import Query, SqlOutbox
from shadowswap.errors import (
    ConfigError,
    CorruptStore,
    IncompatibleStore,
    StoreError,
    StoreUnavailable,
)
from shadowswap.fairness import FifoRLock
from shadowswap.fileio import create_private_file, make_private_dirs

FORMAT = "1"
_TABLES = ("outbox_meta", "outbox_items", "outbox_dropped", "outbox_counters", "outbox_tenants")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    content_hash TEXT,
    trace_id TEXT,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_attempt_at REAL,
    lease_owner TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS outbox_items_key ON outbox_items (tenant, doc_id, seq);
CREATE INDEX IF NOT EXISTS outbox_items_created ON outbox_items (created_at);
CREATE TABLE IF NOT EXISTS outbox_dropped (
    tenant TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    reason TEXT NOT NULL,
    dropped_at REAL NOT NULL,
    PRIMARY KEY (tenant, doc_id, destination)
);
CREATE TABLE IF NOT EXISTS outbox_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_tenants (
    tenant TEXT PRIMARY KEY,
    dropped_full INTEGER NOT NULL DEFAULT 0,
    dropped_ttl INTEGER NOT NULL DEFAULT 0,
    items INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER IF NOT EXISTS outbox_items_tenant_added AFTER INSERT ON outbox_items BEGIN
    INSERT OR IGNORE INTO outbox_tenants (tenant) VALUES (NEW.tenant);
    UPDATE outbox_tenants SET items = items + 1 WHERE tenant = NEW.tenant;
END;
CREATE TRIGGER IF NOT EXISTS outbox_items_tenant_removed AFTER DELETE ON outbox_items
    BEGIN UPDATE outbox_tenants SET items = items - 1 WHERE tenant = OLD.tenant; END;
INSERT OR IGNORE INTO outbox_counters (name, value)
    VALUES ('size', 0), ('dropped_full', 0), ('dropped_ttl', 0);
CREATE TRIGGER IF NOT EXISTS outbox_items_added AFTER INSERT ON outbox_items
    BEGIN UPDATE outbox_counters SET value = value + 1 WHERE name = 'size'; END;
CREATE TRIGGER IF NOT EXISTS outbox_items_removed AFTER DELETE ON outbox_items
    BEGIN UPDATE outbox_counters SET value = value - 1 WHERE name = 'size'; END;
"""
_HINT = "move the file away or set RETRIEVAL_DUAL_WRITE_OUTBOX_URL to another path"


class _Checkpointer:
    """Checkpoints the WAL from its own thread and connection (``PASSIVE``: never blocks a
    writer), every ``interval_s`` after a commit, or at once after ``burst`` commits, so the
    log stays small without a caller's commit paying for it."""

    burst: ClassVar[int] = 256

    def __init__(self, path: Path, busy_timeout_s: float, interval_s: float = 0.2) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._interval_s = interval_s
        self._commits = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._commits += 1  # read and reset only by the thread; a lost increment is harmless
        if self._commits >= self.burst:
            self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(
                self._path, timeout=self._busy_timeout_s, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        except sqlite3.Error:
            return  # the appender's own connection then checkpoints on close
        try:
            while not self._stop.is_set():
                self._wake.wait(self._interval_s)
                self._wake.clear()
                if self._commits:
                    self._commits = 0
                    with contextlib.suppress(sqlite3.Error):  # busy: the next round does it
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()


class _Q:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, tuple(params)).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._db.execute(sql, tuple(params)).fetchone()
        return row

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, tuple(params)).rowcount


class SqliteOutbox(SqlOutbox):
    """The outbox in a SQLite file; see the module docstring.

    >>> import tempfile, pathlib
    >>> box = SqliteOutbox(pathlib.Path(tempfile.mkdtemp()) / "outbox.sqlite3")
    >>> box.stats().size
    0
    """

    tables: ClassVar[dict[str, str]] = {
        "items": "outbox_items",
        "dropped": "outbox_dropped",
        "counters": "outbox_counters",
        "tenants": "outbox_tenants",
    }

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "NORMAL",
        busy_timeout_s: float = 10.0,
    ) -> None:
        self._path = Path(path)
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        # granted in arrival order: a writer's single-item append waits for the append in
        # progress, not behind a flood of 1,000-item appends that barge (issue 16)
        self._lock = FifoRLock()
        self._db = self._open()
        self._checkpointer = _Checkpointer(self._path, busy_timeout_s)

    @property
    def location(self) -> str:
        return str(self._path)

    # -- opening --------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self._path.is_dir():
            raise ConfigError(
                "RETRIEVAL_DUAL_WRITE_OUTBOX_URL",
                str(self._path),
                "this is a directory; give the path of the outbox file, such as "
                f"{self._path / 'outbox.sqlite3'}",
            )
        try:
            make_private_dirs(self._path.parent)  # queued documents: 0700 / 0600 (fileio)
            create_private_file(self._path)
        except OSError as exc:
            raise StoreUnavailable(
                "outbox", "open", f"cannot create the directory of {self._path}: {exc}"
            ) from exc
        with self._edge("open"):
            db = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                self._prepare(db)
            except BaseException:
                db.close()
                raise
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        foreign = tables - set(_TABLES) - {"sqlite_sequence"}
        if tables and "outbox_meta" not in tables:
            raise IncompatibleStore(
                "outbox",
                "open",
                f"{self._path} is a SQLite database but not a shadowswap outbox (it holds "
                f"tables {', '.join(sorted(foreign)) or 'of another program'}); {_HINT}",
            )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the _Checkpointer's job
        db.executescript(_SCHEMA)
        db.execute("INSERT OR IGNORE INTO outbox_meta (key, value) VALUES ('format', ?)", (FORMAT,))
        db.execute("BEGIN IMMEDIATE")  # a file from before the table: count what it holds
        db.execute(
            "INSERT INTO outbox_tenants (tenant, items) SELECT tenant, COUNT(*) FROM "
            "outbox_items GROUP BY tenant ON CONFLICT (tenant) DO UPDATE SET items = "
            "excluded.items"
        )
        db.execute("COMMIT")
        row = db.execute("SELECT value FROM outbox_meta WHERE key = 'format'").fetchone()
        if row is None or row[0] != FORMAT:
            raise IncompatibleStore(
                "outbox",
                "open",
                f"{self._path} has outbox format {row[0] if row else None!r}; this version "
                f"reads format {FORMAT}",
            )

    # -- SqlOutbox ------------------------------------------------------------------------
    @contextmanager
    def _tx(self, op: str, *, write: bool = True) -> Iterator[Query]:
        with self._lock, self._edge(op):
            self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _Q(self._db)
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if write:
                self._checkpointer.committed()

    def _size(self, q: Query) -> int:
        row = q.one("SELECT value FROM outbox_counters WHERE name = 'size'")
        return 0 if row is None else int(row[0])

    def _per_tenant(self, q: Query) -> dict[str, int]:
        rows = q.all("SELECT tenant, items FROM outbox_tenants WHERE items > 0")
        return {str(tenant): int(n) for tenant, n in rows}

    def close(self) -> None:
        self._checkpointer.close()
        with self._lock:
            self._db.close()  # the last connection to close checkpoints what is left

    @contextmanager
    def _edge(self, op: str) -> Iterator[None]:
        """SQLite's errors, mapped to ours; every message names the file."""
        try:
            yield
        except StoreError:
            raise
        except sqlite3.ProgrammingError as exc:
            raise StoreUnavailable("outbox", op, f"{self._path}: {exc}") from exc
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable("outbox", op, f"{self._path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise CorruptStore(
                "outbox",
                op,
                str(self._path),
                f"not a readable shadowswap outbox ({exc}); {_HINT}",
            ) from exc

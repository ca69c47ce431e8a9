"""Opening outboxes: the SQLite file's guarantees and refusals, the PostgreSQL DSN, the URL
rules of RETRIEVAL_DUAL_WRITE_OUTBOX_URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from shadowswap.dualwrite.outbox import Change
from shadowswap.dualwrite.outbox_url import open_outbox
from shadowswap.dualwrite.postgres_outbox import PostgresOutbox
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.errors import ConfigError, CorruptStore, IncompatibleStore, StoreUnavailable
from tests.dualwrite.conftest import doc
from tests.servers import fresh_database


def test_sqlite_outbox_is_wal_and_commits_reach_the_wal(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "o.sqlite3")
    mode = box._db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = box._db.execute("PRAGMA synchronous").fetchone()[0]
    box.close()
    assert (mode, sync) == ("wal", 1)  # 1 = NORMAL: survives a process kill (test_crash.py)


def test_items_survive_reopening(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "o.sqlite3")
    box.append([Change.upsert(doc("a", "1"), "faiss")], now=1.0, capacity=10, ttl_s=100)
    box.close()
    again = SqliteOutbox(tmp_path / "o.sqlite3")
    assert again.stats().size == 1
    again.close()


def test_a_file_that_is_not_a_database_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not a database, it was overwritten by accident\n" * 100)
    with pytest.raises(CorruptStore) as err:
        SqliteOutbox(path)
    assert str(path) in str(err.value) and "RETRIEVAL_DUAL_WRITE_OUTBOX_URL" in str(err.value)
    assert path.read_bytes().startswith(b"this is not a database")  # left untouched


def test_a_database_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE docs (id TEXT)")
    db.close()
    with pytest.raises(IncompatibleStore, match="not a shadowswap outbox"):
        SqliteOutbox(path)


def test_a_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RETRIEVAL_DUAL_WRITE_OUTBOX_URL"):
        SqliteOutbox(tmp_path)


def test_an_unreachable_location_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot create the directory"):
        SqliteOutbox(blocker / "sub" / "outbox.sqlite3")


def test_open_outbox_follows_the_url(tmp_path: Path, postgres_dsn: str) -> None:
    box = open_outbox(str(tmp_path / "x" / "outbox.sqlite3"))
    assert isinstance(box, SqliteOutbox) and (tmp_path / "x" / "outbox.sqlite3").exists()
    box.close()
    pg = open_outbox(fresh_database(postgres_dsn, "url"))
    assert isinstance(pg, PostgresOutbox)
    pg.close()
    with pytest.raises(ConfigError, match="postgresql:// DSN"):
        open_outbox("redis://localhost/0")


def test_postgres_unreachable_names_the_server_and_masks_the_password() -> None:
    with pytest.raises(StoreUnavailable) as err:
        PostgresOutbox("postgresql://app:s3cret@127.0.0.1:1/outbox", connect_timeout_s=2)
    assert "127.0.0.1:1" in str(err.value) and "s3cret" not in str(err.value)


def test_postgres_outbox_reconnects_after_the_connection_broke(postgres_dsn: str) -> None:
    dsn = fresh_database(postgres_dsn, "reconnect")
    box = PostgresOutbox(dsn)
    try:
        box.append([Change.delete("a", "1", "faiss")], now=1.0, capacity=10, ttl_s=100)
        with psycopg.connect(dsn, autocommit=True) as admin:  # as a server restart would
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreUnavailable):
            box.stats()
        assert box.stats().size == 1  # the next call reconnects
    finally:
        box.close()


def test_the_outbox_url_chooses_the_durability_level(tmp_path: Path) -> None:
    """`?synchronous=full` fsyncs every commit; the default survives any process crash."""
    for url, level in (
        (str(tmp_path / "a.sqlite3"), 1),
        (f"{tmp_path / 'b.sqlite3'}?synchronous=full", 2),
    ):
        box = open_outbox(url)
        db = box._db  # type: ignore[attr-defined]
        assert isinstance(db, sqlite3.Connection)
        assert db.execute("PRAGMA synchronous").fetchone()[0] == level  # 1 NORMAL, 2 FULL
        box.close()
    with pytest.raises(ConfigError, match=r"\?synchronous=normal"):
        open_outbox(f"{tmp_path / 'c.sqlite3'}?synchronous=sometimes")


def test_a_file_from_before_tenant_counts_gets_them_on_open(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = SqliteOutbox(path)
    changes = [Change.upsert(doc(t, f"{t}{i}"), "faiss") for t in "ab" for i in range(3)]
    box.append(changes, now=1.0, capacity=100, ttl_s=100)
    box.close()
    db = sqlite3.connect(path)  # as a file written before issue 16 looks
    db.executescript(
        "DROP TRIGGER outbox_items_tenant_added; DROP TRIGGER outbox_items_tenant_removed; "
        "DROP TABLE outbox_tenants;"
    )
    db.close()
    box = SqliteOutbox(path)
    try:
        assert [(u.tenant, u.items) for u in box.tenants()] == [("a", 3), ("b", 3)]
        more = [Change.upsert(doc("a", f"n{i}"), "faiss") for i in range(5)]
        stored = box.append(more, now=2.0, capacity=10, ttl_s=100, share=2)
        assert len(stored.seqs) == 2  # the outbox may fill to 10 - one new share = 8
        assert [(u.tenant, u.items) for u in box.tenants()] == [("a", 5), ("b", 3)]
    finally:
        box.close()

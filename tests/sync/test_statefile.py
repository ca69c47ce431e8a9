"""State files: atomic replacement, clear refusals, the lock."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shadowswap.errors import StateError
from shadowswap.sync.checkpoint import Checkpoint, FileCheckpoints
from shadowswap.sync.statefile import exclusive_lock, read_json, write_json_atomic


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.json"
    write_json_atomic(path, {"drift": 1})

    def broken_fsync(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StateError, match="No space left"):
        write_json_atomic(path, {"drift": 2})
    assert json.loads(path.read_text()) == {"drift": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.json"]  # no temporary left behind


def test_state_files_are_readable_by_other_users(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "x.json", {})
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644


def test_an_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateError, match="cannot write state"):
        write_json_atomic(tmp_path / "file" / "x.json", {})


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_unreadable_state_is_refused_with_the_path(tmp_path: Path, content: str) -> None:
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(StateError, match=r"x\.json"):
        read_json(tmp_path / "x.json")


def test_a_damaged_checkpoint_names_the_way_out(tmp_path: Path) -> None:
    cps = FileCheckpoints(tmp_path, ("faiss", "a"), ("chroma", "b"))
    cps.save(Checkpoint("acme", "p1", after="x", processed=3))
    data = json.loads(cps.path("acme").read_text())
    assert data["source"] == {"kind": "faiss", "location": "a"} and data["processed"] == 3
    del data["processed"]
    cps.path("acme").write_text(json.dumps(data))
    with pytest.raises(StateError, match="--restart"):
        cps.load("acme")


def test_locations_with_passwords_are_masked_in_checkpoints(tmp_path: Path) -> None:
    cps = FileCheckpoints(tmp_path, ("pgvector", "postgresql://u:hunter2@db/x"), ("faiss", "f"))
    cps.save(Checkpoint("acme", "p1"))
    assert "hunter2" not in cps.path("acme").read_text()


def test_tenants_differing_by_case_get_distinct_files(tmp_path: Path) -> None:
    cps = FileCheckpoints(tmp_path, ("faiss", "a"), ("chroma", "b"))
    assert cps.path("Acme").name.lower() != cps.path("acme").name.lower()


def test_the_lock_names_its_holder_and_is_released(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    held = pytest.raises(StateError, match=f"pid {os.getpid()}")
    with exclusive_lock(lock, "backfill"), held, exclusive_lock(lock, "x"):
        pass
    with exclusive_lock(lock, "backfill"):
        pass

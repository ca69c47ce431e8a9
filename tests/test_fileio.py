"""The one atomic file writer (`shadowswap.fileio`): content, permissions, and nothing left
behind when a write fails."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shadowswap.fileio import atomic_write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_replaces_the_content_with_the_given_mode(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("old")
    atomic_write(path, b"new", mode=0o600)
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json"]  # no temp file left


def test_keeps_the_modes_of_the_file_it_replaces_or_of_like(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("a")
    path.chmod(0o640)
    atomic_write(path, b"b")
    assert _mode(path) == 0o640
    model = tmp_path / ".env"
    model.write_text("X=1")
    model.chmod(0o604)
    backup = tmp_path / ".env.bak"
    atomic_write(backup, b"X=1", like=model)
    assert _mode(backup) == 0o604 and backup.read_bytes() == b"X=1"
    fresh = tmp_path / "state.json"
    atomic_write(fresh, b"{}")
    assert _mode(fresh) == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output"):
        atomic_write(path, b"new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_missing_like_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "out", b"x", like=tmp_path / "gone")
    assert list(tmp_path.iterdir()) == []

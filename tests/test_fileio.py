"""The one atomic file writer (`shadowswap.fileio`): content, permissions, and nothing left
behind when a write fails."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shadowswap.fileio import (
    SymlinkRefused,
    atomic_write,
    check_writable,
    create_new,
    create_private_file,
    make_private_dirs,
    open_for_append,
)


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


# -- issue 16: never through a symlink, modes by content, write access by bits ----------------
def test_atomic_write_replaces_a_symlink_and_leaves_its_target(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.write_text("not yours")
    link = tmp_path / "state.json"
    link.symlink_to(precious)
    atomic_write(link, b"{}")
    assert not link.is_symlink() and link.read_bytes() == b"{}"
    assert precious.read_text() == "not yours" and _mode(link) == 0o644


@pytest.mark.parametrize("dangling", [False, True])
def test_create_new_never_replaces_nor_follows(tmp_path: Path, dangling: bool) -> None:
    target = tmp_path / "target"
    if not dangling:
        target.write_text("not yours")
    link = tmp_path / "backup"
    link.symlink_to(target)
    with pytest.raises(FileExistsError):
        create_new(link, b"secret", mode=0o600)
    assert target.exists() is not dangling
    if not dangling:
        assert target.read_text() == "not yours"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["backup", *(["target"] * (not dangling))]
    )
    fresh = tmp_path / "new"
    create_new(fresh, b"data", mode=0o600)
    assert fresh.read_bytes() == b"data" and _mode(fresh) == 0o600


def test_open_for_append_refuses_a_symlink(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.write_text("not yours")
    (tmp_path / "log").symlink_to(precious)
    with pytest.raises(SymlinkRefused, match="is a symbolic link"):
        open_for_append(tmp_path / "log", 0o644)
    assert precious.read_text() == "not yours"
    old = os.umask(0o022)
    try:
        os.close(open_for_append(tmp_path / "real.log", 0o640))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "real.log") == 0o640


def test_private_dirs_and_files(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        make_private_dirs(tmp_path / "a" / "b")
        create_private_file(tmp_path / "a" / "b" / "db")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a") == 0o700 and _mode(tmp_path / "a" / "b") == 0o700
    assert _mode(tmp_path / "a" / "b" / "db") == 0o600
    (tmp_path / "a" / "b" / "db").chmod(0o640)
    create_private_file(tmp_path / "a" / "b" / "db")  # there already: left alone
    assert _mode(tmp_path / "a" / "b" / "db") == 0o640
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        make_private_dirs(tmp_path / "file")


def test_write_access_is_read_from_the_bits(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1")
    assert check_writable(path) is None
    path.chmod(0o444)
    refusal = check_writable(path, ".env")
    assert refusal is not None and "(mode 0444)" in refusal
    if os.geteuid() == 0:  # os.access says yes to root; the bits say no
        assert os.access(path, os.W_OK)
        assert refusal == "it is read-only (mode 0444): chmod u+w .env to allow edits"


def test_create_new_without_hard_links_still_never_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:  # fault: a filesystem without links
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    create_new(tmp_path / "copy", b"data", mode=0o600)
    assert (tmp_path / "copy").read_bytes() == b"data" and _mode(tmp_path / "copy") == 0o600
    with pytest.raises(FileExistsError):
        create_new(tmp_path / "copy", b"other", mode=0o600)
    assert (tmp_path / "copy").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]

"""The one file-lock helper: exclusive, released on close, non-blocking says who holds it."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shadowswap import locks

HOLD_LOCKF = (
    "import fcntl, sys, time\n"
    "f = open(sys.argv[1], 'a')\n"
    "fcntl.lockf(f, fcntl.LOCK_EX)\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def test_open_lock_file_creates_directory_and_file_with_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.lock"
    fd = locks.open_lock_file(path, mode=0o600)
    os.close(fd)
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600 & ~_umask()


def test_a_held_lock_refuses_a_non_blocking_one_and_names_the_pid(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with locks.hold(locks.open_lock_file(path), blocking=False, write_pid=True):
        assert path.read_text() == str(os.getpid())
        with (
            pytest.raises(locks.LockHeld) as held,
            locks.hold(locks.open_lock_file(path), blocking=False),
        ):
            pass  # pragma: no cover
        assert held.value.holder == str(os.getpid())
        assert isinstance(held.value, BlockingIOError)
    with locks.hold(locks.open_lock_file(path), blocking=False):  # released on close
        pass


def test_hold_closes_the_descriptor_even_when_the_block_raises(tmp_path: Path) -> None:
    fd = locks.open_lock_file(tmp_path / "x.lock")
    with pytest.raises(RuntimeError), locks.hold(fd):
        raise RuntimeError("boom")
    with pytest.raises(OSError):
        os.fstat(fd)


def test_an_empty_lock_file_names_no_holder(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    other = locks.open_lock_file(path)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with (
            pytest.raises(locks.LockHeld) as held,
            locks.hold(locks.open_lock_file(path), blocking=False),
        ):
            pass  # pragma: no cover
        assert held.value.holder == "?"
    finally:
        os.close(other)


def test_a_directory_lock_is_exclusive(tmp_path: Path) -> None:
    with locks.hold_directory(tmp_path):
        fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    with pytest.raises(OSError), locks.hold_directory(tmp_path / "missing"):
        pass  # pragma: no cover


def test_probe_sees_another_process_posix_lock_and_takes_none(tmp_path: Path) -> None:
    path = tmp_path / "engine.lock"
    path.touch()
    assert locks.probe_posix_lock(path) is False
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCKF, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert locks.probe_posix_lock(path) is True
    finally:
        holder.communicate("", timeout=30)
    assert locks.probe_posix_lock(path) is False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _locked_by_someone(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_file_lock_follows_the_file_across_a_rename(tmp_path: Path) -> None:
    """A waiter that opened the old file ends up holding the new one, so two holders never
    hold two generations of a file that renames replace (an env file)."""
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    waiting, got = threading.Event(), threading.Event()

    def waiter() -> None:
        waiting.set()
        with locks.hold_file(path):
            got.set()
            assert _locked_by_someone(path)  # the file the path names now, not the old one
            release.wait(10)

    release = threading.Event()
    with locks.hold_file(path):
        thread = threading.Thread(target=waiter)
        thread.start()
        waiting.wait(10)
        time.sleep(0.2)  # let the waiter open the old file and block on it
        assert not got.is_set()
        new = tmp_path / ".env.new"
        new.write_text("A=2\n")
        new.replace(path)
    assert got.wait(10)
    release.set()
    thread.join(10)
    assert not _locked_by_someone(path)

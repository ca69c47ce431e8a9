"""Advisory file locks: the one place shadowswap takes them.

Several commands must not edit the same file at once (env-file edits, the keys file, the
rollback journal, backfill checkpoints). Each takes an exclusive ``flock`` on a file or a
directory it owns; the kernel releases it when the descriptor is closed or the holder dies,
even by SIGKILL, so a crash never leaves a stale lock. `probe_posix_lock` is the other kind:
it asks whether another process holds a POSIX (``lockf``) lock that an engine took on its
own file (Milvus Lite), without taking it.

Callers map `OSError` from opening to their own error (each says what it was locking);
`LockHeld` is raised only by a non-blocking `hold`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from shadowswap.fileio import open_nofollow


class LockHeld(BlockingIOError):
    """A non-blocking lock is held by another process; ``holder`` is what it wrote in the
    lock file (its pid), or ``?``."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(f"{path} is locked by pid {holder}")
        self.holder = holder


def open_lock_file(path: Path, mode: int = 0o644) -> int:
    """A descriptor on ``path`` (its directory and the file created when missing). A symlink
    at ``path`` is refused (`OSError`): the holder writes its pid into the file, and that
    write must not land in whatever the link points to (`shadowswap.fileio.SymlinkRefused`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return open_nofollow(path, os.O_RDWR | os.O_CREAT, mode)


@contextlib.contextmanager
def hold(fd: int, *, blocking: bool = True, write_pid: bool = False) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``fd`` while the block runs, then close ``fd`` (which
    releases it). ``fd`` is closed in every case. Non-blocking: `LockHeld` at once when
    another process holds it; ``write_pid`` replaces the file's content with this pid, so
    the next one can say who holds it.

    >>> with hold(open_lock_file(Path("/tmp/x.lock"))):  # doctest: +SKIP
    ...     edit()
    """
    try:
        if blocking:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                raise LockHeld(str(fd), holder) from None
        if write_pid:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_directory(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` itself (blocking); `OSError` when it
    cannot be opened."""
    with hold(os.open(directory, os.O_RDONLY | os.O_DIRECTORY)):
        yield


@contextlib.contextmanager
def hold_file(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file at ``path`` (blocking), for a file that is
    replaced by renames (an env file): once the lock is granted, ``path`` must still name the
    locked file, else the newer one is opened and locked instead, so two holders never
    hold two generations of the file at once. `OSError` (`FileNotFoundError`) when it
    cannot be opened."""
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            now = path.stat()
        except BaseException:
            os.close(fd)
            raise
        if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def probe_posix_lock(path: Path) -> bool:
    """Whether another process holds a POSIX (``lockf``) lock on ``path``; the lock is
    tried and released at once, never kept. Only for a file this process holds no POSIX
    lock on: those locks belong to the process, so closing the probe would drop its own."""
    with path.open("a") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(handle, fcntl.LOCK_UN)
    return False

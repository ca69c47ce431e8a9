"""How shadowswap writes files: atomically, never through a symlink, with modes chosen by
what a file holds. The one module that knows these rules.

Replacing a file (`atomic_write`): env files and their ``.bak``, state files, the API keys
file, alert rules. The new content goes to a temporary file in the same directory
(``mkstemp``: ``O_EXCL``, so never through a link), gets its permission bits, is fsynced,
renamed over the old file (atomic on POSIX: a reader sees the old file or the new one, never
half of either), and the directory is fsynced so the rename survives a power cut. A symlink at
the destination is replaced by the file, never written through. On any failure the temporary
file is removed and the old file is left as it was; the `OSError` is the caller's to turn into
its own error (it knows which setting or option named the file).

Creating a file that must never replace another (`create_new`: timestamped backups): the
same temporary file, then ``link(2)`` to the final name, which fails when anything (a file, a
symlink, even a dangling one) is already there (on a filesystem without hard links, an
``O_EXCL | O_NOFOLLOW`` creation in place: still never replacing, never following).

Appending or opening for writing (`open_for_append`: the rollback journal, observation logs,
lock files): ``O_NOFOLLOW``, so a symlink planted at the path is refused
(`SymlinkRefused`, an `OSError`) instead of letting the write land in the file it points to.

Modes, by what a file holds (files are created with these; an existing file keeps its mode,
an existing directory too: the operator may have chosen it):

* **0600 files, 0700 directories** (`PRIVATE_FILE`, `PRIVATE_DIR`, `make_private_dirs`,
  `create_private_file`): anything holding vectors, document text, metadata or keys: the
  FAISS catalog, the SQLite outbox (queued documents), the API keys file, and the data
  directories of the embedded engines (FAISS, Chroma, LanceDB, Milvus Lite, Qdrant Edge).
  Files those engines create themselves keep the engine's mode; their 0700 directory is what
  keeps them private.
* **the env file's own mode** (and owner, when allowed): its ``.bak`` and timestamped
  backups, which are copies of it, secrets included.
* **0644**: state files holding ids, counts, timestamps and fingerprints only (checkpoints,
  ``reconcile_last.json``, ``write_plan.json``), read by other commands and the service
  under other users; the rollback journal (operator handles, variable names and flag values;
  secrets masked); lock files (a pid). **0640**: observation logs (tenant ids, doc ids,
  scores), for the group that runs the gate.

Write access (`check_writable`): ``os.access`` says yes to root for any file, so a file an
operator made read-only (``chmod a-w``) would be edited anyway. For root the permission bits
decide: a file with no ``w`` bit is read-only; for anyone else the kernel's answer is kept.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SHARED_FILE = 0o644


class SymlinkRefused(OSError):
    """A symlink is where shadowswap was to write a file; nothing was written."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            errno.ELOOP,
            f"{path} is a symbolic link; shadowswap does not write through links "
            "(remove the link, or give the real path)",
        )
        self.path = path


def atomic_write(
    path: Path, data: bytes, *, mode: int | None = None, like: Path | None = None
) -> None:
    """Replace ``path`` with ``data`` (a symlink at ``path`` is replaced, not followed).

    Permissions: ``mode`` when given; else those of ``like`` (and its owner, when this process
    may set it); else those of ``path`` if it is a regular file; else 0o644.
    """
    mode, owner = _mode_and_owner(path, mode, like)
    tmp = _write_temp(path, data, mode, owner)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_new(
    path: Path, data: bytes, *, mode: int | None = None, like: Path | None = None
) -> None:
    """Create ``path`` holding ``data``, complete or not at all; `FileExistsError` when
    anything (a file, a symlink) is already at ``path``. Permissions as `atomic_write`."""
    mode, owner = _mode_and_owner(path, mode, like)
    tmp = _write_temp(path, data, mode, owner)
    try:
        os.link(tmp, path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        _create_in_place(path, data, mode, owner)  # a filesystem without hard links
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


def _create_in_place(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """`create_new` where ``link(2)`` is refused: ``O_EXCL`` still never replaces nor
    follows; a crash may leave the copy short, which the original it copies is not."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        _fill(fd, data, mode, owner)
    finally:
        os.close(fd)


def _fill(fd: int, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """Write all of ``data`` to ``fd``, give it ``mode`` (and ``owner`` when allowed), fsync."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fchmod(fd, mode)
    if owner is not None:
        with contextlib.suppress(PermissionError):
            os.fchown(fd, *owner)
    os.fsync(fd)


def open_for_append(path: Path, mode: int) -> int:
    """A write-only, append-mode descriptor on ``path``, created with ``mode`` when missing;
    `SymlinkRefused` when ``path`` is a symlink."""
    return open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)


def open_nofollow(path: Path, flags: int, mode: int) -> int:
    """``os.open`` with ``O_NOFOLLOW``: `SymlinkRefused` when ``path`` is a symlink."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and path.is_symlink():
            raise SymlinkRefused(path) from None
        raise


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents with mode 0700 (existing ones are left
    as they are)."""
    missing: list[Path] = []
    current = directory
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process
            each.mkdir(mode=PRIVATE_DIR)
    if not directory.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{directory} is not a directory")


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 when nothing is there, so that an engine which
    then opens it (SQLite) keeps that mode; anything already there is left alone."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, PRIVATE_FILE))
    except FileExistsError:
        return


def check_writable(path: Path, shown: str | None = None) -> str | None:
    """Why this process may not replace ``path`` (module doc), or None when it may; the
    answer names the file as ``shown`` (default: ``path``)."""
    info = path.stat()
    path_shown = shown or str(path)
    bits = stat.S_IMODE(info.st_mode)
    if os.geteuid() == 0:
        if not bits & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            return f"it is read-only (mode {bits:04o}): chmod u+w {path_shown} to allow edits"
        return None
    if not os.access(path, os.W_OK):
        return f"it is not writable by this user (mode {bits:04o}); fix its permissions"
    return None


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the filesystem allows a directory fsync)."""
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _mode_and_owner(
    path: Path, mode: int | None, like: Path | None
) -> tuple[int, tuple[int, int] | None]:
    if mode is not None:
        return mode, None
    if like is not None:
        info = like.stat()
        return stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return SHARED_FILE, None
    return (stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else SHARED_FILE), None


def _write_temp(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> Path:
    """A complete, fsynced temporary file next to ``path``, with ``mode`` (and ``owner``)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        _fill(fd, data, mode, owner)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp

"""Replacing a file atomically and durably: the one way shadowswap rewrites a file that others
read (env files and their ``.bak``, state files, the API keys file, alert rules).

The new content goes to a temporary file in the same directory, gets its permission bits, is
fsynced, renamed over the old file (atomic on POSIX: a reader sees the old file or the new one,
never half of either), and the directory is fsynced so the rename survives a power cut. On any
failure the temporary file is removed and the old file is left as it was; the `OSError` is the
caller's to turn into its own error (it knows which setting or option named the file).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def atomic_write(
    path: Path, data: bytes, *, mode: int | None = None, like: Path | None = None
) -> None:
    """Replace ``path`` with ``data``.

    Permissions: ``mode`` when given; else those of ``like`` (and its owner, when this process
    may set it); else those of ``path`` if it exists; else 0o644.
    """
    owner: tuple[int, int] | None = None
    if mode is None:
        model = like if like is not None else path
        try:
            info = model.stat()
        except FileNotFoundError:
            if like is not None:
                raise
            mode = 0o644
        else:
            mode = stat.S_IMODE(info.st_mode)
            owner = (info.st_uid, info.st_gid) if like is not None else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
        if owner is not None:
            with contextlib.suppress(PermissionError):
                os.fchown(fd, *owner)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        Path(tmp).replace(path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the filesystem allows a directory fsync)."""
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

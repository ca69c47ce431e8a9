"""State files under ``RETRIEVAL_STATE_DIR``: written atomically, read defensively.

Several commands leave state for others (backfill checkpoints, the last reconcile result read
by the phase command and the status endpoint). A reader must never see half a file, and a
process killed while writing must leave either the old file or the new one, never neither:
each write goes to a temporary file in the same directory, is flushed and fsynced, renamed
over the old file (atomic on POSIX), and the directory is fsynced so the rename itself
survives a power cut.

A lock file (``flock``) keeps two processes from driving the same checkpoints; the kernel
releases it when its holder dies, even by SIGKILL, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shadowswap import locks
from shadowswap.errors import StateError
from shadowswap.fileio import atomic_write


def write_json_atomic(path: Path, document: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``document`` as JSON, atomically and durably
    (`shadowswap.fileio.atomic_write`); readable by the other commands and the service."""
    text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text.encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise StateError(str(path), f"cannot write state ({exc.strerror or exc})") from exc


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file does not exist."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(str(path), f"cannot read state ({exc.strerror or exc})") from exc
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise StateError(str(path), f"not valid JSON ({exc}); move it away") from exc
    if not isinstance(document, dict):
        raise StateError(str(path), "expected a JSON object; move it away")
    return document


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) or raise `StateError` at once."""
    try:
        fd = locks.open_lock_file(path, mode=0o644)
    except OSError as exc:
        raise StateError(str(path), f"cannot create lock ({exc.strerror or exc})") from exc
    try:
        with locks.hold(fd, blocking=False, write_pid=True):  # closing releases the lock
            yield
    except locks.LockHeld as busy:  # raised only by this hold: a nested one maps its own
        raise StateError(
            str(path), f"another {what} is running (pid {busy.holder}); wait for it to finish"
        ) from None

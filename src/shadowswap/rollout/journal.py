"""The rollback journal (runbook 002, CONTRACT §3): one JSON object per line, appended.

Each rollback or phase change, dry-run or not, appends exactly one line with CONTRACT §3's
fields, in this order, then ``previous``::

    {"timestamp": "2025-10-21T14:50:00Z", "operator": "alice", "env_file": ".env.staging",
     "apply": false, "result": "success", "duration_s": 12.3,
     "changes": {"FF_RETRIEVAL_DUAL_WRITE": "OFF"}, "notes": "drill",
     "previous": {"FF_RETRIEVAL_DUAL_WRITE": "ON"}}

``timestamp`` is the start of the run, UTC, to the second, with ``Z``. ``env_file`` is the path
as the operator typed it (not made absolute: an absolute path often carries a user name).
``result`` is ``success`` or ``failure``. ``changes`` maps each variable whose value the run
changed (or, in a dry-run, would change) to its new value. ``notes`` is the operator's reason,
followed by what else happened (``; purge: ...``, ``; smoke: ...``, ``; error: ...``).
``previous`` maps the same variables to the value the env file held before the run (null:
the file did not set it), secrets masked (`previous_values`): with it, the journal alone
says what each apply replaced. It comes after the contract's fields, so a reader of those
fields (in their order) is not disturbed; it is ours, not the contract's.

No personal data: the journal holds no host name, login, IP address or environment; the
operator name is the handle the operator gives with ``--operator`` and the reason is their
text (runbook 002 shows both in the journal). `check_operator` and `check_reason` refuse an
e-mail address and control characters, and operators are told not to put personal data in a
reason (docs/rollout.md).

Appends are atomic even with several runs at once: the file is opened with ``O_APPEND``, an
exclusive ``flock`` is held, the whole line is written by one ``write`` (a loop only if the
kernel writes less), then fsync'ed. Readers never see half a line.

Reading back (`Journal.entries`) checks each line against the same fields, each of its JSON
type, with a pydantic model; a line that is not a record is an `InvalidInput` naming the
line and the field.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shadowswap import locks
from shadowswap.errors import InvalidInput, WriteError
from shadowswap.fileio import SHARED_FILE, SymlinkRefused, open_for_append
from shadowswap.settings.masking import mask_value

Result = Literal["success", "failure"]
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_OPERATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\- ]{0,63}")
MAX_REASON = 500
log = logging.getLogger("shadowswap.rollout.journal")


@dataclass(frozen=True)
class JournalEntry:
    """One journal line: the fields of CONTRACT §3, then ``previous`` (module doc)."""

    timestamp: str
    operator: str
    env_file: str
    apply: bool
    result: Result
    duration_s: float
    changes: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""
    previous: Mapping[str, str | None] = field(default_factory=dict)

    def to_json(self) -> str:
        document = asdict(self)
        document["changes"] = dict(self.changes)
        document["previous"] = dict(self.previous)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def previous_values(values: Mapping[str, str], changes: Mapping[str, str]) -> dict[str, str | None]:
    """What the env file (its ``values``) held for each variable of ``changes``, secrets
    masked as everywhere else (`shadowswap.settings.masking`); None when it did not set it."""
    out: dict[str, str | None] = {}
    for key in changes:
        value = values.get(key)
        out[key] = None if value is None else mask_value(key, value)
    return out


def utc_timestamp(epoch_s: float) -> str:
    """``2025-10-21T14:50:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


class Journal:
    """An NDJSON file to which entries are appended atomically.

    >>> Journal(Path("artifacts/rollback_drill_log.ndjson")).append(entry)  # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, entry: JournalEntry) -> None:
        """Append one line; raises `WriteError` when the journal cannot be written."""
        line = (entry.to_json() + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = open_for_append(self.path, SHARED_FILE)
        except SymlinkRefused as exc:
            raise WriteError(str(self.path), str(exc.strerror)) from exc
        except OSError as exc:
            raise WriteError(
                str(self.path), f"the journal cannot be opened ({exc.strerror})"
            ) from exc
        try:
            with locks.hold(fd):  # closing the descriptor releases the lock
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
        except OSError as exc:
            raise WriteError(
                str(self.path), f"the journal cannot be written ({exc.strerror})"
            ) from exc

    def entries(self) -> list[JournalEntry]:
        """Every entry, oldest first (for tests and audits); `InvalidInput` naming the line
        and the field when a line is not a journal record."""
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                out.append(_record(line, f"{self.path}:{number}"))
        return out


class _JournalLine(BaseModel):
    """One line as read back: the fields of CONTRACT §3 and ``previous`` (absent from lines
    written before it existed), each of its JSON type."""

    model_config = ConfigDict(strict=True, extra="forbid")

    timestamp: str
    operator: str
    env_file: str
    apply: bool
    result: Result
    duration_s: int | float
    changes: dict[str, str] = Field(default_factory=dict)
    notes: str = ""
    previous: dict[str, str | None] = Field(default_factory=dict)


def _record(line: str, where: str) -> JournalEntry:
    try:
        record = _JournalLine.model_validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "line"
        raise InvalidInput(where, f"not a journal record ({field}: {first['msg']})") from None
    return JournalEntry(**record.model_dump())


def append_after_error(journal: Journal, entry: JournalEntry) -> None:
    """Journal a failed run; if even that fails, say so in the log and keep the first error."""
    try:
        journal.append(entry)
    except WriteError as exc:
        log.error("journal not written", extra={"journal": str(journal.path), "error": str(exc)})


def append_or_explain(journal: Journal, entry: JournalEntry, changed: bool) -> None:
    """Journal a finished run; when that fails after the env file was changed, the error
    says the change *was* made, so nobody runs it again thinking nothing happened."""
    try:
        journal.append(entry)
    except WriteError as exc:
        if changed:
            raise WriteError(
                exc.path, f"{exc.detail}; the env file WAS changed ({entry.changes})"
            ) from exc
        raise


def check_operator(name: str) -> str:
    """An operator handle: 1 to 64 letters, digits, ``_ . -`` or spaces; not an e-mail."""
    text = name.strip()
    if _EMAIL.search(text):
        raise InvalidInput(
            "--operator", "looks like an e-mail address; give a handle (no personal data)"
        )
    if not _OPERATOR.fullmatch(text):
        raise InvalidInput(
            "--operator",
            f"{name!r} is not accepted; use 1 to 64 letters, digits, _ . - or spaces "
            "(a handle such as alice)",
        )
    return text


def check_reason(reason: str) -> str:
    """A reason: free text up to 500 characters, one line, without an e-mail address."""
    text = reason.strip()
    if not text:
        raise InvalidInput("--reason", "is empty; say why (for example: drill, incident-123)")
    if len(text) > MAX_REASON or any(ord(c) < 32 for c in text):
        raise InvalidInput("--reason", f"use one line of at most {MAX_REASON} characters")
    if _EMAIL.search(text):
        raise InvalidInput(
            "--reason", "contains an e-mail address; the journal must hold no personal data"
        )
    return text

"""Editing env files in place, the way an operator would by hand, but atomically.

What an edit keeps and guarantees
    * every byte outside the values that change: comments, blank lines, order, indentation,
      ``export `` prefixes, spacing around ``=``, inline comments, line endings (LF or CRLF),
      lines that do not parse, and the quoting style of each changed value (bare, ``'...'``
      or ``"..."``). A variable set on several lines is changed on each of them.
    * a variable that is missing is appended at the end, in the file's style (``export ``
      when most assignments have it, the file's line ending).
    * the result is parsed again before it is written: every changed variable must read back
      as the new value and every other variable as before, else nothing is written.
    * the new file is written atomically: a temporary file in the same directory, written,
      given the original's permission bits (and owner, when allowed), fsync'ed, renamed over
      the original, then the directory is fsync'ed. A reader sees the old file or the new
      one, never a mix; a crash leaves one of the two. A symlinked env file is edited at its
      target and the link is kept.
    * ``backup=True`` (``--apply``) first writes ``<file>.bak``, byte-identical to the
      original, the same way; an older ``.bak`` is replaced.
    * edits are serialised with an advisory lock (``flock``) on the directory, and refused
      when the file changed between reading and writing (another edit got there first).
    * a file that cannot be written (read-only file or directory, full disk) raises
      `WriteError` and is left exactly as it was.

Why not python-dotenv's ``set_key``
    We read env files with python-dotenv (``shadowswap.settings.config``) and we locate assignments
    with its parser (``dotenv.parser.parse_stream``), so the editor sees exactly the
    assignments the reader sees. But its writer, ``set_key`` (checked on python-dotenv 1.2),
    cannot meet our requirements: it rewrites the whole line, so it drops the ``export ``
    prefix (unless told to add it everywhere), the original quotes (``quote_mode`` is
    always/auto/never for the new value), an inline comment, and the blank lines *before* the
    changed assignment (they belong to the parsed binding); it opens files in text mode, so
    CRLF line endings become LF; it replaces a symlinked env file by a regular file; it writes
    one key per call (a rollback of five variables would be five renames, with readers able
    to see the states in between); and it does not fsync the file or the directory. So the
    writer is ours, the parser is theirs.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import Binding, parse_stream

from shadowswap import locks
from shadowswap.errors import ConfigError, WriteError
from shadowswap.fileio import atomic_write
from shadowswap.settings.masking import mask_line

_SAFE_BARE = re.compile(r"[A-Za-z0-9_.,:/@+%=-]*")
_PREFIX = re.compile(
    r"(?P<lead>\s*)(?P<export>export[^\S\r\n]+)?(?P<key>[^=\s]+)(?P<eq>[^\S\r\n]*=)"
)
_QUOTED = re.compile(r"""'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*\"""", re.DOTALL)
_NEWLINE = re.compile(r"\r\n|\n|\r")


@dataclass(frozen=True)
class EnvSnapshot:
    """An env file as read: the path given, its real path, its bytes and what it sets."""

    path: Path
    real: Path
    data: bytes
    mode: int
    values: Mapping[str, str]

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


def read_env(path: str | Path) -> EnvSnapshot:
    """Read an env file; a missing one is a usage error (`ConfigError`, exit 2)."""
    given = Path(path)
    real = Path(os.path.realpath(given))
    if not real.is_file():
        raise ConfigError(
            "--env-file",
            str(path),
            "the file does not exist or is not a regular file; give the path of an env file",
        )
    try:
        data = real.read_bytes()
        mode = stat.S_IMODE(real.stat().st_mode)
    except OSError as exc:
        raise WriteError(str(path), f"cannot read it ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WriteError(str(path), f"it is not UTF-8 text ({exc})") from exc
    return EnvSnapshot(given, real, data, mode, parse_values(text))


def parse_values(text: str) -> dict[str, str]:
    """What python-dotenv reads from ``text`` (the same reader as `shadowswap.settings.config`)."""
    values = dotenv_values(stream=io.StringIO(text, newline=""))
    return {k: v for k, v in values.items() if v is not None}


# -- editing text ---------------------------------------------------------------------------
def edit_text(text: str, changes: Mapping[str, str], label: str = "the env file") -> str:
    """``text`` with each variable of ``changes`` set, everything else kept (module doc).
    Raises `WriteError` (naming ``label``) when that cannot be done exactly."""
    for key, value in changes.items():
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise WriteError(label, f"the new value of {key} contains a control character")
    bindings = _bindings(text, label)
    out: list[str] = []
    seen: set[str] = set()
    for binding in bindings:
        piece = binding.original.string
        name = binding.key
        if name is not None and name in changes and not binding.error:
            piece = _replace_value(piece, changes[name], label)
            seen.add(name)
        out.append(piece)
    new = "".join(out)
    missing = [k for k in changes if k not in seen]
    if missing:
        newline = _newline_of(text)
        export = _mostly_export(bindings)
        if new and not new.endswith(("\n", "\r")):
            new += newline
        for key in missing:
            new += f"{'export ' if export else ''}{key}={_render(changes[key], None)}{newline}"
    _check_reads_back(text, new, changes, label)
    return new


def _bindings(text: str, label: str) -> list[Binding]:
    bindings = list(parse_stream(io.StringIO(text, newline="")))
    if "".join(b.original.string for b in bindings) != text:  # pragma: no cover - parser bug
        raise WriteError(label, "python-dotenv's parser did not account for every byte")
    return bindings


def _replace_value(piece: str, value: str, label: str) -> str:
    head = _PREFIX.match(piece)
    if head is None:  # pragma: no cover - dotenv gave a key, so the prefix is there
        raise WriteError(label, f"cannot locate the value in {piece.strip()!r}")
    rest = piece[head.end() :]
    spaces = len(rest) - len(rest.lstrip(" \t"))
    before, rest = piece[: head.end() + spaces], rest[spaces:]
    quoted = _QUOTED.match(rest)
    if quoted:
        old, tail = quoted.group(0), rest[quoted.end() :]
    else:
        line_end = _NEWLINE.search(rest)
        line = rest[: line_end.start()] if line_end else rest
        ending = rest[len(line) :]
        if spaces and line.startswith("#"):  # `KEY= # comment`: empty value, then a comment
            old, tail = "", " " + line + ending
        else:
            comment = re.search(r"[^\S\r\n]+#", line)
            cut = comment.start() if comment else len(line.rstrip(" \t"))
            old, tail = line[:cut], line[cut:] + ending
    return before + _render(value, old[:1] if old[:1] in ("'", '"') else None) + tail


def _render(value: str, quote: str | None) -> str:
    """``value`` in the given quoting style (None: bare when safe, else double quotes)."""
    if quote == "'":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if quote is None and _SAFE_BARE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _newline_of(text: str) -> str:
    match = _NEWLINE.search(text)
    return match.group(0) if match else "\n"


def _mostly_export(bindings: list[Binding]) -> bool:
    keyed = [b for b in bindings if b.key is not None and not b.error]
    exported = sum(1 for b in keyed if b.original.string.lstrip().startswith("export"))
    return bool(keyed) and exported * 2 > len(keyed)


def _check_reads_back(old: str, new: str, changes: Mapping[str, str], label: str) -> None:
    before, after = parse_values(old), parse_values(new)
    for key in set(before) | set(after) | set(changes):
        want = changes.get(key, before.get(key))
        if after.get(key) != want:
            raise WriteError(
                label,
                f"after the edit {key} would read as {after.get(key)!r} instead of {want!r}; "
                "nothing was written (edit this line by hand)",
            )


# -- showing a change -------------------------------------------------------------------------
def render_diff(label: str, old: str, new: str) -> str:
    """A unified diff of an edit, with secret-looking values masked."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{label} (now)",
        tofile=f"{label} (after)",
    )
    out = []
    for line in lines:
        text = line.rstrip("\r\n") + "\n"
        if line[:1] in (" ", "+", "-") and not line.startswith(("+++", "---")):
            text = line[0] + mask_line(text[1:])
        out.append(text)
    return "".join(out)


# -- writing ----------------------------------------------------------------------------------
def write_env(snapshot: EnvSnapshot, new_text: str, *, backup: bool) -> Path | None:
    """Replace the env file by ``new_text`` atomically (module doc); return the ``.bak`` path.

    Raises `WriteError` (nothing changed on disk) when the file changed since ``snapshot``
    was read, or when it cannot be written.
    """
    label = str(snapshot.path)
    backup_path = Path(f"{snapshot.path}.bak") if backup else None
    try:
        with locks.hold_directory(snapshot.real.parent):
            if snapshot.real.read_bytes() != snapshot.data:
                raise WriteError(label, "it changed since it was read (another edit?); run again")
            if not os.access(snapshot.real, os.W_OK):
                raise WriteError(
                    label, f"the file is not writable (mode {snapshot.mode:04o}); fix permissions"
                )
            if backup_path is not None:
                bak_real = Path(os.path.realpath(backup_path))
                atomic_write(bak_real, snapshot.data, like=snapshot.real)
            if new_text != snapshot.text:
                atomic_write(snapshot.real, new_text.encode("utf-8"), like=snapshot.real)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(label, f"{exc.strerror or exc}; the file was left as it was") from exc
    return backup_path

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
    * ``backup=True`` (``--apply``) first keeps the file as it was, byte-identical, with its
      mode: a timestamped copy ``<file>.bak.<UTC stamp>`` (``20260302T101500.123456Z``;
      created with ``link(2)``, so never replacing anything, ``-1``, ``-2`` appended when two
      applies share a microsecond), then ``<file>.bak``, the runbook's name, replaced by the
      same bytes. So ``.bak`` is always the newest pre-apply copy and no earlier one is ever
      lost: a second rollback, which changes nothing, used to replace ``.bak`` with the
      already rolled-back file (issue 16). An apply that changes nothing writes no copy (and
      ``.bak`` only when there is none); a ``.bak`` that no timestamped copy holds (older
      than them, or made by hand) is kept under its modification time before it is
      replaced. Old copies are never pruned: they are small, and deleting history is the
      operator's call.
    * no write goes through a symlink: ``.bak`` is replaced by a rename (a symlink there is
      replaced, its target untouched), timestamped copies fail on anything already there.
      The env file itself is the one exception, by design: a symlinked env file is edited
      at its target (above).
    * edits are serialised with an advisory lock (``flock``) on the file's real directory,
      and refused when the file changed between reading and writing (another edit got there
      first). A command that reads, plans, writes and journals also holds a lock on the env
      file itself across the whole run (`exclusive`), so concurrent applies run one after
      the other, each seeing what the previous one left.
    * a file that cannot be written (read-only file or directory, full disk) raises
      `WriteError` and is left exactly as it was. Read-only is read from the permission bits
      (`shadowswap.fileio.check_writable`): root may write anything, so asking the kernel
      (``os.access``) said yes to a file an operator had made read-only.

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

import contextlib
import difflib
import errno
import io
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv.parser import Binding, parse_stream

from shadowswap import locks
from shadowswap.errors import ConfigError, WriteError
from shadowswap.fileio import atomic_write, check_writable, create_new
from shadowswap.settings.dotenv_reader import dotenv_text_values
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
    return EnvSnapshot(given, real, data, mode, parse_values(text, str(path)))


def parse_values(text: str, source: str | None = None) -> dict[str, str]:
    """What python-dotenv reads from ``text`` (the same reader as `shadowswap.settings.config`;
    ``source``, the file it came from, for the one warning about a line it cannot parse)."""
    return dotenv_text_values(text, source)


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
_STAMPED = re.compile(r"\.\d{8}T\d{6}\.\d{6}Z(?:-\d+)?")


@dataclass(frozen=True)
class Backup:
    """Where an apply left the file as it was: ``latest`` is ``<file>.bak`` (the runbook's
    name, always the newest pre-apply copy); ``kept`` the timestamped copy that is never
    replaced (None when the apply changed nothing, so there was nothing new to keep)."""

    latest: Path
    kept: Path | None = None


@contextlib.contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """Hold the edit lock of the env file at ``path`` across a whole read-plan-write-journal
    run, so concurrent applies run one after the other and each sees the file the previous
    one left. The lock is a ``flock`` on the file itself (`shadowswap.locks.hold_file`, which
    follows it across the renames that replace it), not on its directory: `write_env` and
    the state files lock directories, which may be this one. Nothing is held when the file
    does not exist: reading it reports that."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(locks.hold_file(Path(os.path.realpath(path))))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise WriteError(str(path), f"cannot lock it ({exc.strerror or exc})") from exc
    with stack:
        yield


def write_env(
    snapshot: EnvSnapshot,
    new_text: str,
    *,
    backup: bool,
    at: float | None = None,
) -> Backup | None:
    """Replace the env file by ``new_text`` atomically (module doc); with ``backup``, first
    keep the file as it was (`Backup`; ``at``, epoch seconds, names the timestamped copy).

    Raises `WriteError` (nothing changed on disk) when the file changed since ``snapshot``
    was read, or when it cannot be written.
    """
    label = str(snapshot.path)
    changed = new_text != snapshot.text
    directory = snapshot.real.parent
    try:
        with locks.hold_directory(directory):
            if snapshot.real.read_bytes() != snapshot.data:
                raise WriteError(label, "it changed since it was read (another edit?); run again")
            refusal = check_writable(snapshot.real, label)
            if refusal is None and (refusal := check_writable(directory)) is not None:
                refusal = refusal.replace("it is", "its directory is", 1)
            if refusal is not None:
                raise WriteError(label, refusal)
            kept = None
            if backup:
                kept = _back_up(snapshot, at if at is not None else time.time(), changed)
            if changed:
                atomic_write(snapshot.real, new_text.encode("utf-8"), like=snapshot.real)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(label, f"{exc.strerror or exc}; the file was left as it was") from exc
    return Backup(_bak_path(snapshot), kept) if backup else None


def _bak_path(snapshot: EnvSnapshot) -> Path:
    return Path(f"{snapshot.path}.bak")


def _back_up(snapshot: EnvSnapshot, at: float, changed: bool) -> Path | None:
    """Keep the file as it was before this apply (module doc): a timestamped copy, never
    replaced, then ``<file>.bak`` replaced by the same bytes (a symlink there is replaced,
    never written through). A ``.bak`` that no timestamped copy holds yet (one written before
    timestamped copies existed, or by hand) is kept under its own time first. An apply that
    changes nothing writes ``.bak`` only when there is none."""
    bak = _bak_path(snapshot)
    if not changed:
        if not os.path.lexists(bak):
            atomic_write(bak, snapshot.data, like=snapshot.real)
        return None
    _keep_unsaved_bak(bak)
    kept = _create_stamped(bak, snapshot.data, at, snapshot.real)
    atomic_write(bak, snapshot.data, like=snapshot.real)
    return kept


def stamped_backups(bak: Path) -> list[Path]:
    """The timestamped copies of ``bak`` (``<file>.bak.<UTC stamp>``), oldest first."""
    if not bak.parent.is_dir():
        return []
    prefix = bak.name
    return sorted(
        p
        for p in bak.parent.iterdir()
        if p.name.startswith(prefix) and _STAMPED.fullmatch(p.name[len(prefix) :])
    )


def _keep_unsaved_bak(bak: Path) -> None:
    try:
        info = bak.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        return  # a symlink (or stranger) is replaced, never read through
    old = bak.read_bytes()
    copies = stamped_backups(bak)
    if copies and copies[-1].read_bytes() == old:
        return
    _create_stamped(bak, old, info.st_mtime, bak)


def _create_stamped(bak: Path, data: bytes, at: float, like: Path) -> Path:
    seconds, micro = divmod(int(at * 1_000_000), 1_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f".{micro:06d}Z"
    for n in range(1000):
        path = Path(f"{bak}.{stamp}{f'-{n}' if n else ''}")
        try:
            create_new(path, data, like=like)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, f"too many backups named {bak}.{stamp}-N")

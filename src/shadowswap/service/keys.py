"""The API keys file (``RETRIEVAL_API_KEYS_FILE``): which key may use which tenants.

Only the SHA-256 of each key is stored, so the file is not a secret store: a copy of it lets
nobody call the service. A key is shown once, when ``shadowswap keys add`` makes it. Format
(JSON, written by the commands, editable by hand)::

    {
      "format": 1,
      "keys": [
        {"id": "3f9a0c1e", "sha256": "<64 hex digits>", "tenants": ["acme"],
         "status": false, "created": "2025-10-21T14:50:00Z", "note": "billing service"}
      ]
    }

``tenants`` lists the tenants the key may read, write and delete for; ``"*"`` means every
tenant (a gateway in front of all tenants, the rollback smoke test). ``status`` lets the key
read ``GET /internal/retrieval/status`` (flags, tenant lists, last reconcile: operators only).
``id`` names the key in listings and in the access log; it is not secret. ``note`` is free
text. A key made elsewhere can be added by hand with ``printf %s "$KEY" | sha256sum``.

Generated keys look like ``ssk_<id>_<43 url-safe characters>`` (256 random bits).

Writes take an exclusive lock on ``<file>.lock``, write a temporary file with mode 0600,
fsync it and rename it over the old one, so a reader (the service reloads the file when it
changes) never sees half a file.

Permissions: anyone who can write the file can give themselves a key for every tenant, so a
keys file that its group or others may write is refused (`mode_problem`): at start ``serve``
exits 2 naming the file and ``chmod 600``; while serving, `shadowswap.service.auth.KeyRing`
refuses every key until the mode is fixed (docs/service.md, "The keys file while serving").
A file others may only read is accepted with a warning: it holds hashes of 256-bit keys.

The file is read through pydantic models (`_KeysFile`, `_KeyRecord`); the first mistake is
reported as one line naming the entry and the field (``keys[0].tenants: ...``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from shadowswap import locks
from shadowswap.errors import ConfigError, InvalidInput, WriteError
from shadowswap.fileio import atomic_write
from shadowswap.settings import names
from shadowswap.values import TENANT_RE

FORMAT = 1
ALL_TENANTS = "*"
VARIABLE = names.RETRIEVAL_API_KEYS_FILE
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_NOTE = 200
_TENANT_RULE = "1 to 64 of A-Z a-z 0-9 _ -"


@dataclass(frozen=True)
class KeyEntry:
    """One stored key: its hash and what it may do."""

    id: str
    sha256: str
    tenants: frozenset[str]
    status: bool = False
    created: str = ""
    note: str = ""

    @property
    def all_tenants(self) -> bool:
        return ALL_TENANTS in self.tenants

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "tenants": sorted(self.tenants),
            "status": self.status,
            "created": self.created,
            "note": self.note,
        }

    def public(self) -> dict[str, Any]:
        """What ``keys list`` shows: everything but the hash."""
        out = self.as_dict()
        del out["sha256"]
        return out


def hash_key(key: str) -> str:
    """The SHA-256 (hex) stored for ``key``."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new ``(id, key)``."""
    key_id = secrets.token_hex(4)
    return key_id, f"ssk_{key_id}_{secrets.token_urlsafe(32)}"


def _matching(pattern: re.Pattern[str], value: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError("no match")
    return value


def _tenant(value: str) -> str:
    if value != ALL_TENANTS and not TENANT_RE.fullmatch(value):
        raise ValueError("not a tenant id")
    return value


class _KeysFile(BaseModel):
    """The document's outer shape; each entry is read by `_KeyRecord`."""

    model_config = ConfigDict(strict=True, extra="ignore")

    format: Any = FORMAT
    keys: list[Any]


class _KeyRecord(BaseModel):
    """One entry as written in the file (unknown fields are ignored, as they always were).
    Field order is the order mistakes are reported in: the first one wins."""

    model_config = ConfigDict(strict=True, extra="ignore")

    sha256: Annotated[str, AfterValidator(lambda v: _matching(_SHA256, v))]
    id: Annotated[str, AfterValidator(lambda v: _matching(_KEY_ID, v))] = ""  # "": from sha256
    tenants: Annotated[list[Annotated[str, AfterValidator(_tenant)]], Field(min_length=1)]
    status: bool = False
    created: str = ""
    note: str = ""


_FIELD_MISTAKES = {
    "sha256": ".sha256: expected 64 lowercase hex digits (the key's SHA-256)",
    "id": ".id: expected 1 to 64 characters from A-Z a-z 0-9 _ . -",
    "tenants": '.tenants: expected a non-empty list of tenant ids, or ["*"]',
    "status": ".status: expected true or false",
    "created": ": created and note must be strings",
    "note": ": created and note must be strings",
}


def parse_document(document: object, path: str) -> tuple[KeyEntry, ...]:
    """The entries of a keys file's JSON; `ConfigError` naming the entry when one is wrong."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(VARIABLE, path, reason)

    try:
        outer = _KeysFile.model_validate(document)
    except ValidationError:
        raise bad(
            'expected a JSON object {"format": 1, "keys": [...]}; see docs/service.md'
        ) from None
    if outer.format != FORMAT:
        raise bad(f"format {outer.format!r} is not supported; this release reads 1")
    entries: list[KeyEntry] = []
    seen_ids: set[str] = set()
    seen_hashes: set[str] = set()
    for i, raw in enumerate(outer.keys):
        entry = _entry(raw, f"keys[{i}]", bad)
        if entry.id in seen_ids:
            raise bad(f"keys[{i}]: id {entry.id!r} is used twice")
        if entry.sha256 in seen_hashes:
            raise bad(f"keys[{i}]: the same key hash appears twice")
        seen_ids.add(entry.id)
        seen_hashes.add(entry.sha256)
        entries.append(entry)
    return tuple(entries)


def _entry(raw: object, where: str, bad: Callable[[str], ConfigError]) -> KeyEntry:
    if not isinstance(raw, dict):
        raise bad(f"{where}: expected an object with sha256 and tenants")
    try:
        record = _KeyRecord.model_validate(raw)
    except ValidationError as exc:
        raise bad(_first_mistake(exc, raw, where)) from None
    key_id = record.id or record.sha256[:8]
    return KeyEntry(
        key_id, record.sha256, frozenset(record.tenants), record.status, record.created,
        record.note,
    )  # fmt: skip


def _first_mistake(exc: ValidationError, raw: dict[str, Any], where: str) -> str:
    """The one-line message for the first wrong field, in `_KeyRecord`'s field order."""
    by_field = {str(e["loc"][0]): e for e in reversed(exc.errors()) if e["loc"]}
    field = next(f for f in _KeyRecord.model_fields if f in by_field)
    loc = by_field[field]["loc"]
    if field == "tenants" and len(loc) == 2:  # one tenant is wrong
        tenant = raw["tenants"][int(loc[1])]
        return f"{where}.tenants: {tenant!r} is not a tenant id ({_TENANT_RULE})"
    return where + _FIELD_MISTAKES[field]


def read_entries(path: str | Path) -> tuple[KeyEntry, ...]:
    """Load a keys file; `ConfigError` (exit 2) when it is missing, unreadable or invalid."""
    file = Path(path)
    try:
        raw = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            VARIABLE,
            str(path),
            "the file does not exist; create it with `shadowswap keys add --tenant T --file "
            f"{path}` (or set RETRIEVAL_AUTH=OFF for local development only)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(VARIABLE, str(path), f"the file cannot be read ({exc})") from exc
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(VARIABLE, str(path), f"not valid JSON ({exc})") from exc
    return parse_document(document, str(path))


def mode_problem(path: str | Path, st_mode: int) -> str | None:
    """Why a keys file with permission bits ``st_mode`` must not be trusted (None: it may)."""
    writers = [who for who, bit in (("its group", 0o020), ("every user", 0o002)) if st_mode & bit]
    if not writers:
        return None
    return (
        f"the file's mode {st_mode & 0o777:04o} lets {' and '.join(writers)} write it, and "
        f"whoever writes it can add a key for any tenant; run `chmod 600 {path}`"
    )


def add_key(
    path: str | Path,
    tenants: Sequence[str],
    *,
    status: bool = False,
    note: str = "",
    now: float | None = None,
) -> tuple[str, KeyEntry]:
    """Generate a key allowed ``tenants``, store its hash in ``path`` (created when missing);
    return ``(key, entry)``. The key itself is not stored anywhere."""
    chosen = _check_tenants(tenants)
    if len(note) > _MAX_NOTE or any(ord(c) < 32 for c in note):
        raise InvalidInput("--note", f"at most {_MAX_NOTE} printable characters")
    with _locked(Path(path)):
        entries = list(read_entries(path)) if Path(path).exists() else []
        key_id, key = generate_key()
        while any(e.id == key_id for e in entries):
            key_id, key = generate_key()
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        entry = KeyEntry(key_id, hash_key(key), chosen, status, created, note)
        _write(Path(path), [*entries, entry])
    return key, entry


def revoke_key(path: str | Path, key_id: str) -> KeyEntry:
    """Remove the key ``key_id`` from ``path``; `InvalidInput` when there is none."""
    with _locked(Path(path)):
        entries = list(read_entries(path))
        kept = [e for e in entries if e.id != key_id]
        if len(kept) == len(entries):
            raise InvalidInput("KEY_ID", f"no key {key_id!r} in {path}")
        _write(Path(path), kept)
    return next(e for e in entries if e.id == key_id)


def _check_tenants(tenants: Sequence[str]) -> frozenset[str]:
    if not tenants:
        raise InvalidInput("--tenant", "give at least one tenant (or --all-tenants)")
    for tenant in tenants:
        if tenant != ALL_TENANTS and not TENANT_RE.fullmatch(tenant):
            raise InvalidInput("--tenant", f"{tenant!r} is not a tenant id ({_TENANT_RULE})")
    return frozenset(tenants)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    try:
        fd = locks.open_lock_file(lock, mode=0o600)
    except OSError as exc:
        raise WriteError(str(lock), exc.strerror or str(exc)) from exc
    with locks.hold(fd):
        yield


def _write(path: Path, entries: Sequence[KeyEntry]) -> None:
    text = json.dumps({"format": FORMAT, "keys": [e.as_dict() for e in entries]}, indent=2)
    try:
        atomic_write(path, (text + "\n").encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise WriteError(str(path), exc.strerror or str(exc)) from exc

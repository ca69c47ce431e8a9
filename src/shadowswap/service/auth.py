"""Who is calling, and which tenants they may use.

A caller sends ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The key's SHA-256 is
compared with every stored hash by `hmac.compare_digest` (no early exit on the first
differing byte, no dictionary lookup keyed by secret material), so the time taken says
nothing about how close a guess was. Then:

* no key, an unknown key, a malformed header: **401** (``WWW-Authenticate: Bearer``);
* a known key used for a tenant it does not hold: **403**, with the same message whether the
  tenant exists or not, so a key cannot probe for other tenants;
* ``/internal/retrieval/status`` needs a key with ``"status": true`` (403 otherwise).

`KeyRing` re-reads the keys file when it changes (checked at most once a second on the
injected clock), so ``shadowswap keys add`` and ``keys revoke`` apply without a restart; a
broken edit keeps the last good keys and is logged once. ``RETRIEVAL_AUTH=OFF`` replaces the
ring by `OPEN`, which lets every caller use every tenant (local development only; ``serve``
warns at start).
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shadowswap.clock import Clock, SystemClock
from shadowswap.errors import ConfigError
from shadowswap.service.keys import KeyEntry, hash_key, read_entries

log = logging.getLogger("shadowswap.service.auth")

_MAX_KEY_CHARS = 512
_NO_MATCH = "0" * 64


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``tenants`` None means every tenant."""

    key_id: str
    tenants: frozenset[str] | None
    status: bool

    def allows(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


class AuthError(Exception):
    """A request that may not proceed: ``status`` is 401 or 403, ``detail`` the message."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(detail)


class Authenticator(Protocol):
    """Turns request headers into a `Principal` or raises `AuthError` (401)."""

    @property
    def enabled(self) -> bool: ...

    def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


class OpenAccess:
    """``RETRIEVAL_AUTH=OFF``: every caller may use every tenant and read the status."""

    enabled = False
    principal = Principal("auth-off", None, True)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return self.principal


OPEN = OpenAccess()


def presented_key(headers: Mapping[str, str]) -> str:
    """The key a request carries, or `AuthError` (401) saying what is wrong."""
    bearer = headers.get("authorization")
    header_key = headers.get("x-api-key")
    key: str | None = None
    if bearer is not None:
        scheme, _, value = bearer.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError(
                401, "unauthorized", "the Authorization header must be `Bearer <API key>`"
            )
        key = value.strip()
    if header_key is not None:
        if key is not None and not hmac.compare_digest(key.encode(), header_key.strip().encode()):
            raise AuthError(
                401, "unauthorized", "Authorization and X-API-Key carry different keys; send one"
            )
        key = header_key.strip()
    if not key:
        raise AuthError(
            401,
            "unauthorized",
            "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        )
    return key


class KeyRing:
    """The keys of ``RETRIEVAL_API_KEYS_FILE``, re-read when the file changes.

    >>> ring = KeyRing("keys.json")  # doctest: +SKIP
    >>> ring.authenticate({"authorization": "Bearer ssk_..."}).allows("acme")  # doctest: +SKIP
    """

    enabled = True

    def __init__(
        self, path: str | Path, *, clock: Clock | None = None, poll_interval_s: float = 1.0
    ) -> None:
        self._path = Path(path)
        self._clock = clock or SystemClock()
        self._interval = poll_interval_s
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._entries: tuple[KeyEntry, ...] = read_entries(self._path)  # must load at start
        self._last_look = self._clock.monotonic()
        self._reported: object = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def entries(self) -> tuple[KeyEntry, ...]:
        return self._entries

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        self._maybe_reload()
        key = presented_key(headers)
        digest = hash_key(key) if len(key) <= _MAX_KEY_CHARS else _NO_MATCH
        found: KeyEntry | None = None
        for entry in self._entries:  # compare with every entry: no early exit
            if hmac.compare_digest(digest, entry.sha256):
                found = entry
        if found is None:
            raise AuthError(401, "unauthorized", "the API key is not recognised")
        tenants = None if found.all_tenants else found.tenants
        return Principal(found.id, tenants, found.status)

    # -- reloading ----------------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _maybe_reload(self) -> None:
        if self._clock.monotonic() - self._last_look < self._interval:
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._last_look = self._clock.monotonic()
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            try:
                entries = read_entries(self._path)
            except ConfigError as exc:
                if self._reported != stamp:
                    self._reported = stamp
                    log.error(
                        "API keys file invalid, keeping the last good keys",
                        extra={"keys_file": str(self._path), "error": str(exc)},
                    )
                return
            self._stamp, self._entries, self._reported = stamp, entries, None
            log.info(
                "API keys reloaded", extra={"keys_file": str(self._path), "keys": len(entries)}
            )
        finally:
            self._lock.release()


def require_tenant(principal: Principal, tenant: str) -> None:
    """403 unless ``principal`` may use ``tenant`` (same answer whether it exists or not)."""
    if not principal.allows(tenant):
        raise AuthError(403, "forbidden", f"this API key may not use tenant {tenant!r}")


def require_status(principal: Principal) -> None:
    """403 unless ``principal`` may read the status page."""
    if not principal.status:
        raise AuthError(
            403,
            "forbidden",
            'this API key may not read the status; it needs "status": true in the keys file '
            "(`shadowswap keys add --status`)",
        )

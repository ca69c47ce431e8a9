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
broken edit keeps the last good keys and is logged once.

A keys file that is deleted while serving, or whose mode comes to let its group or others
write it, is no longer trusted: every key is refused with 503 (``auth_unavailable``, with
``Retry-After``), logged at error once, until the file is back (restored, or ``chmod 600``),
which the next look finds. Why fail closed, while a broken edit keeps the last good keys: a
half-written file is the normal state of an edit in progress, but a deleted file is either a
mistake that would stop the next start anyway (better found now, loudly, than at a restart
during an incident) or an operator revoking every key at once, which must take effect; and a
file others may write may already hold their keys. Why 503 and not 401: the caller's key may
be fine, the gateway is what is misconfigured (docs/service.md).

``RETRIEVAL_AUTH=OFF`` replaces the ring by `OPEN`, which lets every caller use every tenant
(local development only; ``serve`` warns at start).
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
from shadowswap.service.keys import KeyEntry, hash_key, mode_problem, read_entries
from shadowswap.settings import names

log = logging.getLogger("shadowswap.service.auth")
VARIABLE = names.RETRIEVAL_API_KEYS_FILE

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
        if self._stamp is not None:
            problem = mode_problem(self._path, self._stamp[3])
            if problem is not None:
                raise ConfigError(VARIABLE, str(self._path), problem)
            if self._stamp[3] & 0o044:
                log.warning(
                    "API keys file is readable by other users (it holds only key hashes); "
                    "`chmod 600` it",
                    extra={"keys_file": str(self._path), "mode": f"{self._stamp[3] & 0o777:04o}"},
                )
        self._last_look = self._clock.monotonic()
        self._reported: object = None
        self._refusal: str | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def entries(self) -> tuple[KeyEntry, ...]:
        return self._entries

    @property
    def refusal(self) -> str | None:
        """Why every key is refused right now (None: the keys file is trusted)."""
        return self._refusal

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        self._maybe_reload()
        key = presented_key(headers)
        refusal = self._refusal
        if refusal is not None:
            raise AuthError(503, "auth_unavailable", refusal)
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
    def _file_stamp(self) -> tuple[int, int, int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode)  # a chmod changes the mode

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
            self._stamp = stamp
            if stamp is None:
                self._refuse(
                    "the API keys file was deleted while serving: every key is refused until "
                    f"it is restored at {self._path} (RETRIEVAL_API_KEYS_FILE)",
                    "deleted",
                )
                return
            problem = mode_problem(self._path, stamp[3])
            if problem is not None:
                self._refuse(f"the API keys file is not trusted: {problem}", "loose_mode")
                return
            self._load(stamp)
        finally:
            self._lock.release()

    def _load(self, stamp: tuple[int, int, int, int]) -> None:
        try:
            entries = read_entries(self._path)
        except ConfigError as exc:
            if self._reported != stamp:
                self._reported = stamp
                log.error(
                    "API keys file invalid, keeping the last good keys"
                    if self._refusal is None
                    else "API keys file invalid, every key still refused",
                    extra={"keys_file": str(self._path), "error": str(exc)},
                )
            return
        was_refused = self._refusal is not None
        self._entries, self._reported, self._refusal = entries, None, None
        log.info(
            "API keys file trusted again, keys reloaded" if was_refused else "API keys reloaded",
            extra={"keys_file": str(self._path), "keys": len(entries)},
        )

    def _refuse(self, reason: str, why: str) -> None:
        self._refusal = reason
        log.error(
            "API keys file "
            + ("deleted" if why == "deleted" else "writable by others")
            + ": every key is refused until it is fixed",
            extra={"keys_file": str(self._path), "event": f"keys_file_{why}", "error": reason},
        )


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

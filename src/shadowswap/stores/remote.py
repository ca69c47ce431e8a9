"""What the adapters of hosted stores share: where the server is and how to log in, how a
`Document` becomes a record that keeps its exact content, how engines' scores turn back into
ours, and how HTTP failures become shadowswap errors.

Used by the Elasticsearch, OpenSearch, Weaviate and Pinecone adapters, which cannot be run on
this machine: keeping these rules in one module means they are tested once, with properties,
independently of any vendor client.

Locations and credentials
    ``RETRIEVAL_<KIND>_URL`` is ``http(s)://[user:password@]host[:port][/path][?option=...]``.
    Credentials travel in the URL: userinfo for HTTP basic auth, the ``api_key`` query parameter
    for API keys. ``shadowswap config`` masks both (`shadowswap.settings.masking.mask_secrets`); the
    `Endpoint` keeps them out of its ``repr`` and out of ``shown``, which is what errors, logs
    and health reports print. Unknown query parameters are refused (a typo must not be
    ignored silently).

Records
    The exact metadata travels as canonical JSON in one opaque field (engines that parse JSON
    would turn ``7`` into ``7.0`` or round integers beyond 2**53); the vector, where an engine
    may not give back the very float32 bytes it was sent, travels as base64 of its float32
    little-endian bytes. The content hash is stored too, so an idempotent upsert reads back
    hashes only.

Filter tokens
    Every metadata pair is also written as one token string and a filter becomes "the record
    holds all these tokens" (keyword or text-array equality): `shadowswap.stores.tokens`,
    shared with the embedded engines' adapters. As a belt-and-braces check, adapters re-check
    every hit against the exact metadata with `shadowswap.stores.base.matches`.

Scores (the engine's ``_score``/``score``/``distance`` -> our similarity, `shadowswap.similarity`)
    ``(1 + x) / 2``           ES cosine/dot_product, OpenSearch cosinesimil  -> ``2s - 1``
    ``1 / (1 + d²)``          ES l2_norm, OpenSearch l2                       -> ``1 - 1/s``
    max-inner-product shift   ES max_inner_product, OpenSearch innerproduct  -> ``s - 1`` when
                              (``x + 1`` if ``x >= 0`` else ``1/(1 - x)``)      ``s >= 1``, else
                                                                                ``1 - 1/s``
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np

from shadowswap.errors import (
    ConfigError,
    CorruptStore,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.settings.masking import mask_secrets
from shadowswap.values import (
    MetaValue,
    Vector,
    canonical_json,
    check_metadata,
)

T = TypeVar("T")

FORMAT = "1"
_OS_ERROR = re.compile(r"\[Errno -?\d+\][^'\")\]]*")


# -- locations -------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """A server location parsed from ``RETRIEVAL_<KIND>_URL``, with its secrets split out."""

    variable: str
    scheme: str
    host: str
    port: int | None
    path: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}"

    @property
    def base_url(self) -> str:
        """The URL without credentials or options."""
        return self.origin + self.path.rstrip("/")

    @property
    def shown(self) -> str:
        """What messages print: the URL without any secret."""
        return self.base_url

    def option(self, name: str, default: str) -> str:
        return self.options.get(name, default)


def parse_endpoint(kind: str, raw: str, options: Mapping[str, str]) -> Endpoint:
    """Parse ``raw`` (the value of ``RETRIEVAL_<KIND>_URL``); ``options`` maps each accepted
    query parameter (besides ``api_key``) to a short description used in the refusal."""
    variable = f"RETRIEVAL_{kind.upper()}_URL"
    shown = mask_secrets(raw)
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            variable,
            shown,
            f"expected the server's URL, such as https://host:port (backend {kind!r} has no "
            "embedded mode)",
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(variable, shown, "the port is not a number from 1 to 65535") from None
    accepted = {"api_key": "API key", **options}
    values: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in accepted:
            listed = ", ".join(f"{k} ({v})" for k, v in accepted.items())
            raise ConfigError(variable, shown, f"unknown parameter {key!r}; accepted: {listed}")
        values[key] = value
    api_key = values.pop("api_key", None) or None
    return Endpoint(
        variable=variable,
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        path=parts.path,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        api_key=api_key,
        options=values,
    )


# -- records ---------------------------------------------------------------------------
def vector_to_b64(vector: Vector) -> str:
    """The float32 little-endian bytes of ``vector``, base64: an exact copy."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def vector_from_b64(text: str) -> Vector:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if not raw or len(raw) % 4:
        raise ValueError("vector bytes are not a whole number of float32 values")
    arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    arr.flags.writeable = False
    return arr


def vector_to_floats(vector: Vector) -> list[float]:
    """JSON numbers that parse back to the very same float32 values."""
    floats: list[float] = np.asarray(vector, dtype=np.float32).astype(np.float64).tolist()
    return floats


def metadata_to_json(metadata: Mapping[str, MetaValue]) -> str:
    return canonical_json(metadata)


def metadata_from_json(text: str) -> dict[str, MetaValue]:
    """Parse metadata written by `metadata_to_json`; anything else is a corrupt record."""
    value = json.loads(text)
    return dict(check_metadata(value, "stored metadata"))


# -- scores ----------------------------------------------------------------------------
def similarity_from_half_shift(score: float) -> float:
    """``(1 + x) / 2`` -> ``x`` (ES cosine and dot_product, OpenSearch cosinesimil)."""
    return 2.0 * score - 1.0


def similarity_from_inverse_square(score: float) -> float:
    """``1 / (1 + d²)`` -> ``-d²`` (ES l2_norm, OpenSearch l2)."""
    if score <= 0.0:
        return -math.inf
    return 1.0 - 1.0 / score


def similarity_from_mip(score: float) -> float:
    """ES max_inner_product and OpenSearch innerproduct: ``x + 1`` for ``x >= 0``, else
    ``1 / (1 - x)``; both are 1 at ``x = 0``, so ``score >= 1`` tells the branch."""
    if score >= 1.0:
        return score - 1.0
    if score <= 0.0:
        return -math.inf
    return 1.0 - 1.0 / score


# -- errors ----------------------------------------------------------------------------
def error_for_status(
    kind: str, op: str, tenant: str | None, *, status: int, reason: str, endpoint: Endpoint
) -> StoreError:
    """The shadowswap error for an HTTP error status from ``endpoint``."""
    where = endpoint.shown
    reason = reason.strip() or "no details"
    if status in (401, 403):
        what = "refused the credentials" if status == 401 else "denied this operation"
        return StoreUnavailable(
            kind,
            op,
            f"{where} {what} (HTTP {status}: {reason}); check the credentials in "
            f"{endpoint.variable}",
            tenant,
        )
    if status == 429:
        return StoreUnavailable(
            kind, op, f"{where} is rate limiting (HTTP 429: {reason}); retry later", tenant
        )
    if status in (408, 504):
        return StoreTimeout(kind, op, f"{where} timed out (HTTP {status}: {reason})", tenant)
    if status >= 500:
        return StoreUnavailable(
            kind, op, f"{where} failed (HTTP {status}: {reason}); retry later", tenant
        )
    return StoreError(kind, op, f"{where} refused the request (HTTP {status}: {reason})", tenant)


def short(exc: BaseException, limit: int = 200) -> str:
    """A one-line, bounded description of a vendor exception for our messages: the OS error
    when there is one (clients nest it in several layers of wrappers), else the message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    os_error = _OS_ERROR.search(text)
    if os_error:
        return os_error.group(0).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def corrupt(kind: str, op: str, where: str, detail: str) -> CorruptStore:
    return CorruptStore(kind, op, where, f"{detail}; was it written by shadowswap?")


# -- batches ---------------------------------------------------------------------------
def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def json_size(value: Any) -> int:
    """Bytes ``value`` takes as compact JSON (what a request body will carry)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def sized_chunks(
    items: Sequence[T], sizes: Sequence[int], max_items: int, max_bytes: int
) -> Iterator[Sequence[T]]:
    """Consecutive runs of ``items`` with at most ``max_items`` items and ``max_bytes`` bytes
    (an item larger than ``max_bytes`` travels alone; the caller refuses those first)."""
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_items or total + size > max_bytes):
            yield items[start:i]
            start, total = i, 0
        total += size
    if start < len(items):
        yield items[start:]

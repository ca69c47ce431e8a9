"""Values that cross every boundary: documents, queries, hits, search results, and their rules.

Identifiers
    tenant id   1 to 64 characters from ``A-Z a-z 0-9 _ -``. The same id is used as (part of)
                a collection, table, namespace or file name in every store, so it is kept to
                characters that every engine accepts unescaped.
    doc id      any Unicode text of 1 to 512 bytes in UTF-8, without control characters
                (category Cc) or lone surrogates. Ids are compared exactly: no case folding, no
                Unicode normalisation, so ``"é"`` (one code point) and ``"é"`` (two) differ.
Metadata
    A flat mapping of at most 64 keys. Keys: 1 to 64 characters from ``A-Z a-z 0-9 _``,
    starting with a letter (keys starting with ``_`` are reserved for shadowswap's own fields).
    Values: str (at most 8,192 characters), bool, int (signed 64-bit) or finite float. No
    nesting, no null: leave a key out instead. These are the values every supported engine
    stores and filters on without loss. Floats are normalised as vectors are, where a document
    (or filter) is made, so every store holds the same value and the same content hash:
    ``-0.0`` becomes ``0.0``, and a float that Chroma or Qdrant would read back a few units in
    the last place off becomes the nearest float they keep exactly (`shadowswap.floats`, which
    says why this is normalised rather than refused). Everything else is kept exactly as
    given, because every store keeps it (``tests/sync/test_reconcile_property.py`` sends
    random values through every store): integral floats stay floats (``1.0`` is not ``1``;
    filters still match them numerically), strings keep their Unicode form (no
    normalisation: ``"é"`` in one or two code points are different values, as in doc ids),
    NUL and other control characters, empty strings, the largest and smallest floats.
    Refused with `InvalidInput`: null, lists and objects, non-finite floats, integers outside
    64 bits, lone surrogates; key order never matters (the hash sorts keys).
Queries
    A search is a tenant id, a query vector, ``k`` (an integer from 1 to 1,000) and an
    optional equality filter with the rules of metadata. `Query` checks them once, where a
    search enters shadowswap (the router's `search`, the HTTP service); the layers below it
    trust a `Query` and check only what they alone know (a store: its dimension and metric).
Text
    Optional; at most 1,000,000 characters of any Unicode but lone surrogates (NUL included:
    pgvector keeps text as bytes). ``None`` (no text) and ``""`` are different documents.
Vectors
    1 to 16,000 finite numbers (pgvector's limit, the smallest of the engines), held as
    read-only float32 arrays. Under the cosine metric the stores keep unit vectors
    (see `shadowswap.similarity.canonical_vector`).

Content hash (version 1)
    ``sha256`` over, in order:
      1. the bytes ``b"shadowswap/content/v1\\0"``;
      2. the dimension as an unsigned 64-bit little-endian integer, then each component as a
         float32 little-endian (``-0.0`` written as ``0.0``);
      3. the metadata as canonical JSON (keys sorted, separators ``,`` and ``:``, non-ASCII
         kept, UTF-8), preceded by its byte length (u64 LE);
      4. ``b"\\0"`` when there is no text, else ``b"\\1"``, the text's UTF-8 byte length (u64 LE)
         and the bytes.
    Written as 64 lowercase hex digits. It covers content only: the tenant and doc id are the
    other two parts of the idempotency key ``(tenant, doc_id, content_hash)``. Nothing in it
    depends on the platform, the process or the Python version (float32 bytes and JSON with
    Python's shortest round-trip float repr are both fixed).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from shadowswap.errors import InvalidInput
from shadowswap.floats import stable_float

MetaValue: TypeAlias = str | bool | int | float
Metadata: TypeAlias = Mapping[str, MetaValue]
Filter: TypeAlias = Mapping[str, MetaValue]
Vector: TypeAlias = npt.NDArray[np.float32]
VectorLike: TypeAlias = Vector | Iterable[float]

TENANT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
META_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_DOC_ID_BYTES = 512
MAX_META_KEYS = 64
MAX_META_STR = 8192
MAX_DIMENSION = 16_000
MAX_K = 1000
MAX_TEXT_CHARS = 1_000_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
HASH_MAGIC = b"shadowswap/content/v1\0"

_EMPTY_META: Mapping[str, MetaValue] = MappingProxyType({})


def check_tenant(tenant: object, field_name: str = "tenant") -> str:
    """Return ``tenant`` if it is a valid tenant id, else raise `InvalidInput`."""
    if not isinstance(tenant, str) or not TENANT_RE.fullmatch(tenant):
        raise InvalidInput(
            field_name,
            f"{_show(tenant)} is not a valid tenant id; use 1 to 64 characters from "
            "A-Z a-z 0-9 _ -",
        )
    return tenant


def check_doc_id(doc_id: object, field_name: str = "doc_id") -> str:
    """Return ``doc_id`` if it is a valid document id, else raise `InvalidInput`."""
    if not isinstance(doc_id, str) or not doc_id:
        raise InvalidInput(field_name, "a document id must be a non-empty string")
    try:
        size = len(doc_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(field_name, "document id contains a lone surrogate") from None
    if size > MAX_DOC_ID_BYTES:
        raise InvalidInput(
            field_name, f"document id is {size} bytes in UTF-8; at most {MAX_DOC_ID_BYTES}"
        )
    if any(unicodedata.category(c) == "Cc" for c in doc_id):
        raise InvalidInput(field_name, "document id contains a control character")
    return doc_id


def check_doc_ids(doc_ids: object, field_name: str = "doc_ids") -> list[str]:
    """Validate a sequence of document ids; duplicates are removed, order kept."""
    if isinstance(doc_ids, str | bytes) or not isinstance(doc_ids, Iterable):
        raise InvalidInput(field_name, "expected a list of document ids")
    seen: dict[str, None] = {}
    for i, d in enumerate(doc_ids):
        seen[check_doc_id(d, f"{field_name}[{i}]")] = None
    return list(seen)


def check_meta_value(key: str, value: object, field_name: str) -> MetaValue:
    """Validate one metadata (or filter) value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInput(f"{field_name}.{key}", "integer outside the signed 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{field_name}.{key}", "number must be finite (no NaN or inf)")
        return stable_float(float(value), f"{field_name}.{key}")
    if isinstance(value, str):
        if len(value) > MAX_META_STR:
            raise InvalidInput(f"{field_name}.{key}", f"string longer than {MAX_META_STR}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{field_name}.{key}", "string has a lone surrogate") from None
        return value
    kind = "null" if value is None else type(value).__name__
    raise InvalidInput(
        f"{field_name}.{key}",
        f"{kind} is not a supported value; use a string, boolean, integer or finite number "
        "(leave the key out instead of null; flatten nested objects)",
    )


def check_metadata(metadata: object, field_name: str = "metadata") -> Mapping[str, MetaValue]:
    """Validate metadata (or an equality filter) and return a read-only copy."""
    if metadata is None:
        return _EMPTY_META
    if not isinstance(metadata, Mapping):
        raise InvalidInput(field_name, "expected an object of key/value pairs")
    if len(metadata) > MAX_META_KEYS:
        raise InvalidInput(field_name, f"{len(metadata)} keys; at most {MAX_META_KEYS}")
    out: dict[str, MetaValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not META_KEY_RE.fullmatch(key):
            raise InvalidInput(
                field_name,
                f"key {_show(key)} is not allowed; keys are 1 to 64 characters from "
                "A-Z a-z 0-9 _ and start with a letter",
            )
        out[key] = check_meta_value(key, value, field_name)
    return MappingProxyType(out)


def check_text(text: object, field_name: str = "text") -> str | None:
    """Validate optional document text."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInput(field_name, "text must be a string or absent")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(field_name, f"text longer than {MAX_TEXT_CHARS} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field_name, "text has a lone surrogate") from None
    return text


def to_vector(values: object, field_name: str = "vector") -> Vector:
    """Convert to a read-only 1-D float32 array of finite values, or raise `InvalidInput`."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "fiu":
            raise InvalidInput(field_name, f"expected numbers, got an array of {values.dtype}")
    elif isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise InvalidInput(field_name, "expected a list of numbers")
    else:
        values = list(values)
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, int | float | np.number):
                raise InvalidInput(field_name, f"component {i} is not a number")
    try:
        with np.errstate(over="ignore"):
            arr = np.array(values, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(field_name, "expected a flat list of numbers") from None
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInput(field_name, "expected a non-empty flat list of numbers")
    if arr.size > MAX_DIMENSION:
        raise InvalidInput(field_name, f"{arr.size} dimensions; at most {MAX_DIMENSION}")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise InvalidInput(
            field_name,
            f"component {bad} is not a finite number (NaN, inf, or beyond float32 range); "
            "every component must be finite",
        )
    arr += np.float32(0.0)  # turns -0.0 into 0.0 so equal vectors have equal bytes
    arr.flags.writeable = False
    return arr


def check_k(k: object) -> int:
    """k must be an integer in [1, MAX_K]."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInput("k", f"{k!r} is not accepted; use an integer from 1 to {MAX_K}")
    return k


def canonical_json(metadata: Mapping[str, MetaValue]) -> str:
    """Metadata as canonical JSON: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(
        dict(metadata), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def content_hash(vector: Vector, metadata: Mapping[str, MetaValue], text: str | None) -> str:
    """The version-1 content hash described in this module's docstring."""
    h = hashlib.sha256(HASH_MAGIC)
    h.update(struct.pack("<Q", vector.shape[0]))
    h.update(np.ascontiguousarray(vector, dtype="<f4").tobytes())
    meta = canonical_json(metadata).encode("utf-8")
    h.update(struct.pack("<Q", len(meta)))
    h.update(meta)
    if text is None:
        h.update(b"\0")
    else:
        raw = text.encode("utf-8")
        h.update(b"\1" + struct.pack("<Q", len(raw)))
        h.update(raw)
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Document:
    """One document of one tenant. Validated on construction; immutable.

    >>> doc = Document("acme", "faq-1", [0.1, 0.2], {"lang": "en"}, text="Hello")
    >>> len(doc.content_hash)
    64
    """

    tenant: str
    doc_id: str
    vector: Vector
    metadata: Mapping[str, MetaValue] = field(default_factory=lambda: _EMPTY_META)
    text: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenant", check_tenant(self.tenant))
        object.__setattr__(self, "doc_id", check_doc_id(self.doc_id))
        object.__setattr__(self, "vector", to_vector(self.vector))
        object.__setattr__(self, "metadata", check_metadata(self.metadata))
        object.__setattr__(self, "text", check_text(self.text))

    @cached_property
    def content_hash(self) -> str:
        """See the module docstring; identical across processes, platforms and versions."""
        return content_hash(self.vector, self.metadata, self.text)

    @property
    def dimension(self) -> int:
        return int(self.vector.shape[0])

    @classmethod
    def _trusted(
        cls,
        tenant: str,
        doc_id: str,
        vector: Vector,
        metadata: Mapping[str, MetaValue],
        text: str | None,
        content_hash: str | None = None,
    ) -> Document:
        """A document built from parts that already passed this module's checks, without
        checking them again: for what shadowswap reads back from its own storage (a store's
        catalog, which holds only validated documents) and for `with_vector`. ``vector`` must
        be a read-only 1-D float32 array; ``content_hash``, when given, must be the hash
        shadowswap computed for exactly these parts. Never use it for external input."""
        doc = object.__new__(cls)
        object.__setattr__(doc, "tenant", tenant)
        object.__setattr__(doc, "doc_id", doc_id)
        object.__setattr__(doc, "vector", vector)
        object.__setattr__(doc, "metadata", MappingProxyType(dict(metadata)))
        object.__setattr__(doc, "text", text)
        if content_hash is not None:
            doc.__dict__["content_hash"] = content_hash  # what cached_property would store
        return doc

    def with_vector(self, vector: Vector) -> Document:
        """The same document with another vector (used to canonicalise under cosine); only the
        new vector is checked, the other parts were checked when this document was made."""
        return Document._trusted(
            self.tenant, self.doc_id, to_vector(vector), self.metadata, self.text
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Document):
            return NotImplemented
        return (self.tenant, self.doc_id, self.content_hash) == (
            other.tenant,
            other.doc_id,
            other.content_hash,
        )

    def __hash__(self) -> int:
        return hash((self.tenant, self.doc_id, self.content_hash))

    def __repr__(self) -> str:  # never print vectors, text or metadata values
        return (
            f"Document(tenant={self.tenant!r}, doc_id={self.doc_id!r}, "
            f"dimension={self.dimension}, content_hash={self.content_hash[:12]!r})"
        )


@dataclass(frozen=True, eq=False, init=False)
class Query:
    """One search, validated on construction (in this order: tenant, vector, k, filter, with
    the `InvalidInput` of each rule's check), immutable; whoever holds one need not check it
    again. ``vector`` becomes a read-only float32 copy, ``filter`` a read-only mapping (empty
    when there is none). Not yet checked: the dimension and metric of the store it goes to.

    >>> q = Query("acme", [0.1, 0.2], k=5, filter={"lang": "en"})
    >>> (q.tenant, q.dimension, q.k, dict(q.filter))
    ('acme', 2, 5, {'lang': 'en'})
    """

    tenant: str
    vector: Vector
    k: int
    filter: Mapping[str, MetaValue]

    def __init__(
        self, tenant: str, vector: VectorLike, k: int, filter: Filter | None = None
    ) -> None:
        object.__setattr__(self, "tenant", check_tenant(tenant))
        object.__setattr__(self, "vector", to_vector(vector))
        object.__setattr__(self, "k", check_k(k))
        object.__setattr__(self, "filter", check_metadata(filter, "filter"))

    @property
    def dimension(self) -> int:
        return int(self.vector.shape[0])

    def __repr__(self) -> str:  # never print vectors or filter values
        return (
            f"Query(tenant={self.tenant!r}, dimension={self.dimension}, k={self.k}, "
            f"filter_keys={sorted(self.filter)!r})"
        )


@dataclass(frozen=True)
class Hit:
    """One search result: a document id, its similarity (higher is better), its metadata.

    Its ``repr`` shows the doc id and score only: hits end up in logs and assertion messages,
    which must never carry metadata values.
    """

    doc_id: str
    score: float
    metadata: Mapping[str, MetaValue] = field(default_factory=lambda: _EMPTY_META, repr=False)


@dataclass(frozen=True)
class SearchResult:
    """The answer of one store to one search, best hit first."""

    backend: str
    hits: tuple[Hit, ...]

    @property
    def doc_ids(self) -> list[str]:
        return [h.doc_id for h in self.hits]


@dataclass(frozen=True)
class WriteReport:
    """What an upsert did: documents written, and documents already held unchanged."""

    written: int
    unchanged: int


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

"""Metadata equality filters as exact string tokens, for every engine whose own filters differ
from ours.

Our rule (`shadowswap.stores.base.matches`): booleans match only booleans, strings only
strings, numbers numerically (``1`` matches ``1.0``, ``2**62 + 1`` does not match
``float(2**62)``). Engines disagree: some compare ``True == 1`` (Python-based local modes),
some store every number as a double (losing integers beyond 2**53), some cannot match floats
for equality at all, and some fix a field's type from the first document. So each document
also carries one token per metadata pair, and a filter becomes "the document holds every
token of the filter": an array containment (or keyword/text-array equality) that every engine
evaluates exactly, with or without an index. Used by every adapter that cannot apply our rule
natively: LanceDB, pgvector, Qdrant, Milvus, Elasticsearch, OpenSearch, Weaviate, Pinecone.

========  ===============================  ===============================================
value     token                            why
========  ===============================  ===============================================
bool      ``<key>:b:true|false``           booleans match only booleans
number    ``<key>:n:<canonical>``          ints and integral floats within the signed
                                           64-bit range as the decimal integer, other
                                           floats as Python's shortest round-trip ``repr``;
                                           so two numbers share a token exactly when
                                           Python's ``==`` says they are equal
str       ``<key>:s:<value>``              at most 64 characters, all of ``A-Z a-z 0-9 _
                                           . + -``
any       ``<key>:<b|n|s>#<blake2b>``      every other value: the 128-bit BLAKE2b digest
                                           (hex) of the spelling above
========  ===============================  ===============================================

Keys are ``[A-Za-z][A-Za-z0-9_]*`` (`shadowswap.values`) and plain values never contain
``:`` or ``#``, so a token names its key, type and value unambiguously. Tokens are at most
`MAX_TOKEN_LENGTH` characters of ``A-Z a-z 0-9 _ . + - : #``: no quote, backslash, space or
control character, so they need no escaping in any filter language (LanceDB's SQL, Milvus
expressions), fit every engine's term limit, and survive Weaviate's whitespace trimming of
``field`` tokens. Adapters that read the exact metadata back re-check hits with
`shadowswap.stores.base.matches`, so a digest collision could not return a wrong hit there.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping

from shadowswap.values import INT64_MAX, INT64_MIN, MetaValue

MAX_PLAIN = 64
_SAFE = re.compile(r"[A-Za-z0-9_.+-]*")
#: The longest token: a 64-character key (``META_KEY_RE``), two separators, a type letter
#: and a plain value (a digest, 32 hex digits, is shorter).
MAX_TOKEN_LENGTH = 64 + 3 + MAX_PLAIN


def canonical_number(value: int | float) -> str:
    """One spelling per numeric value: ``1``, ``1.0`` and ``1`` as float all give ``"1"``."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError("metadata numbers are finite")
    if value.is_integer() and INT64_MIN <= value <= INT64_MAX:
        return str(int(value))
    return repr(value)


def token(key: str, value: MetaValue) -> str:
    """The token of one metadata pair (or one filter condition); see the module docstring."""
    if isinstance(value, bool):
        kind, text = "b", "true" if value else "false"
    elif isinstance(value, str):
        kind, text = "s", value
    else:
        kind, text = "n", canonical_number(value)
    if len(text) <= MAX_PLAIN and _SAFE.fullmatch(text):
        return f"{key}:{kind}:{text}"
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
    return f"{key}:{kind}#{digest}"


def tokens(metadata: Mapping[str, MetaValue]) -> list[str]:
    """Every token of a document's metadata (or of a filter), sorted (the order engines keep
    is irrelevant to containment)."""
    return sorted(token(k, v) for k, v in metadata.items())

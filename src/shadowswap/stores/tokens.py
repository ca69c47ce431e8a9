"""Metadata equality filters as exact string tokens, for engines whose own filters differ
from ours.

Our rule (`shadowswap.stores.base.matches`): booleans match only booleans, strings only
strings, numbers numerically (``1`` matches ``1.0``, ``2**62 + 1`` does not match
``float(2**62)``). Engines disagree: some compare ``True == 1`` (Python-based local modes),
some store every number as a double (losing large integers), some cannot match floats for
equality at all. So each document also carries one token per metadata pair, and a filter
becomes "the document holds every token of the filter": an array containment that every
engine evaluates exactly, with or without an index.

A token is ``<key>:<type>:<value>`` when the value is short and made of characters that need
no escaping in any engine's filter language (``A-Z a-z 0-9 _ . + -``), else
``<key>:<type>#<hash>`` with a 128-bit BLAKE2b digest of the value. Numbers use one canonical
spelling per numeric value: integral values (int, or float with no fraction, within the signed
64-bit range) as the integer, other floats as Python's shortest round-trip ``repr``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from shadowswap.values import MetaValue

MAX_PLAIN = 64
_SAFE = re.compile(r"[A-Za-z0-9_.+-]*")
_INT64 = 2**63
#: The longest token: a 64-character key, a type letter and a digest.
MAX_TOKEN_LENGTH = 64 + 3 + MAX_PLAIN


def canonical_number(value: int | float) -> str:
    """One spelling per numeric value: ``1``, ``1.0`` and ``1`` as float all give ``"1"``."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and -_INT64 <= value < _INT64:
        return str(int(value))
    return repr(value)


def token(key: str, value: MetaValue) -> str:
    """The token of one metadata pair (or one filter condition)."""
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
    """Every token of a document's metadata (or of a filter), sorted."""
    return sorted(token(k, v) for k, v in metadata.items())

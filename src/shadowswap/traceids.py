"""Trace ids: the one place they are made and checked.

A read carries a trace id from the HTTP edge (W3C ``traceparent``, `shadowswap.service.tracing`)
or from a library caller, through the router into every log line. Fresh ids follow W3C Trace
Context: 32 lowercase hex digits for a trace, 16 for a span, never all zeros (an all-zero id
is invalid there). An id a library caller passes is its own: any 1 to 128 printable
characters without spaces, so it can be logged as is.

>>> len(new_trace_id()), check_trace_id("req-42")
(32, 'req-42')
"""

from __future__ import annotations

import os

from shadowswap.errors import InvalidInput

ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16
MAX_TRACE_ID = 128


def new_trace_id() -> str:
    """A fresh trace id: 32 lowercase hex digits, never all zeros."""
    while True:
        trace = os.urandom(16).hex()
        if trace != ZERO_TRACE:
            return trace


def new_span_id() -> str:
    """A fresh span id: 16 lowercase hex digits, never all zeros."""
    while True:
        span = os.urandom(8).hex()
        if span != ZERO_SPAN:
            return span


def check_trace_id(trace_id: object) -> str:
    """A caller's trace id, unchanged; `InvalidInput` unless it is 1 to 128 printable
    characters without spaces."""
    if (
        not isinstance(trace_id, str)
        or not 1 <= len(trace_id) <= MAX_TRACE_ID
        or not trace_id.isprintable()
        or any(c.isspace() for c in trace_id)
    ):
        raise InvalidInput(
            "trace_id", f"expected 1 to {MAX_TRACE_ID} printable characters without spaces"
        )
    return trace_id

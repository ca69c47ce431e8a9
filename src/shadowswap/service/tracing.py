"""Trace ids for the HTTP service: W3C ``traceparent`` in, the same trace id out, and in every
log line written while the request is handled.

Why a contextvar and a logging filter: the router, the dual writer and the stores log with
their own loggers and do not know about HTTP. The service sets the request's trace id and
tenant in contextvars (Starlette copies the context into the thread that runs a ``def``
handler), and `RequestContextFilter`, installed on the log handlers, adds them to every record
that does not carry its own. So a line logged anywhere on the request's path can be joined to
the access line and to the ``trace_id`` the caller got back.

The ``traceparent`` rules follow W3C Trace Context level 1: ``00-<32 hex>-<16 hex>-<2 hex>``,
lowercase, trace id and parent id not all zeros, version ``ff`` invalid; a higher version may
append fields after a ``-``. An invalid header is ignored (a fresh trace id is made), as the
recommendation says, never a 400: tracing must not fail a request.

>>> parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
TraceParent(trace_id='4bf92f3577b34da6a3ce929d0e0e4736', flags='01')
>>> parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
True
"""

from __future__ import annotations

import contextvars
import logging
import re
from dataclasses import dataclass

from shadowswap.traceids import ZERO_SPAN, ZERO_TRACE, new_span_id

# version - trace id - parent id - flags [- fields of a later version]
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.S)

trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "shadowswap_trace_id", default=None
)
tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "shadowswap_tenant", default=None
)


@dataclass(frozen=True)
class TraceParent:
    """The parts of an incoming ``traceparent`` the service keeps."""

    trace_id: str
    flags: str


def parse_traceparent(header: str | None) -> TraceParent | None:
    """The trace id and flags of a valid ``traceparent`` header, else None."""
    match = _TRACEPARENT.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    version, trace_id, parent_id, flags, future = match.groups()
    valid = (
        version != "ff"
        and not (version == "00" and future is not None)
        and trace_id != ZERO_TRACE
        and parent_id != ZERO_SPAN
    )
    return TraceParent(trace_id, flags) if valid else None


def traceparent_header(trace_id: str, flags: str = "00") -> str:
    """The ``traceparent`` the service answers with: same trace, its own span."""
    return f"00-{trace_id}-{new_span_id()}-{flags}"


class RequestContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``tenant`` of the request being handled to records that lack
    them. Install it on handlers (`install_context_filter`), not loggers, so records of every
    shadowswap logger pass through it."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id = trace_id_var.get()
        if trace_id is not None and getattr(record, "trace_id", None) is None:
            record.trace_id = trace_id
        tenant = tenant_var.get()
        if tenant is not None and getattr(record, "tenant", None) is None:
            record.tenant = tenant
        return True


def install_context_filter(*loggers: logging.Logger) -> None:
    """Put one `RequestContextFilter` on each handler of ``loggers`` (idempotent)."""
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RequestContextFilter) for f in handler.filters):
                handler.addFilter(RequestContextFilter())

"""A deadline on receiving a request head: uvicorn's HTTP protocols, with a header-read timeout.

Why: uvicorn bounds only the idle time *between* requests (``timeout_keep_alive``, armed when
a response completes and cancelled by the first byte that arrives). A connection that sends
nothing, or half a request line, or a header a byte at a time, is never closed (issue 16:
"half-open connections never time out"), so a few hundred such sockets (slowloris) hold
file descriptors and connection slots for ever. ASGI middleware cannot help: it runs only
once the head has been parsed. uvicorn has no such setting (Go's ``ReadHeaderTimeout``,
hyper's ``header_read_timeout``); the fix others ship is the same as here: a subclass of
the protocol class that arms a timer.

The rule: from the moment a connection is accepted, and again from the moment a response
completes, the client has ``header_timeout_s`` (``RETRIEVAL_HTTP_HEADER_TIMEOUT_S``) to
finish sending the next request head; otherwise the connection is closed. The timer is
disarmed when a head is complete, so a slow request body or a slow handler is not cut
(bodies are bounded by ``RETRIEVAL_MAX_BODY_BYTES``). An idle connection between requests is
closed earlier by uvicorn's own keep-alive timer (``RETRIEVAL_HTTP_KEEP_ALIVE_S``).

Both of uvicorn's HTTP/1.1 implementations are covered: httptools (what ``http="auto"``
picks; ``uvicorn[standard]`` installs it) and h11. `protocol_factory` picks one and binds the
timeout with `functools.partial`, which pickles, so ``--workers N`` passes it to every worker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("shadowswap.service.connections")


class _HeadDeadline:
    """The timer, shared by both protocol classes (a mixin over a uvicorn protocol)."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    header_timeout_s: float
    _head_timer: asyncio.TimerHandle | None

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the uvicorn protocol's, next in the MRO
        self.header_timeout_s = header_timeout_s
        self._head_timer = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]  # the protocol's
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)  # type: ignore[misc]  # the protocol's

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
        self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.debug(
                "connection closed: no complete request head in time",
                extra={"event": "header_timeout", "timeout_s": self.header_timeout_s},
            )
            self.transport.close()


class H11HeadDeadline(_HeadDeadline, H11Protocol):
    """uvicorn's h11 protocol with the head deadline."""

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a head was read (or the client is gone)
            self._disarm_head_deadline()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm_head_deadline()  # before super: it may read a pipelined head at once
        super().on_response_complete()


class HttpToolsHeadDeadline(_HeadDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol with the head deadline."""

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_head_deadline()  # a pipelined request's head is already in
        super().on_response_complete()


def protocol_factory(header_timeout_s: float, *, implementation: str = "auto") -> Any:
    """What to pass as uvicorn's ``http``: the protocol class with the head deadline bound.
    ``implementation`` is ``auto`` (httptools, as uvicorn picks: ``uvicorn[standard]``
    installs it), ``httptools`` or ``h11``."""
    if implementation not in ("auto", "httptools", "h11"):
        raise ValueError(f"unknown HTTP implementation {implementation!r}")
    chosen = H11HeadDeadline if implementation == "h11" else HttpToolsHeadDeadline
    return functools.partial(chosen, header_timeout_s=header_timeout_s)

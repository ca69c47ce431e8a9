"""The one ASGI middleware around every request: trace id, API key, body limit, access log,
and a JSON 500 for anything unexpected.

Why one pure ASGI class and not several `BaseHTTPMiddleware`: each of those adds a task and a
stream per request (measured in the hundreds of microseconds), and the gateway's overhead
budget is under a millisecond. Order of the checks, and why:

1. **Trace id** first, so that even a refused request is answered and logged with one
   (``traceparent`` honoured, else a fresh id; `shadowswap.service.tracing`).
2. **API key** (401) before the body is read: a caller without a valid key costs no parsing
   and learns nothing about validation.
3. **Content type** (415) and **body size** (413, ``RETRIEVAL_MAX_BODY_BYTES``): a declared
   ``Content-Length`` over the limit is refused before reading; a chunked body is read up to
   the limit and refused at the first byte beyond it.
4. The application; its answer gets ``traceparent`` and ``X-Trace-Id`` headers.
5. **Access log**: one JSON line per request (method, path, status, duration, tenant, key
   id, trace id, worker pid; never the body). Probes (``/healthz``, ``/readyz``,
   ``/metrics``) log at DEBUG so that they do not drown the rest.
6. Any exception that escaped the application's handlers: logged with the trace id, the
   exception's type and where it was raised (no message: it could hold content), and
   answered as a JSON 500 when nothing was sent yet.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers

from shadowswap.service.auth import Authenticator, AuthError
from shadowswap.service.errors import RETRY_AFTER_S, error_body, where
from shadowswap.service.tracing import parse_traceparent, trace_id_var, traceparent_header
from shadowswap.traceids import new_trace_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access = logging.getLogger("shadowswap.service.access")
log = logging.getLogger("shadowswap.service")

PROTECTED_PREFIX = "/internal/retrieval/"
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PID = os.getpid()  # per worker process: ``--workers N`` starts each in a fresh interpreter


class _TooLarge(Exception):
    pass


class GatewayMiddleware:
    """See the module docstring. ``auth`` is consulted for paths under
    ``/internal/retrieval/``; the others (probes, metrics, docs) are open."""

    def __init__(self, app: ASGIApp, *, auth: Authenticator, max_body_bytes: int) -> None:
        self.app = app
        self.auth = auth
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        parent = parse_traceparent(headers.get("traceparent"))
        trace_id = parent.trace_id if parent else new_trace_id()
        flags = parent.flags if parent else "00"
        state: dict[str, Any] = scope.setdefault("state", {})
        state["trace_id"] = trace_id
        token = trace_id_var.set(trace_id)
        outcome = _Outcome()
        trace_headers = [
            (b"traceparent", traceparent_header(trace_id, flags).encode("latin-1")),
            (b"x-trace-id", trace_id.encode("latin-1")),
        ]

        async def send_traced(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome.status = int(message["status"])
                outcome.started = True
                message["headers"] = [*message.get("headers", []), *trace_headers]
            await send(message)

        try:
            refusal = self._refusal(scope, headers, state)
            if refusal is not None:
                await _send_json(send_traced, *refusal, trace_id)
                return
            body_receive = receive
            if scope["method"] in _BODY_METHODS:
                try:
                    body_receive = await self._buffer(receive, headers)
                except _TooLarge:
                    detail = (
                        f"the body is larger than RETRIEVAL_MAX_BODY_BYTES={self.max_body_bytes} "
                        "bytes; send fewer documents per request"
                    )
                    await _send_json(send_traced, 413, "body_too_large", detail, {}, trace_id)
                    return
            await self.app(scope, body_receive, send_traced)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: a JSON 500
            log.error(
                "unexpected error",
                extra={"error": type(exc).__name__, "where": where(exc), "trace_id": trace_id},
            )
            if not outcome.started:
                detail = f"internal error; quote trace id {trace_id} when reporting it"
                await _send_json(send_traced, 500, "internal_error", detail, {}, trace_id)
        finally:
            self._log(scope, state, outcome, started, trace_id)
            trace_id_var.reset(token)

    def _refusal(
        self, scope: Scope, headers: Headers, state: dict[str, Any]
    ) -> tuple[int, str, str, dict[str, str]] | None:
        path: str = scope["path"]
        if not path.startswith(PROTECTED_PREFIX):
            return None
        try:
            principal = self.auth.authenticate(headers)
        except AuthError as exc:
            extra = (
                {"retry-after": str(RETRY_AFTER_S)}  # the keys file is not trusted: retry
                if exc.status == 503
                else {"www-authenticate": 'Bearer realm="shadowswap"'}
            )
            return exc.status, exc.code, exc.detail, extra
        state["principal"] = principal
        content_type = headers.get("content-type")
        if scope["method"] in _BODY_METHODS and content_type is not None:
            media = content_type.split(";", 1)[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                detail = (
                    f"the body must be JSON, sent with Content-Type: application/json "
                    f"(got {media[:60]!r})"
                )
                return 415, "unsupported_media_type", detail, {}
        return None

    async def _buffer(self, receive: Receive, headers: Headers) -> Receive:
        """Read the whole body (at most ``max_body_bytes``) and replay it to the app."""
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(b"".join(chunks), receive, first=message)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return _replay(b"".join(chunks), receive)

    def _log(
        self, scope: Scope, state: dict[str, Any], outcome: _Outcome, started: float, trace: str
    ) -> None:
        path = scope["path"]
        level = logging.DEBUG if path in _QUIET and outcome.status < 400 else logging.INFO
        if not access.isEnabledFor(level):
            return
        principal = state.get("principal")
        access.log(
            level,
            "request",
            extra={
                "method": scope["method"],
                "path": path,
                "status": outcome.status,
                "duration_ms": round((time.perf_counter() - started) * 1000.0, 3),
                "tenant": state.get("tenant"),
                "key_id": getattr(principal, "key_id", None),
                "trace_id": trace,
                "pid": _PID,
            },
        )


class _Outcome:
    __slots__ = ("started", "status")

    def __init__(self) -> None:
        self.started = False
        self.status = 500


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if first is not None:
                return first
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(
    send: Send, status: int, code: str, detail: str, headers: dict[str, str], trace_id: str
) -> None:
    body = json.dumps(error_body(code, detail, trace_id), separators=(",", ":")).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

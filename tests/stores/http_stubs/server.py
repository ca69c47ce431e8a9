"""A scripted HTTP stub on 127.0.0.1: it records every request and answers with the replies a
test registered. It implements no store.

Why it exists: Elasticsearch, OpenSearch, Weaviate and Pinecone cannot run on this machine, so
their adapters are tested at the HTTP level: the official client sends its real requests over a
real socket to this stub, the test asserts those requests (method, path, query, headers, JSON
body) and answers with response bodies copied from the vendor's documented shapes. A request
no test scripted gets a 599 and is listed in `StubServer.unmatched`, which the fixtures check
is empty, so an unexpected call fails the test instead of being answered by guesswork.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Recorded:
    """One request as the stub received it."""

    method: str
    path: str  # percent-decoded
    raw_path: str  # as sent
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass(frozen=True)
class Reply:
    """A canned answer: a status, a JSON (or raw) body, headers, an optional delay."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


Responder = Callable[[Recorded], Reply]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    replies: list[Reply | Responder]
    hits: int = 0

    def answer(self, request: Recorded) -> Reply:
        item = self.replies[min(self.hits, len(self.replies) - 1)]
        self.hits += 1
        return item(request) if callable(item) else item


class StubServer:
    """Scripted HTTP server; see the module docstring.

    >>> stub = StubServer()                                          # doctest: +SKIP
    >>> stub.on("GET", "/", Reply(200, {"ok": True}))                  # doctest: +SKIP
    """

    def __init__(self, default_headers: Mapping[str, str] | None = None) -> None:
        self.default_headers = dict(default_headers or {})
        self.requests: list[Recorded] = []
        self.unmatched: list[Recorded] = []
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, method: str, path: str, *replies: Reply | Responder) -> StubServer:
        """Answer ``method`` on paths fully matching the regex ``path`` with ``replies`` in turn
        (the last one repeats). Later registrations take precedence over earlier ones."""
        if not replies:
            raise ValueError("give at least one reply")
        with self._lock:
            self._routes.insert(0, _Route(method.upper(), re.compile(path), list(replies)))
        return self

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded requests, optionally only those of ``method`` fully matching ``path``."""
        pattern = re.compile(path) if path is not None else None
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (pattern is None or pattern.fullmatch(r.path))
            ]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.unmatched.clear()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- serving ------------------------------------------------------------------------
    def _dispatch(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            for route in self._routes:
                if route.method == request.method and route.pattern.fullmatch(request.path):
                    return route.answer(request)
            self.unmatched.append(request)
        return Reply(599, {"stub": f"no scripted reply for {request.method} {request.path}"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Silence the default stderr access log."""

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Recorded(
                    method=self.command,
                    path=unquote(parts.path),
                    raw_path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                reply = stub._dispatch(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.encoded()
                headers = {**stub.default_headers, **reply.headers}
                if reply.body is not None and not isinstance(reply.body, bytes):
                    headers.setdefault("Content-Type", "application/json")
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve  # noqa: N815

        return Handler


def only(requests: Sequence[Recorded]) -> Recorded:
    """The single request of a list (fails the test otherwise)."""
    assert len(requests) == 1, [f"{r.method} {r.path}" for r in requests]
    return requests[0]


def stub_server(default_headers: Mapping[str, str] | None = None) -> Iterator[StubServer]:
    """Fixture body: a stub that must have answered every request it received."""
    server = StubServer(default_headers)
    try:
        yield server
    finally:
        server.close()
    assert not server.unmatched, [f"{r.method} {r.path}" for r in server.unmatched]

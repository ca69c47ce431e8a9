"""What tests that run shadowswap as a real process share: the repository root, a child
environment without the operator's settings and with this checkout's code first on the path,
and `run`. (Processes must use ``sys.executable`` and ``PYTHONPATH=<root>/src``.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: variables only shadowswap's configuration reads; a child never inherits them
SETTINGS = ("RETRIEVAL_", "FF_RETRIEVAL_")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without shadowswap's settings, with ``PYTHONPATH`` set to
    this checkout's code (whatever is installed), then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
    env["PYTHONPATH"] = str(ROOT / "src")
    env.update(extra or {})
    return env


def run(
    args: list[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 240,
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` to completion in ``cwd`` with `child_env` plus ``env``; output as text."""
    return subprocess.run(
        args,
        cwd=cwd,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli(*args: str) -> list[str]:
    """The command line of ``shadowswap ARGS`` with this interpreter."""
    return [sys.executable, "-m", "shadowswap", *args]

"""One small rehearsal, run once for the module's tests as a real process (the CLI), shared by
the end-to-end checks of its JSON and the headless-browser test of its HTML report."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, cli, run

__all__ = ["ROOT", "Rehearsed", "rehearse"]


@dataclass(frozen=True)
class Rehearsed:
    """A finished rehearsal: its process result, JSON document and work directory."""

    process: subprocess.CompletedProcess[str]
    document: dict[str, Any]
    workdir: Path


def rehearse(args: list[str], cwd: Path, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    """``shadowswap rehearse ARGS`` as a child process on this checkout's code."""
    return run(cli("rehearse", *args), cwd, timeout=timeout)


@pytest.fixture(scope="session")
def small_rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Rehearsed:
    """2,000 GloVe documents over 3 tenants, 300 queries: the whole ladder in well under a
    minute on a quiet machine."""
    base = tmp_path_factory.mktemp("rehearsal")
    workdir = base / "work"
    out = rehearse(
        ["--workdir", str(workdir), "--docs", "2000", "--queries", "300", "--tenants", "3",
         "--json"],
        base,
    )  # fmt: skip
    document = json.loads(out.stdout) if out.stdout.strip() else {}
    return Rehearsed(out, document, workdir)

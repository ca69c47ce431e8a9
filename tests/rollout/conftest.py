"""Every rollout test runs in its own directory: env files that set no ``RETRIEVAL_STATE_DIR``
(the staging fixture) keep their state (``write_plan.json``) under ``./data/state``, which
must not be the checkout's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _in_a_directory_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

"""Issue 15: the swap counts only a fresh reconcile, as real processes on real stores (FAISS
primary, embedded Chroma target).

A reconcile counts when it was taken with dual write on for every tenant it covered, after
the last change of the write plan (phase moves and rollbacks record it in the state dir, and
the plan it ran under must be the current one), and not longer ago than the gate's
``reconcile_fresh`` threshold (``--criteria FILE``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shadowswap.settings.config import load_settings
from shadowswap.similarity import Metric
from shadowswap.stores.faiss import FaissStore
from tests import helpers
from tests.helpers import ROOT, cli
from tests.sync.conftest import corpus, load

OPERATOR = ["--operator", "alice", "--reason", "issue-15"]
CUTOVER_100 = {
    "FF_RETRIEVAL_DUAL_WRITE": "ON",
    "FF_RETRIEVAL_SHADOW_READ": "ON",
    "RETRIEVAL_CUTOVER_PERCENT": "100",
}


class Migration:
    """An env file, its stores and its state dir in one directory; commands run there."""

    def __init__(self, root: Path, **flags: str) -> None:
        self.root = root
        self.env = root / ".env"
        values = {
            "RETRIEVAL_BACKEND": "faiss",
            "RETRIEVAL_TARGET_BACKEND": "chroma",
            "FF_RETRIEVAL_DUAL_WRITE": "OFF",
            "FF_RETRIEVAL_SHADOW_READ": "OFF",
            "RETRIEVAL_CUTOVER_TENANTS": "",
            "RETRIEVAL_CUTOVER_PERCENT": "0",
            "RETRIEVAL_FAISS_URL": str(root / "faiss"),
            "RETRIEVAL_CHROMA_URL": str(root / "chroma"),
            "RETRIEVAL_STATE_DIR": str(root / "state"),
            "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": str(root / "outbox.sqlite3"),
            "RETRIEVAL_ROLLBACK_JOURNAL": str(root / "journal.ndjson"),
        } | flags
        self.env.write_text("".join(f"{k}={v}\n" for k, v in values.items()))

    def run(self, *args: str) -> Any:
        return helpers.run(cli(*args), self.root)

    def ok(self, *args: str) -> Any:
        out = self.run(*args)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
        return out

    def move(self, action: str, *args: str) -> Any:
        return self.run("phase", action, "--env-file", str(self.env), *OPERATOR, *args)

    def climb_to_cutover_100(self) -> None:
        """legacy -> dual_write -> shadow_read -> cutover 10% -> cutover 100%, one at a time."""
        for step in (("advance",), ("advance",), ("advance",), ("set", "cutover")):
            extra = ["--percent", "100"] if step[0] == "set" else []
            out = self.move(*step, *extra, "--apply")
            assert out.returncode == 0, out.stderr
        assert load_settings(self.env, environ={}).cutover_percent == 100

    def status(self, *args: str) -> dict[str, Any]:
        out = self.ok("phase", "status", "--env-file", str(self.env), "--json", *args)
        document: dict[str, Any] = json.loads(out.stdout)
        return document

    def reconcile(self, *args: str) -> dict[str, Any]:
        out = self.run("reconcile", "--env-file", str(self.env), "--json", *args)
        assert out.returncode in (0, 1), out.stderr
        document: dict[str, Any] = json.loads(out.stdout)
        return document

    def primary(self) -> FaissStore:
        return FaissStore(self.root / "faiss", Metric.COSINE)


def seeded(tmp_path: Path, **flags: str) -> Migration:
    """Two tenants in the primary, copied to the target by `backfill`."""
    m = Migration(tmp_path, **flags)
    with m.primary() as primary:
        load(primary, "acme", 60)
        load(primary, "globex", 30, seed=2)
    m.ok("backfill", "--env-file", str(m.env), "--no-progress")
    return m


@pytest.mark.slow
def test_a_reconcile_from_before_dual_write_does_not_open_the_swap(tmp_path: Path) -> None:
    m = seeded(tmp_path)
    before = m.reconcile()  # phase legacy: dual write is OFF
    assert before["drift"] == 0
    m.climb_to_cutover_100()

    swap = m.move("advance", "--apply")
    assert swap.returncode == 1, swap.stdout
    assert "dual write was off for tenants acme, globex when the reconcile ran" in swap.stderr
    assert "the write plan changed after the last reconcile (phase advance at " in swap.stderr
    assert "FF_RETRIEVAL_DUAL_WRITE was OFF, now ON" in swap.stderr
    assert load_settings(m.env, environ={}).backend == "faiss"

    status = m.status()
    assert status["phase"] == "cutover" and status["drift"] is None
    assert status["reconcile"]["fresh"] is False and status["reconcile"]["drift"] == 0
    text = m.ok("phase", "status", "--env-file", str(m.env)).stdout
    assert "STALE" in text and "dual write was off for tenants acme, globex" in text


@pytest.mark.slow
def test_rollback_and_new_writes_after_a_clean_reconcile_then_a_fresh_one(
    tmp_path: Path,
) -> None:
    m = seeded(tmp_path, **CUTOVER_100)
    assert m.reconcile()["drift"] == 0
    fresh = m.status()
    assert fresh["drift"] == 0 and fresh["reconcile"]["fresh"] is True
    assert fresh["reconcile"]["reasons"] == [] and fresh["reconcile"]["age_s"] < 600
    assert fresh["reconcile"]["max_age_s"] == 86400

    rollback = helpers.run(
        [sys.executable, str(ROOT / "scripts" / "rollback_retrieval.py"), "--env-file",
         str(m.env), "--apply", *OPERATOR],
        m.root,
    )  # fmt: skip
    assert rollback.returncode == 0, rollback.stderr
    with m.primary() as primary:  # written while rolled back: the primary only
        primary.upsert("acme", corpus("acme", 62)[60:])
    m.climb_to_cutover_100()  # the same write plan as the reconcile's, again

    stale = m.status()
    assert stale["drift"] is None and stale["reconcile"]["drift"] == 0
    assert stale["reconcile"]["fresh"] is False
    (reason,) = stale["reconcile"]["reasons"]
    assert reason.startswith("the write plan changed after the last reconcile (rollback at ")
    assert "then 3 more changes, the last a phase set at" in reason  # shadow read is no change
    text = m.ok("phase", "status", "--env-file", str(m.env)).stdout
    assert "STALE" in text and "rollback at" in text
    refused = m.move("advance", "--apply")
    assert refused.returncode == 1
    assert "needs a fresh reconcile with drift 0" in refused.stderr
    assert "rollback at" in refused.stderr

    found = m.reconcile()  # the real drift: the two writes made while rolled back
    assert found["drift"] == 2
    assert m.status()["drift"] == 2
    assert "the last reconcile reports drift 2" in m.move("advance", "--dry-run").stderr
    assert m.reconcile("--repair", "--source", "primary")["drift"] == 0

    criteria = tmp_path / "short.yml"
    criteria.write_text(
        "criteria:\n"
        "  - {name: reconcile_fresh, statistic: reconcile_age_s, op: '<=', threshold: 1}\n"
    )
    time.sleep(1.2)
    too_old = m.move("advance", "--dry-run", "--criteria", str(criteria))
    assert too_old.returncode == 1
    assert "s old (limit 1 s): run `shadowswap reconcile`" in too_old.stderr
    assert m.status("--criteria", str(criteria))["reconcile"]["fresh"] is False

    swap = m.move("advance", "--apply")
    assert swap.returncode == 0, swap.stderr
    settings = load_settings(m.env, environ={})
    assert (settings.backend, settings.target_backend) == ("chroma", "faiss")
    record = json.loads((tmp_path / "state" / "write_plan.json").read_text())
    assert record["by"] == "phase advance" and record["variables"]["RETRIEVAL_BACKEND"] == "chroma"


@pytest.mark.parametrize("command", ["advance", "status"])
def test_a_missing_criteria_file_is_bad_usage(tmp_path: Path, command: str) -> None:
    m = Migration(tmp_path)
    args = ["--dry-run", *OPERATOR] if command == "advance" else []
    out = m.run("phase", command, "--env-file", str(m.env), "--criteria", "nope.yml", *args)
    assert out.returncode == 2
    assert "nope.yml" in out.stderr and "Traceback" not in out.stderr

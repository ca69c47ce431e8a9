"""Issue 15 in the library: `PhaseMover` judges the last reconcile with its own clock and the
age limit it is given; phase moves and rollbacks record each change of the write plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadowswap.clock import FakeClock
from shadowswap.errors import Refused
from shadowswap.rollout.journal import Journal
from shadowswap.rollout.moves import MoveRequest, PhaseMover
from shadowswap.rollout.rollback import Rollback, RollbackRequest
from shadowswap.settings.config import load_settings
from shadowswap.similarity import Metric
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.sync.freshness import read_write_plan
from shadowswap.sync.reconcile import Reconcile, iso, save_last
from shadowswap.testing import clustered_corpus

HOUR = 3600.0


def env_file(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / ".env"
    base = {
        "RETRIEVAL_BACKEND": "faiss",
        "RETRIEVAL_TARGET_BACKEND": "memory",
        "FF_RETRIEVAL_DUAL_WRITE": "ON",
        "FF_RETRIEVAL_SHADOW_READ": "ON",
        "RETRIEVAL_CUTOVER_PERCENT": "100",
        "RETRIEVAL_FAISS_URL": str(tmp_path / "faiss"),
        "RETRIEVAL_STATE_DIR": str(tmp_path / "state"),
        "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": str(tmp_path / "outbox.sqlite3"),
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in (base | values).items()))
    return path


def reconcile_now(env: Path, primary: FaissStore, target: MemoryStore, clock: FakeClock) -> int:
    settings = load_settings(env, environ={})
    report = Reconcile(primary, target, settings=settings, clock=clock).run()
    save_last(report, settings.state_dir)
    return report.drift


def request(env: Path, action: str = "advance", apply: bool = True) -> MoveRequest:
    return MoveRequest(env, action, apply, "alice", "issue-15")  # type: ignore[arg-type]


def test_an_old_reconcile_is_refused_and_a_fresh_one_accepted(tmp_path: Path) -> None:
    env, clock = env_file(tmp_path), FakeClock()
    docs = clustered_corpus("acme", 30, 8, queries=0).documents
    with FaissStore(tmp_path / "faiss", Metric.COSINE) as primary:
        target = MemoryStore()
        for store in (primary, target):
            store.upsert("acme", docs)
        assert reconcile_now(env, primary, target, clock) == 0
        clock.advance(3 * HOUR)
        mover = PhaseMover(
            Journal(tmp_path / "j.ndjson"), clock=clock, environ={}, max_reconcile_age_s=HOUR
        )
        with pytest.raises(Refused) as refused:
            mover.run(request(env))
        assert refused.value.reasons[0] == (
            "making memory primary needs a fresh reconcile with drift 0; the last reconcile is "
            "3 h old (limit 1 h): run `shadowswap reconcile`"
        )
        assert read_write_plan(tmp_path / "state") is None  # a refused move changes nothing

        assert reconcile_now(env, primary, target, clock) == 0
        clock.advance(60)
        report = mover.run(request(env))
    assert report.goal.name == "swapped" and report.written
    assert report.as_dict()["reconcile"]["fresh"] is True
    record = read_write_plan(tmp_path / "state")
    assert record is not None
    assert (record["by"], record["changed_at"]) == ("phase advance", iso(clock.now()))
    assert record["variables"]["RETRIEVAL_BACKEND"] == "memory"


def test_moves_that_change_no_write_variable_and_dry_runs_record_nothing(tmp_path: Path) -> None:
    env = env_file(tmp_path, RETRIEVAL_CUTOVER_PERCENT="0", FF_RETRIEVAL_SHADOW_READ="OFF")
    mover = PhaseMover(Journal(tmp_path / "j.ndjson"), environ={}, max_reconcile_age_s=HOUR)
    mover.run(request(env, apply=False))  # dual_write -> shadow_read, dry
    mover.run(request(env))  # only FF_RETRIEVAL_SHADOW_READ changes
    assert read_write_plan(tmp_path / "state") is None
    mover.run(request(env))  # cutover 10%: a write-plan change
    record = read_write_plan(tmp_path / "state")
    assert record is not None and record["variables"]["RETRIEVAL_CUTOVER_PERCENT"] == "10"


def test_a_rollback_records_the_change_and_a_dry_run_does_not(tmp_path: Path) -> None:
    env, clock = env_file(tmp_path), FakeClock()
    rollback = Rollback(Journal(tmp_path / "j.ndjson"), clock=clock, environ={})
    rollback.run(RollbackRequest(env, False, "alice", "drill"))
    assert read_write_plan(tmp_path / "state") is None
    clock.advance(5)
    report = rollback.run(RollbackRequest(env, True, "alice", "incident-1"))
    assert report.result == "success" and not report.warnings
    record = read_write_plan(tmp_path / "state")
    assert record is not None and (record["by"], record["changed_at"]) == (
        "rollback",
        iso(clock.now()),
    )
    assert record["variables"]["FF_RETRIEVAL_DUAL_WRITE"] == "OFF"
    assert json.loads((tmp_path / "state" / "write_plan.json").read_text())["format"] == 1

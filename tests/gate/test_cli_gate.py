"""``shadowswap gate`` as an operator runs it: exit codes, --json, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from shadowswap.clock import SystemClock
from shadowswap.gate.model import Evidence
from shadowswap.policy import write_plan_fingerprint, write_plan_variables
from shadowswap.settings.config import load_settings
from shadowswap.shadow.observations import JsonlObservationLog, Observation
from shadowswap.sync.reconcile import iso

ROOT = Path(__file__).resolve().parents[2]


def child_environ() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("RETRIEVAL_ENV_FILE", None)
    return env


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = child_environ()
    return subprocess.run(
        [sys.executable, "-m", "shadowswap", "gate", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def write_log(directory: Path, n: int, *, errors: int = 0, foreign: bool = False) -> None:
    log = JsonlObservationLog(directory, retention_days=90, clock=SystemClock())
    now = time.time()
    ids = tuple(f"d{i}" for i in range(10))
    scores = tuple(0.9 - i * 0.01 for i in range(10))
    for i in range(n):
        shadow_ids = ("intruder", *ids[:9]) if foreign else ids
        shadow_scores = (0.95, *scores[:9]) if foreign else scores
        outcome = "error" if i < errors else "compared"
        compared = outcome == "compared"
        log.record(
            Observation(
                ts=now - 60 + i * 0.01, tenant="acme", trace_id=f"{i:032x}",
                primary_backend="faiss", shadow_backend="chroma", outcome=outcome, k=10,
                filtered=False, primary_ids=ids, primary_scores=scores, primary_latency_s=0.001,
                shadow_ids=shadow_ids if compared else (),
                shadow_scores=shadow_scores if compared else (),
                shadow_latency_s=0.003,
                agreement_at_5=(0.8 if foreign else 1.0) if compared else None,
                agreement_cutoff=5 if compared else None,
                ndcg_at_10=(0.9 if foreign else 1.0) if compared else None,
                score_delta=0.0 if compared else None, latency_delta_s=0.002 if compared else None,
                mismatch=foreign if compared else None,
                error=None if compared else "StoreUnavailable",
            )
        )  # fmt: skip
    log.close()


OBSERVATION_ONLY = """
min_samples: 100
criteria:
  - {name: agreement_at_5, statistic: agreement_at_5_mean, op: ">=", threshold: 0.9}
  - {name: foreign_hits, statistic: foreign_hit_ratio, op: "<=", threshold: 0,
     rollback_threshold: 0.01}
  - {name: shadow_errors, statistic: shadow_error_ratio, op: "<=", threshold: 0,
     rollback_threshold: 0.01}
  - {name: latency_delta, statistic: latency_delta_mean_s, op: "<=", threshold: 0.08}
  - {name: reconcile_drift, statistic: reconcile_drift, op: "==", threshold: 0}
"""


def setup_dirs(tmp_path: Path, drift: int = 0) -> tuple[Path, Path, Path]:
    obs, state = tmp_path / "obs", tmp_path / "state"
    state.mkdir()
    settings = load_settings(environ=child_environ())  # what the gate's process reads
    plan = {
        "fingerprint": write_plan_fingerprint(settings),
        "variables": write_plan_variables(settings),
    }
    last = {"drift": drift, "complete": True, "started_at": iso(time.time() - 70)}
    last |= {"finished_at": iso(time.time() - 60), "write_plan": plan, "tenants": {}}
    (state / "reconcile_last.json").write_text(json.dumps(last))
    criteria = tmp_path / "gate.yml"
    criteria.write_text(OBSERVATION_ONLY)
    return obs, state, criteria


def test_promote_exits_0_with_the_contract_json(tmp_path: Path) -> None:
    obs, state, criteria = setup_dirs(tmp_path)
    write_log(obs, 400)
    out = run("--criteria", str(criteria), "--observations", str(obs), "--state-dir",
              str(state), "--json", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["verdict"] == "PROMOTE"
    assert [c["name"] for c in doc["criteria"]] == [
        "agreement_at_5", "foreign_hits", "shadow_errors", "latency_delta", "reconcile_drift"
    ]  # fmt: skip
    for c in doc["criteria"]:
        assert {"name", "value", "threshold", "passed"} <= set(c) and c["passed"] is True
    assert doc["evidence"]["compared"] == 400


def test_foreign_hits_roll_back_and_exit_1(tmp_path: Path) -> None:
    obs, state, criteria = setup_dirs(tmp_path)
    write_log(obs, 300, foreign=True)
    out = run("--criteria", str(criteria), "--observations", str(obs), "--state-dir",
              str(state), cwd=tmp_path)  # fmt: skip
    assert out.returncode == 1
    assert "gate: ROLLBACK" in out.stdout and "foreign_hits" in out.stdout


def test_thin_evidence_and_drift_hold(tmp_path: Path) -> None:
    obs, state, criteria = setup_dirs(tmp_path, drift=4)
    write_log(obs, 40)
    out = run("--criteria", str(criteria), "--observations", str(obs), "--state-dir",
              str(state), "--json", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["verdict"] == "HOLD"
    assert any("insufficient evidence: 40 comparisons" in r for r in doc["reasons"])
    assert any(r.startswith("reconcile_drift: fails") for r in doc["reasons"])


def test_a_log_without_state_records_leaves_the_write_side_unknown(tmp_path: Path) -> None:
    """A log written by a gateway older than the state records: comparisons only."""
    obs, state, _ = setup_dirs(tmp_path)
    write_log(obs, 400)
    out = run("--observations", str(obs), "--state-dir", str(state), "--json", cwd=tmp_path)
    doc = json.loads(out.stdout)
    assert out.returncode == 1 and doc["verdict"] == "HOLD"
    drops = next(c for c in doc["criteria"] if c["name"] == "drops")
    assert drops["passed"] is None and "--metrics-url" in drops["detail"]
    assert any("no state records in the log" in n for n in doc["evidence"]["notes"])


def test_bad_usage_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    obs, _, _ = setup_dirs(tmp_path)
    obs.mkdir()
    cases = [
        ((), "no source of evidence: set RETRIEVAL_OBSERVATIONS_DIR"),
        (("--observations", str(tmp_path / "nowhere")), "does not exist"),
        (("--criteria", str(tmp_path / "none.yml"), "--observations", str(obs)), "does not exist"),
        (("--observations", str(obs), "--window", "soon"), "not a duration"),
    ]
    (tmp_path / "bad.yml").write_text(
        "criteria:\n  - {name: x, statistic: nope, op: '<', threshold: 1}\n"
    )
    cases.append((("--criteria", str(tmp_path / "bad.yml"), "--observations", str(obs)),
                  "statistic 'nope' is not one of"))  # fmt: skip
    for args, message in cases:
        out = run(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert Evidence().compared is None

"""``shadowswap backfill`` / ``reconcile`` as real processes: JSON, exit codes, kills, signals."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shadowswap.settings.config import load_settings
from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.sync.freshness import reconcile_freshness
from shadowswap.sync.reconcile import reconcile
from tests import helpers
from tests.helpers import ROOT, child_env, cli
from tests.servers import free_port
from tests.stores.conftest import _wipe_chroma_server
from tests.sync.conftest import changed, corpus, load

TENANTS = ("acme", "globex", "initech")


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    """The whole environment of a child process (also for Popen)."""
    return child_env(
        {
            "RETRIEVAL_FAISS_URL": str(tmp / "faiss"),
            "RETRIEVAL_CHROMA_URL": str(tmp / "chroma"),
            "RETRIEVAL_TARGET_BACKEND": "chroma",
            "RETRIEVAL_STATE_DIR": str(tmp / "state"),
            **extra,
        }
    )


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return helpers.run(cli(*args), cwd, env)


def faiss_at(tmp: Path) -> FaissStore:
    return FaissStore(tmp / "faiss", Metric.COSINE)


def test_backfill_reconcile_purge_repair_with_json_and_exit_codes(tmp_path: Path) -> None:
    env = env_for(tmp_path, FF_RETRIEVAL_DUAL_WRITE="ON")
    with faiss_at(tmp_path) as primary:
        docs = load(primary, "acme", 400)
        load(primary, "globex", 100, seed=2)
    out = run(["backfill", "--json", "--batch-size", "150"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["ok"], report["copied"], report["skipped"], report["failed"]) == (
        True, 500, 0, 0,
    )  # fmt: skip
    assert report["tenants"]["acme"]["copied"] == 400
    assert {"duration_s", "rate_docs_per_s", "source", "destination"} <= set(report)
    assert "backfill acme:" in out.stderr and "docs/s" in out.stderr  # plain progress lines

    clean = run(["reconcile", "--json"], env, tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["drift"] == 0

    with faiss_at(tmp_path) as primary:  # drift on the primary: +1 new, 1 changed, 1 deleted
        primary.upsert("acme", [changed(docs[7]), corpus("acme", 401)[400]])
        primary.delete("acme", [docs[9].doc_id])
    found = run(["reconcile", "--json"], env, tmp_path)
    assert found.returncode == 1, found.stderr
    result = json.loads(found.stdout)
    assert result["drift"] == 3
    assert {
        t: {k: v[k] for k in ("missing", "extra", "stale")} for t, v in result["tenants"].items()
    } == {
        "acme": {"missing": 1, "extra": 1, "stale": 1},
        "globex": {"missing": 0, "extra": 0, "stale": 0},
    }
    assert result["tenants"]["acme"]["examples"]["extra"] == [docs[9].doc_id]
    last_file = tmp_path / "state" / "reconcile_last.json"
    last = json.loads(last_file.read_text())
    assert last["drift"] == 3 and last["tenants"] == result["tenants"]

    purged = run(["reconcile", "--purge-delta", "--json"], env, tmp_path)
    assert purged.returncode == 1  # missing and stale remain
    after_purge = json.loads(purged.stdout)
    assert after_purge["deleted"] == 1 and after_purge["found"]["drift"] == 3
    assert (after_purge["extra"], after_purge["drift"]) == (0, 2)  # missing and stale remain

    only_acme = run(["reconcile", "--tenant", "acme"], env, tmp_path)
    assert only_acme.returncode == 1  # a run over some tenants does not speak for all:
    assert json.loads(last_file.read_text())["finished_at"] == after_purge["finished_at"]

    repaired = run(["reconcile", "--repair"], env, tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert "drift left 0" in repaired.stdout
    last = json.loads(last_file.read_text())
    assert (last["drift"], last["found"]["drift"], last["written"]) == (0, 2, 2)
    fresh = reconcile_freshness(tmp_path / "state", load_settings(environ=env), time.time(), 60)
    assert fresh.ready, fresh.reasons  # the phase gate opens without a rerun
    assert run(["reconcile", "--json", "--tenant", "globex"], env, tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (["reconcile"], {"RETRIEVAL_TARGET_BACKEND": ""}, "RETRIEVAL_TARGET_BACKEND"),
        (["reconcile", "--source", "both"], {}, "--source"),
        (["reconcile", "--every", "10x"], {}, "--every"),
        (["reconcile", "--metrics-port", "9999"], {}, "--metrics-port"),
        (["reconcile", "--tenant", "a b"], {}, "tenant"),
        (["reconcile", "--batch-size", "0"], {}, "batch_size"),
        (["backfill", "--from", "mongo"], {}, "--from"),
        (["backfill", "--to", "faiss"], {}, "--to"),
        (["backfill", "--max-rate", "0"], {}, "--max-rate"),
        (["backfill"], {"RETRIEVAL_TARGET_BACKEND": ""}, "RETRIEVAL_TARGET_BACKEND"),
        (["backfill", "--to", "pgvector"], {}, "RETRIEVAL_PGVECTOR_URL"),  # no DSN configured
    ],
)
def test_bad_usage_exits_2_with_a_message(
    tmp_path: Path, args: list[str], extra_env: dict[str, str], message: str
) -> None:
    out = run([*args, "--json"], env_for(tmp_path, **extra_env), tmp_path)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stdout == "" and message in out.stderr and "Traceback" not in out.stderr


def test_a_store_that_cannot_be_reached_exits_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = run(["reconcile"], env_for(tmp_path, RETRIEVAL_CHROMA_URL=url), tmp_path)
    assert out.returncode == 1 and "cannot reach" in out.stderr and "Traceback" not in out.stderr


def _kill_at_a_random_point(
    proc: subprocess.Popen[bytes],
    state: Path,
    rng: random.Random,
    before: dict[str, dict[str, Any]],
    *,
    total: int,
    batch: int,
) -> None:
    """SIGKILL ``proc`` once the checkpoints pass a random count (so kills spread over the
    whole copy, whatever the engines' speed), a random few milliseconds later: mid-batch,
    mid-checkpoint, anywhere. One time in five, kill during start-up instead."""
    if rng.random() < 0.2:
        time.sleep(rng.uniform(0.0, 1.5))
    else:
        done = sum(c["processed"] if not c["complete"] else 0 for c in before.values())
        done += sum(1 for c in before.values() if c["complete"]) * (total // len(TENANTS))
        last = int(total * 0.8)  # leave the copy time to be killed before it ends
        goal = rng.randint(min(done + 1, last), last)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(c["processed"] for c in checkpoints(state).values()) >= goal:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def _assert_resumed_without_recopy(
    report: dict[str, Any],
    done: dict[str, dict[str, Any]],
    before: dict[str, dict[str, Any]],
    last_pass: dict[str, Any],
    passes: list[str],
    *,
    n: int,
    batch: int,
    killed: int,
) -> None:
    for tenant in TENANTS:
        copy = report["tenants"][tenant]
        if last_pass["complete"]:  # finished before a kill landed: a new, write-free pass
            assert (copy["processed"], copy["copied"]) == (n, 0)
            continue
        resumed = before.get(tenant, {"processed": 0, "complete": False, "pass_id": ""})
        if resumed["pass_id"] != last_pass["id"]:
            resumed = {"processed": 0, "complete": False}
        if resumed["complete"]:  # done in an earlier run of this pass: not read again
            assert copy["done_earlier"] and copy["processed"] == 0
        else:  # resumed at its checkpoint: finished batches are not read again
            assert copy["resumed_after_docs"] == resumed["processed"]
            assert copy["processed"] == n - resumed["processed"]
        assert done[tenant]["complete"]
        assert done[tenant]["written"] + done[tenant]["unchanged"] == n
        if len(passes) == 1:
            # One pass over all runs: every document written once; the only documents found
            # already there are those of batches in flight when a run was killed.
            assert done[tenant]["unchanged"] <= killed * batch, (done[tenant], killed)
        else:  # a pass after a complete one finds everything there and rewrites nothing
            assert done[tenant]["written"] == 0


def pass_records(state: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in state.glob("backfill/*/pass.json")]


def checkpoints(state: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in state.glob("backfill/*/*-*.json"):
        data = json.loads(path.read_text())
        out[data["tenant"]] = data
    return out


def load_chroma_in_a_process(tmp: Path, n: int) -> None:
    """Embedded Chroma is written by one process at a time: load it in its own process."""
    script = (
        "import sys; from tests.sync.conftest import load\n"
        "from shadowswap.stores.chroma import ChromaStore\n"
        "s = ChromaStore(sys.argv[1])\n"
        f"[load(s, t, {n}, seed=i) for i, t in enumerate({TENANTS!r})]\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    subprocess.run(
        [sys.executable, "-c", script, str(tmp / "chroma")], env=env, check=True, timeout=120
    )


@pytest.mark.parametrize(
    ("direction", "seed"),
    [("faiss-chroma", 11), ("faiss-chroma", 22), ("faiss-chroma", 33), ("chroma-faiss", 44),
     ("chroma-faiss", 55)],
)  # fmt: skip
def test_sigkill_at_random_points_then_resume_ends_with_zero_drift(
    tmp_path: Path, direction: str, seed: int
) -> None:
    rng = random.Random(seed)
    n, batch, kills = 1200, 100, 3
    source_kind, dest_kind = direction.split("-")
    if source_kind == "faiss":
        with faiss_at(tmp_path) as primary:
            for i, t in enumerate(TENANTS):
                load(primary, t, n, seed=i)
    else:
        load_chroma_in_a_process(tmp_path, n)
    env = env_for(tmp_path)
    args = ["backfill", "--from", source_kind, "--to", dest_kind, "--batch-size", str(batch)]
    state = tmp_path / "state"
    before: dict[str, dict[str, Any]] = {}
    passes: list[str] = []
    killed = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            cli(*args, "--json"), cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _kill_at_a_random_point(proc, state, rng, before, total=n * len(TENANTS), batch=batch)
            killed += proc.returncode == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        after = checkpoints(state)
        for tenant, cp in before.items():  # within a pass, checkpoints never move back
            if after[tenant]["pass_id"] == cp["pass_id"]:
                assert after[tenant]["processed"] >= cp["processed"]
        before = after
        passes += [p["id"] for p in pass_records(state) if p["id"] not in passes]
    assert killed >= 1
    (last_pass,) = pass_records(state) or [{"id": "", "complete": False}]
    final = run([*args, "--json"], env, tmp_path)
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    _assert_resumed_without_recopy(
        report, checkpoints(state), before, last_pass, passes, n=n, batch=batch, killed=killed
    )
    source: BaseStore
    dest: BaseStore
    if source_kind == "faiss":
        source, dest = faiss_at(tmp_path), ChromaStore(str(tmp_path / "chroma"))
    else:
        source, dest = ChromaStore(str(tmp_path / "chroma")), faiss_at(tmp_path)
    with source, dest:
        check = reconcile(source, dest)
        assert check.drift == 0 and sum(t.source_docs for t in check.tenants) == n * 3


def test_continuous_mode_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    with faiss_at(tmp_path) as primary:
        load(primary, "acme", 30)
    port = free_port()
    proc = subprocess.Popen(
        cli("reconcile", "--every", "1s", "--metrics-port", str(port), "--json"),
        cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        second = json.loads(proc.stdout.readline())
        assert first["drift"] == second["drift"] == 30 and first["complete"]
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert (
            'retrieval_reconcile_drift{env="local",kind="missing",shadow_version="dev"} 30.0'
            in body
        )
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert all(json.loads(line) for line in rest.splitlines())
    assert "SIGTERM" in err and "Traceback" not in err


def test_backfill_and_reconcile_against_a_chroma_server(
    tmp_path: Path, chroma_server_url: str
) -> None:
    _wipe_chroma_server(chroma_server_url)
    try:
        with faiss_at(tmp_path) as primary:
            load(primary, "acme", 250)
        env = env_for(tmp_path, RETRIEVAL_CHROMA_URL=chroma_server_url)
        out = run(["backfill", "--json", "--max-rate", "100000"], env, tmp_path)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["copied"] == 250
        check = run(["reconcile", "--json", "--deep"], env, tmp_path)
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["tenants"]["acme"]["replica_docs"] == 250
    finally:
        _wipe_chroma_server(chroma_server_url)


def test_sigterm_stops_a_throttled_backfill_after_the_batch_and_it_resumes(
    tmp_path: Path,
) -> None:
    with faiss_at(tmp_path) as primary:
        load(primary, "acme", 400)
    env = env_for(tmp_path)
    proc = subprocess.Popen(
        cli("backfill", "--batch-size", "50", "--max-rate", "20", "--json"),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not checkpoints(tmp_path / "state") and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)  # the throttle makes it wait 2.5 s between batches
        started = time.monotonic()
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and stopped_in < 2.0, (proc.returncode, stopped_in, err)
    report = json.loads(out)
    assert report["interrupted"] and not report["ok"] and report["processed"] >= 50
    assert "SIGTERM: stopping after the current batch" in err and "Traceback" not in err
    resumed = run(["backfill", "--json"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads(resumed.stdout)
    assert again["tenants"]["acme"]["resumed_after_docs"] == report["processed"]
    assert again["copied"] == 400 - report["processed"]

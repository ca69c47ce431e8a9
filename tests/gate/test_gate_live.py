"""``shadowswap gate`` with no source flag on a faithful live run (issue 15): a gateway's
runtime (FAISS primary, embedded Chroma target, dual write and shadow read on) serves reads while a
client writes, including the vector it just searched for; the gate then reads the
observation log at RETRIEVAL_OBSERVATIONS_DIR from the env file, and the reconcile from the
state dir, and says PROMOTE. No Prometheus, no --observations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from shadowswap.runtime import build_runtime
from shadowswap.settings.live import EnvFileSettings
from shadowswap.testing import clustered_corpus
from shadowswap.values import Document

ROOT = Path(__file__).resolve().parents[2]
TENANTS = ("acme", "globex", "initech")
DIM = 16
QUERIES = 1010  # per tenant: 3,030 comparisons, above the 2,995 that rule out foreign hits


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRIEVAL_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [sys.executable, "-m", "shadowswap", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_gate_with_no_source_flag_promotes_a_faithful_live_run(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"""RETRIEVAL_BACKEND=faiss
RETRIEVAL_TARGET_BACKEND=chroma
RETRIEVAL_FAISS_URL={tmp_path / "faiss"}
RETRIEVAL_CHROMA_URL={tmp_path / "chroma"}
RETRIEVAL_DUAL_WRITE_OUTBOX_URL={tmp_path / "outbox.sqlite3"}
RETRIEVAL_STATE_DIR={tmp_path / "state"}
RETRIEVAL_OBSERVATIONS_DIR={tmp_path / "observations"}
FF_RETRIEVAL_DUAL_WRITE=ON
FF_RETRIEVAL_SHADOW_READ=ON
FF_RETRIEVAL_SHADOW_SAMPLE_RATE=1.0
RETRIEVAL_SHADOW_TIMEOUT_MS=5000
RETRIEVAL_DUAL_WRITE_TIMEOUT_MS=10000
"""
    )
    runtime = build_runtime(EnvFileSettings(env_file))
    corpora = {
        t: clustered_corpus(t, 300, DIM, queries=QUERIES, clusters=6, seed=i)
        for i, t in enumerate(TENANTS)
    }
    try:
        for tenant, corpus in corpora.items():
            runtime.writer.upsert(tenant, corpus.documents)
        assert runtime.writer.flush(60)
        stop = threading.Event()
        written = [0]

        def ingest() -> None:  # writes beside the reads, as a RAG ingestion does
            rng = np.random.default_rng(5)
            while not stop.is_set():
                tenant = TENANTS[written[0] % len(TENANTS)]
                vector = rng.normal(size=DIM).astype(np.float32)
                runtime.writer.upsert(tenant, [Document(tenant, f"w{written[0]}", vector)])
                written[0] += 1
                stop.wait(0.05)  # a steady trickle the outbox keeps up with

        thread = threading.Thread(target=ingest)
        thread.start()
        try:
            for i in range(QUERIES):
                for tenant, corpus in corpora.items():
                    query = corpus.queries[i]
                    runtime.router.search(tenant, query, 10)
                    if i % 10 == 0:  # the same vector searched, then upserted
                        runtime.writer.upsert(tenant, [Document(tenant, f"q{i}", query)])
                    if i % 37 == 0:  # and a top document deleted right after a search
                        top = runtime.router.search(tenant, query, 1).hits[0].doc_id
                        runtime.writer.delete(tenant, [top])
                # a client's pace: the shadow keeps up (full speed would drop as queue_full)
                runtime.router.executor.wait_idle(10)
        finally:
            stop.set()
            thread.join()
        assert runtime.router.executor.wait_idle(60) and runtime.writer.flush(60)
    finally:
        runtime.close()
    assert written[0] > 0
    replayed = cli("replay-outbox", "--env-file", str(env_file), "--json", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr  # the runbook: replay, then reconcile
    reconciled = cli("reconcile", "--env-file", str(env_file), "--json", cwd=tmp_path)
    assert reconciled.returncode == 0, reconciled.stderr
    assert json.loads(reconciled.stdout)["drift"] == 0
    out = cli("gate", "--env-file", str(env_file), "--json", cwd=tmp_path)
    doc = json.loads(out.stdout)
    assert out.returncode == 0, (doc["reasons"], out.stderr)
    assert doc["verdict"] == "PROMOTE"
    assert all(c["passed"] is True for c in doc["criteria"])
    ev = doc["evidence"]
    assert ev["compared"] >= 2995 and ev["foreign_hits"] == 0 and ev["stale_hits"] == 0
    assert (
        ev["reads"] >= 3 * QUERIES and ev["dual_write_errors"] == 0 and ev["breaker_open"] is False
    )
    text = cli("gate", "--env-file", str(env_file), cwd=tmp_path)
    assert text.returncode == 0 and "gate: PROMOTE" in text.stdout

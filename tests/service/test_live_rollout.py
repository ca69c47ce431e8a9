"""The gateway follows its env file without a restart (rollout docs, runbooks 002/003): a
cutover edit moves reads to the target within seconds, and ``python
scripts/rollback_retrieval.py --apply --smoke-url`` rolls a running ``shadowswap serve`` back
to FAISS and confirms it through the service's own answers (runbook 002, step 5)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest

from shadowswap.service.keys import add_key
from shadowswap.settings.envfile import edit_text, read_env, write_env
from tests.service.process import ROOT, ServeProcess, run_cli


def _backend(url: str, key: str, tenant: str = "smoke") -> str:
    r = httpx.post(f"{url}/internal/retrieval/search", timeout=10,
                   headers={"Authorization": f"Bearer {key}"},
                   json={"tenant": tenant, "vector": [1.0, 0.0, 0.0], "k": 1})  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["backend"])


def _wait_backend(url: str, key: str, wanted: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _backend(url, key) != wanted:
        assert time.monotonic() < deadline, f"reads never moved to {wanted}"
        time.sleep(0.2)


@pytest.mark.slow
def test_flag_edits_apply_live_and_the_rollback_script_smoke_tests_the_service(
    tmp_path: Path,
) -> None:
    env = tmp_path / ".env.staging"
    env.write_text(
        "# staging\n"
        "RETRIEVAL_BACKEND=faiss\n"
        f"RETRIEVAL_FAISS_URL={tmp_path / 'faiss'}\n"
        "RETRIEVAL_TARGET_BACKEND=memory\n"
        "FF_RETRIEVAL_DUAL_WRITE=ON\n"
        "FF_RETRIEVAL_SHADOW_READ=OFF\n"
        "RETRIEVAL_CUTOVER_PERCENT=0\n"
        f"RETRIEVAL_DUAL_WRITE_OUTBOX_URL={tmp_path / 'outbox.sqlite3'}\n"
        f"RETRIEVAL_STATE_DIR={tmp_path / 'state'}\n"
        f"RETRIEVAL_API_KEYS_FILE={tmp_path / 'keys.json'}\n"
    )
    key, _ = add_key(tmp_path / "keys.json", ["*"], status=True)
    (tmp_path / "smoke.key").write_text(key + "\n")
    with ServeProcess(tmp_path, env) as serve:
        assert _backend(serve.url, key) == "faiss"
        snapshot = read_env(env)
        write_env(snapshot, edit_text(snapshot.text, {"RETRIEVAL_CUTOVER_PERCENT": "100"}),
                  backup=False)  # fmt: skip
        _wait_backend(serve.url, key, "memory")  # every tenant now reads from the target
        status = httpx.get(f"{serve.url}/internal/retrieval/status", timeout=10,
                           headers={"Authorization": f"Bearer {key}"}).json()  # fmt: skip
        assert status["phase"]["phase"] == "cutover"
        assert status["service"]["settings_source"]["reloads"] >= 1

        out = run_cli(
            [sys.executable, str(ROOT / "scripts" / "rollback_retrieval.py"),
             "--env-file", str(env), "--apply", "--operator", "alice", "--reason", "drill",
             "--smoke-url", serve.url, "--smoke-dim", "3",
             "--smoke-api-key-file", str(tmp_path / "smoke.key"),
             "--journal", str(tmp_path / "journal.ndjson"), "--json"],
            tmp_path,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        assert _backend(serve.url, key) == "faiss"
        entry = json.loads((tmp_path / "journal.ndjson").read_text().splitlines()[-1])
        assert entry["result"] == "success" and "smoke" in entry["notes"]
        assert "faiss" in entry["notes"]
        assert serve.stop() == 0
    reloads = [ln for ln in serve.lines() if ln["msg"] == "settings reloaded"]
    assert len(reloads) >= 2
    assert key not in serve.text()

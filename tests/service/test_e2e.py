"""Must-show: ``shadowswap serve`` as a real process, FAISS primary, a Chroma *server* target,
dual write and shadow read on. Upsert, search and delete over HTTP; ``/metrics`` holds every
CONTRACT §2 name; with the Chroma server killed every write and read still succeeds; once it
is back, ``python scripts/replay_outbox.py`` drains the outbox and ``shadowswap reconcile``
finds no drift. The process logs JSON lines only, each request's lines carry its trace id,
and no document content reaches the log."""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shadowswap.metrics import CONTRACT_METRICS
from shadowswap.service.keys import add_key
from tests.servers import ChromaServer
from tests.service.process import ROOT, ServeProcess, run_cli

DIM = 16
TENANTS = ("acme", "globex")
SECRET_TEXT = "SECRET-TEXT-7f3a"
SECRET_META = "SECRET-META-91bc"
TRACE = "0af7651916cd43dd8448eb211c80319c"


def env_file(tmp: Path, chroma_url: str) -> Path:
    path = tmp / ".env"
    path.write_text(
        "\n".join([
            "RETRIEVAL_BACKEND=faiss",
            f"RETRIEVAL_FAISS_URL={tmp / 'faiss'}",
            "RETRIEVAL_TARGET_BACKEND=chroma",
            f"RETRIEVAL_CHROMA_URL={chroma_url}",
            "FF_RETRIEVAL_DUAL_WRITE=ON",
            "FF_RETRIEVAL_SHADOW_READ=ON",
            "FF_RETRIEVAL_SHADOW_SAMPLE_RATE=1.0",
            "RETRIEVAL_SHADOW_TIMEOUT_MS=3000",
            "RETRIEVAL_DUAL_WRITE_CB_THRESHOLD=3",
            "RETRIEVAL_DUAL_WRITE_CB_WINDOW_S=600",
            "RETRIEVAL_DUAL_WRITE_TIMEOUT_MS=5000",
            "RETRIEVAL_DUAL_WRITE_OUTBOX_MAX=100000",
            f"RETRIEVAL_DUAL_WRITE_OUTBOX_URL={tmp / 'outbox.sqlite3'}",
            f"RETRIEVAL_STATE_DIR={tmp / 'state'}",
            f"RETRIEVAL_API_KEYS_FILE={tmp / 'keys.json'}",
            "",
        ])
    )  # fmt: skip
    return path


def vector(rng: random.Random) -> list[float]:
    return [rng.gauss(0, 1) for _ in range(DIM)]


def wait_for(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.1)


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=url, timeout=30.0, headers={"Authorization": f"Bearer {key}"}
        )

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.http.post(f"/internal/retrieval/{path}", json=body, headers=headers)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def status(self) -> Any:
        return self.http.get("/internal/retrieval/status").json()

    def upsert(self, tenant: str, ids: list[str], rng: random.Random) -> httpx.Response:
        docs = [
            {"doc_id": d, "vector": vector(rng), "metadata": {"tag": SECRET_META, "n": i},
             "text": SECRET_TEXT}
            for i, d in enumerate(ids)
        ]  # fmt: skip
        return self.post("upsert", {"tenant": tenant, "documents": docs})


@pytest.mark.slow
def test_serve_end_to_end_with_a_chroma_server_that_dies(
    tmp_path: Path, own_chroma_server: ChromaServer
) -> None:
    rng = random.Random(7)
    config = env_file(tmp_path, own_chroma_server.url)
    key, _ = add_key(tmp_path / "keys.json", list(TENANTS), status=True)
    with ServeProcess(tmp_path, config) as serve, Client(serve.url, key) as client:
        # 1. traffic with both stores up; reads once the target has caught up, so that the
        #    shadow reads compare like with like
        for tenant in TENANTS:
            for batch in range(3):
                ids = [f"{tenant}-{batch}-{i}" for i in range(20)]
                r = client.upsert(tenant, ids, rng)
                assert r.status_code == 200, r.text
                assert r.json()["dual_write"]["backend"] == "chroma"
        wait_for(lambda: client.status()["outbox"]["size"] == 0, "outbox applied")
        hits = client.post("search", {"tenant": "acme", "vector": vector(rng), "k": 5},
                           traceparent=f"00-{TRACE}-b7ad6b7169203331-01")  # fmt: skip
        assert hits.status_code == 200 and hits.json()["backend"] == "faiss"
        assert len(hits.json()["hits"]) == 5 and hits.json()["trace_id"] == TRACE
        for _ in range(10):
            assert client.post("search", {"tenant": "globex", "vector": vector(rng), "k": 10}
                               ).status_code == 200  # fmt: skip
        deleted = client.post("delete", {"tenant": "acme", "doc_ids": ["acme-0-0", "acme-0-1"]})
        assert deleted.status_code == 200 and deleted.json()["deleted"] == 2
        assert client.post("search", {"tenant": "acme", "vector": [0.0] * 8, "k": 1}
                           ).status_code == 422  # fmt: skip

        wait_for(lambda: client.status()["outbox"]["size"] == 0, "outbox applied")
        wait_for(lambda: client.status()["router"]["shadow"]["answered"] >= 11, "shadows done")

        # 2. the Chroma server dies: every write and read still succeeds, before and after
        #    the breaker opens (the background applier's failures open it)
        own_chroma_server.kill()
        outcomes: list[str] = []
        round_ = 0
        deadline = time.monotonic() + 60
        while round_ < 6 or "queued" not in outcomes[-2:]:
            assert time.monotonic() < deadline, f"the breaker never opened: {outcomes}"
            for tenant in TENANTS:
                ids = [f"{tenant}-down-{round_}-{i}" for i in range(10)]
                r = client.upsert(tenant, ids, rng)
                assert r.status_code == 200, r.text
                outcomes.append(r.json()["dual_write"]["outcome"])
                s = client.post("search", {"tenant": tenant, "vector": vector(rng), "k": 5})
                assert s.status_code == 200 and s.json()["backend"] == "faiss", s.text
                assert len(s.json()["hits"]) == 5
            gone = client.post("delete", {"tenant": "globex", "doc_ids": [f"globex-1-{round_}"]})
            assert gone.status_code == 200, gone.text
            round_ += 1
            time.sleep(0.05)
        status = client.status()
        assert status["breaker"]["state"] == "open"
        assert status["outbox"]["size"] > 0
        chroma = next(b for b in status["backends"] if b["kind"] == "chroma")
        assert chroma["reachable"] is False

        metrics = httpx.get(f"{serve.url}/metrics", timeout=10).text
        for name in CONTRACT_METRICS:
            assert f"# TYPE {name} " in metrics, name
        for produced in (
            "retrieval_shadow_latency_seconds_bucket", "retrieval_shadow_agreement_at_5_count",
            "retrieval_shadow_ndcg_at_10_sum", "retrieval_dual_read_score_delta_count",
            "retrieval_dual_read_latency_delta_seconds_count", "retrieval_total{",
            "retrieval_duration_seconds_bucket", "retrieval_shadow_errors_total{",
            'retrieval_dual_write_skipped_total{env="local",reason="circuit_open"',
            "retrieval_dual_write_errors_total{", "retrieval_build_info{",
        ):  # fmt: skip
            assert produced in metrics, produced
        skipped = [ln for ln in metrics.splitlines()
                   if ln.startswith("retrieval_dual_write_skipped_total{")]  # fmt: skip
        assert float(skipped[0].rsplit(" ", 1)[1]) > 0

        # 3. the server is back: the replay script drains the outbox, reconcile finds no drift
        own_chroma_server.start()
        replay = run_cli(
            [sys.executable, str(ROOT / "scripts" / "replay_outbox.py"), "--env-file",
             str(config), "--json"], tmp_path,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        report = json.loads(replay.stdout)
        assert report["remaining"] == 0 and report["failed"] == 0 and report["replayed"] > 0
        reconcile = run_cli(
            [sys.executable, "-m", "shadowswap", "reconcile", "--env-file", str(config), "--json"],
            tmp_path,
        )
        assert reconcile.returncode == 0, reconcile.stderr
        assert json.loads(reconcile.stdout)["drift"] == 0
        after = client.status()
        assert after["outbox"]["size"] == 0
        assert after["reconcile"]["drift"] == 0 and after["reconcile"]["ok"] is True

        # 4. a graceful stop
        assert serve.stop() == 0
    lines = serve.lines()  # every line is JSON (json.loads would fail otherwise)
    startup = next(ln for ln in lines if ln.get("event") == "startup")
    assert startup["primary"]["kind"] == "faiss" and startup["target"]["kind"] == "chroma"
    assert "primary faiss" in startup["msg"] and startup["phase"] == "shadow_read"
    assert startup["flags"]["FF_RETRIEVAL_DUAL_WRITE"] == "ON"
    assert startup["versions"]["shadowswap"]
    access = [ln for ln in lines if ln["logger"] == "shadowswap.service.access"]
    assert len(access) > 40 and all(len(ln["trace_id"]) == 32 for ln in access)
    traced = [ln for ln in lines if ln.get("trace_id") == TRACE]
    assert any(ln["logger"] == "shadowswap.service.access" and ln["tenant"] == "acme"
               for ln in traced)  # fmt: skip
    log_text = serve.text()
    assert SECRET_TEXT not in log_text and SECRET_META not in log_text
    assert key not in log_text


def test_serve_refuses_to_start_without_a_keys_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"RETRIEVAL_FAISS_URL={tmp_path / 'faiss'}\n"
        f"RETRIEVAL_API_KEYS_FILE={tmp_path / 'missing.json'}\n"
    )
    out = run_cli([sys.executable, "-m", "shadowswap", "serve", "--env-file", ".env",
                   "--port", "0"], tmp_path, timeout=60)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "RETRIEVAL_API_KEYS_FILE" in out.stderr and "keys add" in out.stderr
    assert "Traceback" not in out.stderr
    (tmp_path / "missing.json").write_text("{broken")
    corrupt = run_cli([sys.executable, "-m", "shadowswap", "serve", "--env-file", ".env",
                       "--port", "0"], tmp_path, timeout=60)  # fmt: skip
    assert corrupt.returncode == 2 and "not valid JSON" in corrupt.stderr
    (tmp_path / ".env").write_text(f"RETRIEVAL_FAISS_URL={tmp_path / 'faiss'}\n")
    unset = run_cli([sys.executable, "-m", "shadowswap", "serve", "--env-file", ".env",
                     "--port", "0"], tmp_path, timeout=60)  # fmt: skip
    assert unset.returncode == 2 and "RETRIEVAL_AUTH is ON and no keys file" in unset.stderr


def test_serve_refuses_workers_for_engines_one_process_must_own(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "RETRIEVAL_AUTH=OFF\nRETRIEVAL_TARGET_BACKEND=chroma\n"
        f"RETRIEVAL_CHROMA_URL={tmp_path / 'chroma'}\n"
    )
    out = run_cli([sys.executable, "-m", "shadowswap", "serve", "--env-file", ".env",
                   "--workers", "2", "--port", "0"], tmp_path, timeout=60)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "--workers" in out.stderr and "embedded Chroma" in out.stderr


def test_auth_off_warns_at_start_and_sigint_stops_cleanly(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"RETRIEVAL_AUTH=OFF\nRETRIEVAL_FAISS_URL={tmp_path / 'faiss'}\n"
        f"RETRIEVAL_DUAL_WRITE_OUTBOX_URL={tmp_path / 'outbox.sqlite3'}\n"
    )
    with ServeProcess(tmp_path, tmp_path / ".env") as serve:
        r = httpx.post(f"{serve.url}/internal/retrieval/search",
                       json={"tenant": "t", "vector": [1, 0], "k": 1}, timeout=10)  # fmt: skip
        assert r.status_code == 200
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGINT)
        assert serve.proc.wait(timeout=60) in (0, 130, -signal.SIGINT)
    warnings = [ln for ln in serve.lines() if ln.get("event") == "auth_off"]
    assert warnings and warnings[0]["level"] == "warning"

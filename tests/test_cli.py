"""The CLI and the runbook script, run as real processes: output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from shadowswap.similarity import Metric
from shadowswap.stores.chroma import ChromaStore
from shadowswap.testing import clustered_corpus
from tests.helpers import ROOT, cli, run
from tests.servers import free_port
from tests.settings.test_config import CONTRACT_DEFAULTS

SCRIPT = ROOT / "scripts" / "test_vector_store_connection.py"


def test_config_json_shows_every_contract_default(tmp_path: Path) -> None:
    out = run(cli("config", "--json"), tmp_path)
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)
    for name, default in CONTRACT_DEFAULTS.items():
        assert values[name] == default, name


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FF_RETRIEVAL_SHADOW_SAMPLE_RATE", "1.5"),
        ("RETRIEVAL_BACKEND", "mongo"),
        ("RETRIEVAL_SHADOW_TIMEOUT_MS", "-1"),
    ],
)
def test_bad_value_exits_2_naming_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    out = run(cli("config", "--json"), tmp_path, {variable: value})
    assert out.returncode == 2
    assert out.stdout == ""
    assert variable in out.stderr and value in out.stderr and "Traceback" not in out.stderr
    assert "environment wins over the env file" in out.stderr  # where to fix it
    assert "run 'shadowswap config'" not in out.stderr  # not: run the command that just failed


def test_config_reads_an_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env.staging").write_text("export FF_RETRIEVAL_SHADOW_READ=on\n")
    out = run(cli("config", "--env-file", ".env.staging", "--json"), tmp_path)
    assert json.loads(out.stdout)["FF_RETRIEVAL_SHADOW_READ"] == "ON"
    human = run(cli("config", "--env-file", ".env.staging"), tmp_path)
    assert "env file .env.staging" in human.stdout
    missing = run(cli("config", "--env-file", "nope.env"), tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_connection_script_passes_on_default_embedded_stores(tmp_path: Path) -> None:
    out = run([sys.executable, str(SCRIPT)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "faiss" in out.stdout and "reachable" in out.stdout
    both = run(
        [sys.executable, str(SCRIPT), "--json"], tmp_path, {"RETRIEVAL_TARGET_BACKEND": "chroma"}
    )
    assert both.returncode == 0, both.stderr
    report = json.loads(both.stdout)
    assert report["ok"] is True
    assert [(b["role"], b["kind"], b["reachable"]) for b in report["backends"]] == [
        ("primary", "faiss", True),
        ("target", "chroma", True),
    ]
    assert (tmp_path / "data" / "faiss" / "catalog.sqlite3").exists()
    assert (tmp_path / "chroma_db").is_dir()


def test_connection_script_reports_a_server_with_data(
    tmp_path: Path, chroma_server_url: str
) -> None:
    store = ChromaStore(chroma_server_url)
    store.upsert("t1", clustered_corpus("t1", 25, 8, queries=0).documents)
    try:
        out = run(
            [sys.executable, str(SCRIPT), "chroma", "--json"],
            tmp_path,
            {"RETRIEVAL_CHROMA_URL": chroma_server_url},
        )
        assert out.returncode == 0, out.stderr
        (backend,) = json.loads(out.stdout)["backends"]
        assert (
            backend["documents"] == 25
            and backend["dimension"] == 8
            and backend["round_trip_ms"] > 0
        )
    finally:
        store.delete("t1", [d.doc_id for d in clustered_corpus("t1", 25, 8, queries=0).documents])
        store.close()


def test_connection_script_exits_1_when_unreachable(tmp_path: Path) -> None:
    env = {
        "RETRIEVAL_TARGET_BACKEND": "chroma",
        "RETRIEVAL_CHROMA_URL": f"http://127.0.0.1:{free_port()}",
    }
    out = run([sys.executable, str(SCRIPT), "--backend", "target"], tmp_path, env)
    assert out.returncode == 1
    assert "NOT REACHABLE" in out.stdout and "cannot reach" in out.stdout
    assert "Traceback" not in out.stderr


def test_connection_script_exits_2_on_bad_configuration(tmp_path: Path) -> None:
    out = run([sys.executable, str(SCRIPT)], tmp_path, {"RETRIEVAL_BACKEND": "mongo"})
    assert out.returncode == 2 and "RETRIEVAL_BACKEND" in out.stderr
    out = run([sys.executable, str(SCRIPT), "--backend", "pinecone"], tmp_path)
    assert out.returncode == 2 and "RETRIEVAL_PINECONE_URL" not in out.stdout


def test_corrupt_store_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "data" / "faiss").mkdir(parents=True)
    (tmp_path / "data" / "faiss" / "catalog.sqlite3").write_bytes(b"garbage" * 1000)
    out = run([sys.executable, str(SCRIPT)], tmp_path)
    assert out.returncode == 1
    assert "catalog.sqlite3" in out.stdout and "Traceback" not in out.stderr + out.stdout


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = run(cli("demo", "--workdir", str(tmp_path / "demo"), "--docs", "300", "--json"), tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True and report["drift"] == 0
    assert report["documents"] == 900 and report["agreement_at_5"] >= 0.95
    assert [s["name"] for s in report["steps"]][-1] == "verify again"


def test_usage_error_exits_2(tmp_path: Path) -> None:
    assert run(cli("config", "--no-such-flag"), tmp_path).returncode == 2


def _chroma_collection_ranked_by_l2(where: Path) -> None:
    """What issue 15 found: a Chroma tenant collection whose HNSW space is l2 (made by hand, or
    left by a store made with RETRIEVAL_METRIC=l2 whose record was lost)."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(where), settings=Settings(anonymized_telemetry=False)
    )
    client.create_collection(
        "ss_acme_t", embedding_function=None, configuration={"hnsw": {"space": "l2"}}
    ).add(ids=["held"], embeddings=[[1.0, 0.0, 0.0, 0.0]])


def test_check_refuses_a_chroma_collection_of_another_space(tmp_path: Path) -> None:
    _chroma_collection_ranked_by_l2(tmp_path / "chroma_db")
    env = {"RETRIEVAL_METRIC": "cosine"}
    out = run(cli("check", "--backend", "chroma"), tmp_path, env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "collection 'ss_acme_t' at ./chroma_db uses space 'l2'" in out.stdout
    assert "RETRIEVAL_METRIC is 'cosine'" in out.stdout
    assert "set RETRIEVAL_METRIC=l2, or point RETRIEVAL_CHROMA_URL at a new location" in out.stdout
    assert "metric=cosine" not in out.stdout  # not reported as a healthy cosine store
    assert "Traceback" not in out.stdout + out.stderr
    as_json = run(cli("check", "--backend", "chroma", "--json"), tmp_path, env)
    (backend,) = json.loads(as_json.stdout)["backends"]
    assert as_json.returncode == 1 and backend["reachable"] is False
    assert backend["metric"] is None and "space 'l2'" in backend["detail"]
    fixed = run(cli("check", "--backend", "chroma"), tmp_path, {"RETRIEVAL_METRIC": "l2"})
    assert fixed.returncode == 0 and "metric=l2" in fixed.stdout, fixed.stdout + fixed.stderr


def test_backfill_into_a_chroma_collection_of_another_space_exits_1_with_one_line(
    tmp_path: Path,
) -> None:
    from shadowswap.stores.faiss import FaissStore

    source = FaissStore(tmp_path / "data" / "faiss")
    source.upsert("acme", clustered_corpus("acme", 20, 4, queries=0).documents)
    source.close()
    _chroma_collection_ranked_by_l2(tmp_path / "chroma_db")
    out = run(
        cli("backfill", "--from", "faiss", "--to", "chroma", "--no-progress"),
        tmp_path,
        {"RETRIEVAL_METRIC": "cosine"},
    )
    assert out.returncode == 1, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("shadowswap: error:")]
    assert len(errors) == 1, out.stderr
    assert "space 'l2'" in errors[0] and "RETRIEVAL_METRIC is 'cosine'" in errors[0]
    assert "set RETRIEVAL_METRIC=l2" in errors[0]
    assert "Traceback" not in out.stdout + out.stderr
    chroma = ChromaStore(str(tmp_path / "chroma_db"), Metric.L2)
    assert chroma.count("acme") == 1  # nothing was copied into it
    chroma.close()

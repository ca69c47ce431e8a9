"""The runtime factory wires real stores, router, writer and outbox from settings."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from shadowswap.runtime import build_runtime
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.testing import clustered_corpus


def test_runtime_writes_to_both_stores_and_reads_from_the_primary(tmp_path: Path) -> None:
    env = {
        "RETRIEVAL_BACKEND": "faiss",
        "RETRIEVAL_TARGET_BACKEND": "chroma",
        "RETRIEVAL_FAISS_URL": str(tmp_path / "faiss"),
        "RETRIEVAL_CHROMA_URL": str(tmp_path / "chroma"),
        "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": str(tmp_path / "outbox.sqlite3"),
        "FF_RETRIEVAL_DUAL_WRITE": "ON",
        "METRIC_ENV": "stg",
    }
    corpus = clustered_corpus("acme", 50, 8, queries=1)
    registry = CollectorRegistry()
    with build_runtime(StaticSettings(load_settings(environ=env)), registry=registry) as rt:
        result = rt.writer.upsert("acme", corpus.documents)
        assert result.written == 50
        assert rt.writer.flush(30.0)
        assert rt.target is not None and rt.target.count("acme") == 50
        answer = rt.router.search("acme", corpus.queries[0], 5)
        assert answer.backend == "faiss" and len(answer.hits) == 5
    text = generate_latest(registry).decode()
    assert "retrieval_build_info{app_version=" in text and 'env="stg"' in text
    assert 'retrieval_total{backend="faiss",env="stg",outcome="ok",role="primary"' in text

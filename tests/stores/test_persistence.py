"""Stores that live on disk survive a restart, refuse another metric, and report corruption."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowswap.errors import CorruptStore, IncompatibleStore, StoreUnavailable
from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing import clustered_corpus
from tests.servers import free_port


def _open(kind: str, where: str, metric: Metric = Metric.COSINE) -> BaseStore:
    return FaissStore(where, metric) if kind == "faiss" else ChromaStore(where, metric)


@pytest.mark.parametrize("kind", ["faiss", "chroma"])
def test_restart_gives_identical_results(tmp_path: Path, kind: str) -> None:
    where = str(tmp_path / kind)
    corpus = clustered_corpus("t1", 800, 32, queries=10, seed=4)
    store = _open(kind, where)
    store.upsert("t1", corpus.documents)
    store.delete("t1", [d.doc_id for d in corpus.documents[:50]])
    before = [
        store.search("t1", q, 10, {"lang": "en"} if i % 2 else None)
        for i, q in enumerate(corpus.queries)
    ]
    hashes = {d.doc_id: d.content_hash for p in store.scan("t1") for d in p}
    store.close()

    again = _open(kind, where)
    assert again.dimension == 32 and again.count("t1") == 750
    after = [
        again.search("t1", q, 10, {"lang": "en"} if i % 2 else None)
        for i, q in enumerate(corpus.queries)
    ]
    assert [r.doc_ids for r in after] == [r.doc_ids for r in before]
    for x, y in zip(after, before, strict=True):
        assert [h.score for h in x.hits] == pytest.approx([h.score for h in y.hits], abs=1e-6)
    assert {d.doc_id: d.content_hash for p in again.scan("t1") for d in p} == hashes
    again.close()


@pytest.mark.parametrize("kind", ["faiss", "chroma"])
def test_reopening_with_another_metric_is_refused(tmp_path: Path, kind: str) -> None:
    where = str(tmp_path / kind)
    store = _open(kind, where, Metric.COSINE)
    store.upsert("t1", clustered_corpus("t1", 5, 4, queries=0).documents)
    store.close()
    with pytest.raises(IncompatibleStore, match=r"created with metric 'cosine'.*RETRIEVAL_METRIC"):
        _open(kind, where, Metric.L2).count("t1")


def test_a_faiss_catalog_without_a_metric_record_is_taken_as_configured_and_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """FAISS rebuilds its indexes from the catalog with the recorded metric: a catalog holding
    documents but no metric record is accepted under RETRIEVAL_METRIC with a warning, and the
    metric is recorded."""
    import sqlite3

    store = FaissStore(tmp_path / "f", Metric.L2)
    store.upsert("t1", clustered_corpus("t1", 5, 4, queries=0).documents)
    store.close()
    with sqlite3.connect(tmp_path / "f" / "catalog.sqlite3") as db:
        db.execute("DELETE FROM meta WHERE key = 'metric'")
    again = FaissStore(tmp_path / "f", Metric.L2)
    assert again.count("t1") == 5 and again.dimension == 4
    again.close()
    assert "no record of its metric" in caplog.text
    with pytest.raises(IncompatibleStore, match=r"created with metric 'l2', not 'cosine'"):
        FaissStore(tmp_path / "f", Metric.COSINE)


def test_faiss_sees_writes_of_another_process_handle(tmp_path: Path) -> None:
    """Two handles on one directory (as two processes would have): searches stay current."""
    corpus = clustered_corpus("t1", 200, 8, queries=1, seed=2)
    writer, reader = FaissStore(tmp_path / "f"), FaissStore(tmp_path / "f")
    writer.upsert("t1", corpus.documents[:100])
    assert len(reader.search("t1", corpus.queries[0], 500).hits) == 100
    writer.upsert("t1", corpus.documents[100:])
    writer.delete("t1", [corpus.documents[0].doc_id])
    hits = reader.search("t1", corpus.queries[0], 500).doc_ids
    assert len(hits) == 199 and corpus.documents[0].doc_id not in hits
    writer.close()
    reader.close()


def test_corrupt_faiss_catalog_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    catalog = tmp_path / "f" / "catalog.sqlite3"
    catalog.write_bytes(b"this is not a database, it is garbage" * 100)
    with pytest.raises(CorruptStore, match=r"catalog\.sqlite3.*move the file away"):
        FaissStore(tmp_path / "f")


def test_unwritable_faiss_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot create"):
        FaissStore(blocker / "sub")


def test_unreachable_chroma_server_is_reported_not_raised() -> None:
    store = ChromaStore(f"http://127.0.0.1:{free_port()}")
    health = store.health()
    assert not health.reachable
    assert "cannot reach" in health.detail
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        store.count("t1")


def test_a_chroma_collection_of_another_space_is_refused_and_no_record_is_made(
    tmp_path: Path,
) -> None:
    """Issue 15: a tenant collection whose HNSW space is l2 (here one without a store record,
    as a record lost would leave it) must not be opened under cosine, where it would rank by
    l2 while reporting cosine; the refusal must not record cosine for the store either."""
    import chromadb
    from chromadb.config import Settings

    where = str(tmp_path / "chroma")
    client = chromadb.PersistentClient(path=where, settings=Settings(anonymized_telemetry=False))
    col = client.create_collection(
        "ss_t1_t", embedding_function=None, configuration={"hnsw": {"space": "l2"}}
    )
    col.add(ids=["a"], embeddings=[[1.0, 0.0]])
    store = ChromaStore(where, Metric.COSINE)
    with pytest.raises(IncompatibleStore) as info:
        store.count("t1")
    message = str(info.value)
    assert "collection 'ss_t1_t'" in message and where in message
    assert "space 'l2'" in message and "RETRIEVAL_METRIC is 'cosine'" in message
    assert "set RETRIEVAL_METRIC=l2, or point RETRIEVAL_CHROMA_URL at a new location" in message
    health = store.health()
    assert not health.reachable and health.metric is None and "space 'l2'" in health.detail
    store.close()
    again = ChromaStore(where, Metric.L2)  # what the message says to do works
    assert again.count("t1") == 1
    again.close()
    with pytest.raises(IncompatibleStore, match="created with metric 'l2'"):
        ChromaStore(where, Metric.COSINE).count("t1")  # and the store is now recorded as l2


def test_a_chroma_collection_of_chromas_own_cosine_space_is_refused(tmp_path: Path) -> None:
    """Chroma's ``cosine`` space renormalises stored vectors: no metric of ours runs on it."""
    import chromadb
    from chromadb.config import Settings

    where = str(tmp_path / "chroma")
    client = chromadb.PersistentClient(path=where, settings=Settings(anonymized_telemetry=False))
    client.create_collection(
        "ss_t1_t", embedding_function=None, metadata={"hnsw:space": "cosine"}
    ).add(ids=["a"], embeddings=[[1.0, 0.0]])
    with pytest.raises(IncompatibleStore) as info:
        ChromaStore(where, Metric.COSINE).count("t1")
    message = str(info.value)
    assert "space 'cosine' (no metric shadowswap ranks by)" in message
    assert "RETRIEVAL_METRIC=" not in message and "new location" in message

"""Issue 16, finding 3: metadata that a store gives back changed never reconciled, and
``reconcile --repair`` recorded drift 0 that it had not seen. Here: values every store holds
alike after dual write (the failures the property test found, one test each), and a repair
that re-reads what it wrote and reports what is left."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shadowswap.cli import sync as cli_sync
from shadowswap.cli.app import app
from shadowswap.settings.config import Settings
from shadowswap.similarity import Metric
from shadowswap.stores import open_store
from shadowswap.stores.base import BaseStore, VectorStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.stores.qdrant import QdrantStore
from shadowswap.sync.reconcile import Reconcile, load_last
from shadowswap.testing.faults import AlteringStore, DroppingStore
from shadowswap.values import Document
from tests.sync.dual import dual_writer

T = "acme"
#: floats serde_json's default parser (Chroma, Qdrant) reads a few ULPs off, found by the
#: property test: one in ten computed floats is like these
ULP_FLOATS = (4.32849e-21, 1.1777532280701834e257, 6.501774128483169e-168, 8.6836e-21)


def reconciled(primary: VectorStore, target: VectorStore, **options: object) -> int:
    return Reconcile(primary, target, **options).run().drift  # type: ignore[arg-type]


def test_negative_zero_through_dual_write_into_chroma_reconciles(tmp_path: Path) -> None:
    primary = FaissStore(tmp_path / "faiss", Metric.COSINE)
    target = ChromaStore(str(tmp_path / "chroma"), Metric.COSINE)
    with dual_writer(primary, target, tmp_path / "outbox.sqlite3") as writer:
        writer.upsert(T, [Document(T, "z", [1.0, 0.0], {"delta": -0.0, "n": 1})])
    assert target.count(T) == 1
    assert reconciled(primary, target) == 0
    report = Reconcile(primary, target, repair=True).run()
    assert (report.found.total, report.drift) == (0, 0)
    stored = primary.get(T, ["z"])["z"].metadata["delta"]
    assert stored == 0.0 and math.copysign(1.0, stored) == 1.0  # normalised as in vectors


@pytest.mark.parametrize("kind", ["chroma", "qdrant-edge"])
def test_floats_the_engine_reads_inexactly_reconcile_after_dual_write(
    tmp_path: Path, kind: str
) -> None:
    primary = FaissStore(tmp_path / "faiss", Metric.COSINE)
    target: BaseStore = (
        ChromaStore(str(tmp_path / "chroma"), Metric.COSINE)
        if kind == "chroma"
        else QdrantStore(str(tmp_path / "qdrant"), Metric.COSINE)
    )
    docs = [Document(T, f"f{i}", [1.0, float(i)], {"score": v}) for i, v in enumerate(ULP_FLOATS)]
    try:
        with dual_writer(primary, target, tmp_path / "outbox.sqlite3") as writer:
            writer.upsert(T, docs)
        assert target.count(T) == len(docs)
        assert reconciled(primary, target) == 0
        ids = [d.doc_id for d in docs]
        held, wrote = target.get(T, ids), primary.get(T, ids)
        assert {i: d.content_hash for i, d in held.items()} == {
            i: d.content_hash for i, d in wrote.items()
        }
        assert [held[i].metadata["score"] for i in ids] == [d.metadata["score"] for d in docs]
    finally:
        target.close()


def bump(doc: Document) -> Document:
    """What a store that changes a value on the way in gives back."""
    return Document(doc.tenant, doc.doc_id, doc.vector, {**doc.metadata, "rev": 1}, doc.text)


def drifted_pair() -> tuple[MemoryStore, MemoryStore]:
    primary, inner = MemoryStore(), MemoryStore()
    docs = [Document(T, f"d{i}", [1.0, float(i)], {"rev": 0}) for i in range(5)]
    primary.upsert(T, docs)
    inner.upsert(T, docs[:3])  # d3, d4 missing
    return primary, inner


def test_a_repair_whose_writes_come_back_changed_reports_the_drift_left() -> None:
    primary, inner = drifted_pair()
    target = AlteringStore(inner, lambda d: bump(d) if d.doc_id == "d4" else d)
    report = Reconcile(primary, target, repair=True).run()
    assert report.found.missing == 2
    assert (report.drift, report.stale, report.ok) == (1, 1, False)
    assert report.tenants[0].not_fixed == ("d4",)
    assert report.as_dict()["tenants"][T]["left_after_repair"] == 1
    again = Reconcile(primary, target).run()
    assert again.drift == report.drift == 1  # what the repair said is what is there


def test_a_repair_whose_writes_are_not_kept_reports_the_drift_left() -> None:
    primary, inner = drifted_pair()
    target = DroppingStore(inner)
    report = Reconcile(primary, target, repair=True).run()
    assert (report.found.missing, report.missing, report.ok) == (2, 2, False)
    assert Reconcile(primary, target).run().drift == 2


def test_reconcile_repair_command_exits_1_and_records_the_drift_it_saw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI with a target that keeps a changed value: exit 1, the JSON and
    reconcile_last.json say drift 1 (before the fix: exit 0 and drift 0, which unlocked the
    swap), and a second reconcile agrees."""
    env = {
        "RETRIEVAL_BACKEND": "faiss",
        "RETRIEVAL_TARGET_BACKEND": "chroma",
        "RETRIEVAL_FAISS_URL": str(tmp_path / "faiss"),
        "RETRIEVAL_CHROMA_URL": str(tmp_path / "chroma"),
        "RETRIEVAL_STATE_DIR": str(tmp_path / "state"),
        "FF_RETRIEVAL_DUAL_WRITE": "ON",
    }
    with FaissStore(tmp_path / "faiss", Metric.COSINE) as primary:
        primary.upsert(T, [Document(T, f"d{i}", [1.0, float(i)], {"rev": 0}) for i in range(4)])

    def opened(kind: str, settings: Settings) -> VectorStore:
        store = open_store(kind, settings)
        if kind == "chroma":
            return AlteringStore(store, lambda d: bump(d) if d.doc_id == "d2" else d)  # type: ignore[return-value]
        return store

    monkeypatch.setattr(cli_sync, "open_store", opened)
    for key in list(env):
        monkeypatch.delenv(key, raising=False)
    runner = CliRunner()
    repaired = runner.invoke(app, ["reconcile", "--repair", "--json", "--no-progress"], env=env)
    assert repaired.exit_code == 1, repaired.output
    result = json.loads(repaired.stdout)
    assert (result["found"]["drift"], result["drift"], result["ok"]) == (4, 1, False)
    assert result["tenants"][T]["stale"] == 1
    assert (result["left_after_repair"], result["repaired"]) == (1, 3)
    last = load_last(tmp_path / "state")
    assert last is not None and (last["drift"], last["ok"]) == (1, False)
    again = runner.invoke(app, ["reconcile", "--json", "--no-progress"], env=env)
    assert again.exit_code == 1 and json.loads(again.stdout)["drift"] == 1

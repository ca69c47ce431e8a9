"""Reconcile on real engines: every kind of drift found, repaired, purged; memory bounded."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from shadowswap.policy import read_role
from shadowswap.settings.config import Settings
from shadowswap.stores.base import BaseStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.sync.backfill import Backfill
from shadowswap.sync.reconcile import (
    Reconcile,
    load_last,
    purge_delta,
    reconcile,
    save_last,
)
from shadowswap.values import Document
from tests.sync.conftest import Opener, changed, corpus, hashes, load
from tests.sync.hooks import Hooked

PAIRS = [("faiss", "chroma"), ("chroma", "faiss")]
T = "acme"


def twins(
    open_store_of: Opener, first: str, second: str, n: int = 400
) -> tuple[BaseStore, BaseStore]:
    a, b = open_store_of(first, "a"), open_store_of(second, "b")
    load(a, T, n)
    Backfill(a, b).run()
    return a, b


def drift_on_both_sides(source: BaseStore, replica: BaseStore) -> dict[str, set[str]]:
    """Add, change and delete documents on each side; return the expected kinds."""
    docs = {d.doc_id: d for d in corpus(T, 400)}
    new_src = Document(T, "new-in-source", [0.6, 0.8] + [0.0] * 14)
    new_rep = Document(T, "new-in-replica", [0.8, 0.6] + [0.0] * 14)
    source.upsert(T, [new_src, changed(docs["acme-doc-000010"])])
    source.delete(T, ["acme-doc-000020"])
    replica.upsert(T, [new_rep, changed(docs["acme-doc-000030"])])
    replica.delete(T, ["acme-doc-000040"])
    return {
        "missing": {"new-in-source", "acme-doc-000040"},
        "extra": {"new-in-replica", "acme-doc-000020"},
        "stale": {"acme-doc-000010", "acme-doc-000030"},
    }


@pytest.mark.parametrize(("first", "second"), PAIRS)
@pytest.mark.parametrize("truth", ["primary", "target"])
def test_changes_on_either_side_are_found_with_their_kind_and_repaired(
    open_store_of: Opener, first: str, second: str, truth: str
) -> None:
    primary, target = twins(open_store_of, first, second)
    source, replica = (primary, target) if truth == "primary" else (target, primary)
    expected = drift_on_both_sides(source, replica)
    report = Reconcile(primary, target, source=truth, batch_size=3).run()  # type: ignore[arg-type]
    (tenant,) = report.tenants
    assert (tenant.source, tenant.replica) == (source.kind, replica.kind)
    assert {k: set(v) for k, v in tenant.examples.items()} == expected
    assert (report.missing, report.extra, report.stale, report.drift) == (2, 2, 2, 6)
    assert report.found == report.left and not report.ok
    repaired = Reconcile(primary, target, source=truth, repair=True, batch_size=3).run()  # type: ignore[arg-type]
    assert repaired.found.total == 6 and repaired.drift == 0 and repaired.ok
    assert repaired.as_dict()["found"] == {"missing": 2, "extra": 2, "stale": 2, "drift": 6}
    assert (repaired.tenants[0].written, repaired.tenants[0].deleted) == (4, 2)
    assert hashes(replica, T) == hashes(source, T)
    assert Reconcile(primary, target, source=truth).run().drift == 0  # type: ignore[arg-type]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_purge_delta_deletes_only_what_the_source_lacks(
    open_store_of: Opener, first: str, second: str
) -> None:
    source, replica = twins(open_store_of, first, second)
    expected = drift_on_both_sides(source, replica)
    report = purge_delta(source, replica)
    assert report.found.extra == 2 and report.tenants[0].deleted == 2
    assert (report.missing, report.extra, report.stale) == (2, 0, 2)  # the rest is left alone
    assert report.drift == 4 and not report.ok
    after = reconcile(source, replica)
    assert after.extra == 0
    assert {k: set(v) for k, v in after.tenants[0].examples.items()} == {
        **expected,
        "extra": set(),
    }


def test_the_source_of_truth_follows_each_tenants_reads(open_store_of: Opener) -> None:
    """A cut-over tenant's reads come from the target: reconcile repairs the primary."""
    primary, target = open_store_of("faiss", "p"), open_store_of("chroma", "t")
    load(primary, "stay", 50)
    load(target, "moved", 50, seed=3)
    settings = Settings(  # type: ignore[call-arg]
        RETRIEVAL_TARGET_BACKEND="chroma",
        RETRIEVAL_CUTOVER_TENANTS="moved",
        FF_RETRIEVAL_DUAL_WRITE="ON",  # reads move only for tenants kept in step
    )
    report = Reconcile(primary, target, source=lambda t: read_role(settings, t), repair=True).run()
    by_tenant = {t.tenant: t for t in report.tenants}
    assert (by_tenant["stay"].source, by_tenant["stay"].found.missing) == ("faiss", 50)
    assert (by_tenant["moved"].source, by_tenant["moved"].found.missing) == ("chroma", 50)
    assert by_tenant["moved"].source_role == "target"
    assert hashes(primary, "moved") == hashes(target, "moved")  # copied into the primary
    assert hashes(target, "stay") == hashes(primary, "stay")
    assert report.as_dict()["source"] == "serving"


def test_a_tenant_only_in_the_replica_is_all_extra() -> None:
    source, replica = MemoryStore(), MemoryStore()
    replica.upsert("ghost", corpus("ghost", 12))
    report = reconcile(source, replica)
    assert [(t.tenant, t.extra) for t in report.tenants] == [("ghost", 12)]
    purge_delta(source, replica)
    assert replica.tenants() == []


def test_repair_beside_a_concurrent_writer_keeps_the_newer_version(open_store_of: Opener) -> None:
    primary, inner = twins(open_store_of, "faiss", "chroma", n=100)
    docs = corpus(T, 100)
    primary.upsert(T, [changed(docs[5], "v2")])  # drift: stale in the target
    newer = changed(docs[5], "v3")
    target = Hooked(inner)

    def dual_write(_t: str, _batch: Any) -> bool:
        primary.upsert(T, [newer])  # dual write: the primary first, then the target...
        inner.upsert(T, [newer])  # ...landing before the repair's (older) write
        return False

    target.on("upsert", dual_write)
    report = Reconcile(primary, target, repair=True).run()
    assert report.found.stale == 1 and report.drift == 0 and report.ok
    held = inner.get(T, [newer.doc_id])[newer.doc_id]
    assert held.metadata["rev"] == "v3"


def test_purge_beside_a_writer_that_recreates_the_document(open_store_of: Opener) -> None:
    """The purge decided to delete an extra document; before the delete lands, dual write
    creates it in the source and the target. The purge must not leave it deleted."""
    source, inner = twins(open_store_of, "faiss", "chroma", n=50)
    extra = Document(T, "zz-extra", [0.0, 1.0] + [0.0] * 14)
    inner.upsert(T, [extra])
    revived = Document(T, "zz-extra", [1.0] + [0.0] * 15, {"rev": "revived"})
    replica = Hooked(inner)

    def dual_write(*_a: Any) -> bool:
        source.upsert(T, [revived])
        inner.upsert(T, [revived])
        return False

    replica.on("delete", dual_write)
    report = purge_delta(source, replica)
    assert report.found.extra == 1 and report.drift == 0 and report.ok
    assert inner.get(T, ["zz-extra"])["zz-extra"].metadata["rev"] == "revived"


def test_examples_are_capped_and_counts_exact() -> None:
    source, replica = MemoryStore(), MemoryStore()
    source.upsert(T, corpus(T, 500))
    report = reconcile(source, replica, examples=10)
    assert report.missing == 500
    assert report.tenants[0].examples["missing"] == tuple(f"acme-doc-{i:06d}" for i in range(10))


def test_a_stop_request_ends_the_run_incomplete() -> None:
    source, replica = MemoryStore(), MemoryStore()
    for tenant in ("a", "b", "c"):
        source.upsert(tenant, corpus(tenant, 30))

    class AfterPages:
        def __init__(self) -> None:
            self.n = 0

        def is_set(self) -> bool:
            self.n += 1
            return self.n > 5  # a: 1 + 3 pages, b: 1 + its first page

    report = Reconcile(source, replica, batch_size=10, stop=AfterPages()).run()
    assert not report.complete and not report.ok
    # Tenant a was compared (3 pages), b stopped at its first page, c never started.
    assert [(t.tenant, t.source_docs) for t in report.tenants] == [("a", 30), ("b", 10)]


def test_last_result_is_saved_atomically_in_the_documented_format(tmp_path: Path) -> None:
    source, replica = MemoryStore(), MemoryStore()
    source.upsert(T, corpus(T, 5))
    report = reconcile(source, replica)
    path = save_last(report, tmp_path / "state")
    assert path == tmp_path / "state" / "reconcile_last.json"
    assert [p.name for p in path.parent.iterdir()] == ["reconcile_last.json"]  # no temp left
    data = load_last(tmp_path / "state")
    assert data is not None
    assert data["drift"] == 5 and data["tenants"][T]["missing"] == 5
    assert data["finished_at"].endswith("Z") and data["format"] == 1
    assert set(data["tenants"][T]) >= {"missing", "extra", "stale", "drift", "found"}
    assert load_last(tmp_path / "nowhere") is None


def _peak(source: BaseStore, replica: BaseStore, **kw: Any) -> tuple[int, Any]:
    list(source.scan(T, batch_size=1))  # build the store's own sorted id cache first
    list(replica.scan(T, batch_size=1))
    tracemalloc.start()
    try:
        report = reconcile(source, replica, batch_size=500, **kw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, report


def _drifted_pair(n: int) -> tuple[MemoryStore, MemoryStore]:
    source, replica = MemoryStore(), MemoryStore()
    docs = [Document(T, f"d{i:08d}", [1.0, float(i % 7)]) for i in range(n)]
    source.upsert(T, docs)
    replica.upsert(T, [d for i, d in enumerate(docs) if i % 10])  # 10% missing
    return source, replica


def test_memory_does_not_grow_with_the_tenant() -> None:
    small = _peak(*_drifted_pair(20_000))
    large = _peak(*_drifted_pair(40_000))
    assert small[1].missing == 2_000 and large[1].missing == 4_000
    # Twice the documents (and twice the drift): the peak stays that of a few pages.
    assert large[0] < small[0] * 1.1 + 16 * 1024, (small[0], large[0])


def test_repair_memory_does_not_grow_with_the_tenant(open_store_of: Opener) -> None:
    def pair(n: int, name: str) -> tuple[BaseStore, BaseStore]:
        a, b = open_store_of("faiss", f"a{name}"), open_store_of("faiss", f"b{name}")
        docs = [Document(T, f"d{i:08d}", [1.0, float(i % 7)]) for i in range(n)]
        for i in range(0, n, 5000):
            a.upsert(T, docs[i : i + 5000])
            b.upsert(T, [d for d in docs[i : i + 5000] if int(d.doc_id[1:]) % 20])
        return a, b

    small = _peak(*pair(10_000, "s"), repair=True)
    large = _peak(*pair(20_000, "l"), repair=True)
    assert small[1].ok and large[1].ok and large[1].found.missing == 1_000
    # Twice the tenant: a reconcile that held the tenant would need about twice the peak. The
    # repair's writes grow the replica's own id maps, and a dict resize there can land in the
    # traced window (seen: +16 % on a clean clone), hence the margin; 2x still fails.
    assert large[0] < small[0] * 1.4 + 16 * 1024, (small[0], large[0])


def test_a_chroma_server_target(open_store_of: Opener) -> None:
    primary, target = open_store_of("faiss"), open_store_of("chroma-server")
    load(primary, T, 300)
    assert Backfill(primary, target, batch_size=128).run().copied == 300
    expected = drift_on_both_sides(primary, target)
    report = reconcile(primary, target, repair=True)
    assert {k: set(v) for k, v in report.tenants[0].examples.items()} == expected
    assert report.ok and reconcile(primary, target).drift == 0


def test_the_rollback_purge_calls_purge_delta_on_real_stores(tmp_path: Path) -> None:
    """Issue 6's purge step (already on main) drives this module's `purge_delta`."""
    from shadowswap.rollout.purge import ReconcilePurge
    from shadowswap.stores.chroma import ChromaStore
    from shadowswap.stores.faiss import FaissStore

    settings = Settings(  # type: ignore[call-arg]
        RETRIEVAL_FAISS_URL=str(tmp_path / "faiss"), RETRIEVAL_CHROMA_URL=str(tmp_path / "chroma")
    )
    with FaissStore(tmp_path / "faiss") as faiss:
        load(faiss, T, 40)
    with ChromaStore(str(tmp_path / "chroma")) as chroma:
        load(chroma, T, 40)
        chroma.upsert(T, [Document(T, "written-during-cutover", [1.0] + [0.0] * 15)])
    line = ReconcilePurge(lambda: settings).run("faiss", "chroma")
    assert line.startswith(
        '{"left":{"missing":0,"extra":0,"stale":0},"found":{"missing":0,"extra":1'
    )
    with ChromaStore(str(tmp_path / "chroma")) as chroma:
        assert chroma.count(T) == 40

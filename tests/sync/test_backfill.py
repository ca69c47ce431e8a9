"""Backfill between real engines: complete, idempotent, resumable, paced, safe beside writers."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from shadowswap.clock import FakeClock
from shadowswap.errors import InvalidInput, StateError, StoreUnavailable
from shadowswap.logs import JsonFormatter
from shadowswap.stores.memory import MemoryStore
from shadowswap.sync.backfill import Backfill
from shadowswap.sync.checkpoint import FileCheckpoints, MemoryCheckpoints
from shadowswap.sync.progress import LineProgress
from shadowswap.sync.reconcile import Reconcile
from shadowswap.sync.retry import Retry
from shadowswap.values import Document
from tests.sync.conftest import Opener, changed, corpus, hashes, load
from tests.sync.hooks import Hooked, fail_times


@pytest.mark.parametrize(("src_kind", "dst_kind"), [("faiss", "chroma"), ("chroma", "faiss")])
def test_backfill_copies_every_tenant_exactly(
    open_store_of: Opener, src_kind: str, dst_kind: str
) -> None:
    source, dest = open_store_of(src_kind, "src"), open_store_of(dst_kind, "dst")
    load(source, "acme", 1200, seed=1)
    load(source, "globex", 300, seed=2)
    report = Backfill(source, dest, batch_size=250).run()
    assert report.ok and report.copied == 1500 and report.skipped == 0
    assert {t.tenant: t.written for t in report.tenants} == {"acme": 1200, "globex": 300}
    for tenant in ("acme", "globex"):
        assert hashes(dest, tenant) == hashes(source, tenant)
    assert Reconcile(source, dest).run().drift == 0
    # A second pass rewrites nothing: the destination already holds every hash.
    again = Backfill(source, dest, batch_size=250).run()
    assert (again.copied, again.skipped) == (0, 1500)


def test_only_the_named_tenants_are_copied(open_store_of: Opener) -> None:
    source, dest = open_store_of("faiss"), MemoryStore()
    load(source, "a", 20)
    load(source, "b", 20)
    report = Backfill(source, dest, tenants=["b"]).run()
    assert [t.tenant for t in report.tenants] == ["b"] and dest.tenants() == ["b"]


class StopAfter:
    """A stop signal that trips after ``n`` checks that saw a page (is_set calls)."""

    def __init__(self, pages: int) -> None:
        self.left = pages

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0


def test_resume_from_a_file_checkpoint_reads_no_finished_page(
    open_store_of: Opener, tmp_path: Path
) -> None:
    source = Hooked(open_store_of("faiss", "src"))
    dest = open_store_of("chroma", "dst")
    load(source.inner, "acme", 1000)
    cps = FileCheckpoints(tmp_path / "state", ("faiss", "x"), ("chroma", "y"))
    first = Backfill(source, dest, batch_size=100, checkpoints=cps, stop=StopAfter(7)).run()
    assert first.interrupted and not first.ok
    saved = cps.load("acme")
    assert saved is not None and not saved.complete
    assert saved.processed == first.processed == dest.count("acme")
    assert saved.after == f"acme-doc-{saved.processed - 1:06d}"
    # Resume: the scan starts after the checkpoint, so finished pages are never read again.
    seen: list[str] = []
    source.on("scan", lambda _t, page: seen.extend(d.doc_id for d in page) or True)
    second = Backfill(source, dest, batch_size=100, checkpoints=cps).run()
    assert second.ok
    assert min(seen) > saved.after and len(seen) == 1000 - saved.processed
    assert second.copied == 1000 - saved.processed and second.skipped == 0
    assert second.tenants[0].resumed_after_docs == saved.processed
    assert hashes(dest, "acme") == hashes(source.inner, "acme")
    done = cps.load("acme")
    assert done is not None and done.complete and done.written == 1000
    # A finished pass is not resumed: the next run is a new, write-free pass.
    third = Backfill(source, dest, batch_size=100, checkpoints=cps).run()
    assert (third.copied, third.skipped) == (0, 1000)


def test_the_in_flight_batch_is_found_unchanged_not_rewritten(open_store_of: Opener) -> None:
    """A kill between a batch's write and its checkpoint: on resume that batch is read again
    and the destination reports it unchanged."""
    source, dest = open_store_of("faiss"), open_store_of("chroma")
    docs = load(source, "acme", 500)
    cps = MemoryCheckpoints()
    Backfill(source, dest, batch_size=100, checkpoints=cps, stop=StopAfter(2)).run()
    saved = cps.load("acme")
    assert saved is not None and saved.processed == 200
    dest.upsert("acme", docs[200:300])  # written, but the run died before checkpointing
    resumed = Backfill(source, dest, batch_size=100, checkpoints=cps).run()
    assert (resumed.copied, resumed.skipped) == (200, 100)


def test_restart_ignores_the_checkpoint(open_store_of: Opener) -> None:
    source, dest = open_store_of("faiss"), MemoryStore()
    load(source, "acme", 300)
    cps = MemoryCheckpoints()
    Backfill(source, dest, batch_size=100, checkpoints=cps, stop=StopAfter(1)).run()
    again = Backfill(source, dest, batch_size=100, checkpoints=cps, restart=True).run()
    assert again.processed == 300 and again.skipped == 100


def test_a_newer_write_during_the_copy_is_never_overwritten(open_store_of: Opener) -> None:
    """Dual write changes a document between the backfill's read and its write, and its write
    to the destination lands first: verify-after-write must put the newer version back."""
    source, inner_dest = open_store_of("faiss", "src"), open_store_of("chroma", "dst")
    docs = load(source, "acme", 300)
    dest = Hooked(inner_dest)
    newer = changed(docs[150], "newer")
    gone = docs[160]

    def dual_write(_tenant: str, batch: Any) -> bool:
        if not any(d.doc_id == newer.doc_id for d in batch):
            return True  # not this batch yet: stay armed
        source.upsert("acme", [newer])  # the source of truth first...
        inner_dest.upsert("acme", [newer])  # ...then the other store, before our write
        source.delete("acme", [gone.doc_id])
        inner_dest.delete("acme", [gone.doc_id])
        return False

    dest.on("upsert", dual_write)
    report = Backfill(source, dest, batch_size=100).run()
    assert report.ok
    held = inner_dest.get("acme", [newer.doc_id, gone.doc_id])
    newest = source.get("acme", [newer.doc_id])[newer.doc_id]
    assert newest.metadata["rev"] == "newer"
    assert held[newer.doc_id].content_hash == newest.content_hash
    assert gone.doc_id not in held
    assert report.tenants[0].deleted == 1
    assert Reconcile(source, inner_dest).run().drift == 0


def test_without_verification_the_race_would_leave_the_older_version(
    open_store_of: Opener,
) -> None:
    """The same race with verification disabled (0 rounds) shows what it protects from."""
    from shadowswap.sync.converge import Converger

    source, dest = open_store_of("faiss", "src"), MemoryStore()
    docs = load(source, "acme", 10)
    page = {d.doc_id: d for d in docs}  # the backfill's read, before dual write changes one
    newer = changed(docs[4], "newer")
    source.upsert("acme", [newer])
    dest.upsert("acme", [newer])
    Converger(source, dest, "acme", clock=FakeClock(), max_rounds=0).apply(list(page), seed=page)
    assert dest.get("acme", [newer.doc_id])[newer.doc_id].content_hash != newer.content_hash
    Converger(source, dest, "acme", clock=FakeClock()).apply(list(page), seed=page)
    assert dest.get("acme", [newer.doc_id])[newer.doc_id].content_hash == newer.content_hash


def test_max_rate_paces_on_the_injected_clock() -> None:
    source, dest = MemoryStore(), MemoryStore()
    for d in corpus("acme", 1000):
        source.upsert("acme", [d])
    clock = FakeClock(start=0.0)
    report = Backfill(source, dest, batch_size=100, max_rate=50.0, clock=clock).run()
    assert report.ok
    # 10 batches of 100 at 50 docs/s: the first goes at once, each next one 2 s later.
    assert clock.monotonic() == pytest.approx(18.0)
    assert report.rate == pytest.approx(1000 / 18.0)


def test_transient_errors_are_retried_with_backoff(open_store_of: Opener) -> None:
    source = open_store_of("faiss")
    load(source, "acme", 250)
    dest = Hooked(MemoryStore())
    dest.on("upsert", fail_times(2))
    clock = FakeClock(start=0.0)
    report = Backfill(source, dest, batch_size=100, clock=clock, retry=Retry(3, 1.0, 2.0)).run()
    assert report.ok and report.copied == 250
    assert clock.monotonic() == pytest.approx(3.0)  # waited 1 s, then 2 s


def test_errors_that_outlast_the_retries_stop_the_run_at_the_checkpoint(
    open_store_of: Opener,
) -> None:
    source = open_store_of("faiss")
    load(source, "acme", 300)
    dest = Hooked(MemoryStore())
    cps = MemoryCheckpoints()
    calls = {"n": 0}

    def down_after_first(*_a: Any) -> bool:
        calls["n"] += 1
        if calls["n"] > 1:
            raise StoreUnavailable("memory", "upsert", "down")
        return True

    dest.on("upsert", down_after_first)
    with pytest.raises(StoreUnavailable):
        Backfill(
            source, dest, batch_size=100, checkpoints=cps, clock=FakeClock(), retry=Retry(2)
        ).run()
    saved = cps.load("acme")
    assert saved is not None and saved.processed == 100 and not saved.complete


class Picky(MemoryStore):
    """A destination that refuses documents whose metadata has ``cluster`` == 3."""

    def upsert(self, tenant: str, documents: Any) -> Any:
        for d in documents:
            if d.metadata.get("cluster") == 3:
                raise InvalidInput("metadata", "this engine cannot hold it")
        return super().upsert(tenant, documents)


def test_documents_the_destination_refuses_are_counted_and_the_rest_copied(
    open_store_of: Opener,
) -> None:
    source = open_store_of("faiss")
    docs = load(source, "acme", 400)
    refused = sorted(d.doc_id for d in docs if d.metadata["cluster"] == 3)
    assert refused
    report = Backfill(source, Picky(), batch_size=100).run()
    assert not report.ok and report.complete
    assert report.failed == len(refused) and report.copied == 400 - len(refused)
    assert list(report.tenants[0].failed_ids) == refused


def test_two_backfills_of_the_same_pair_cannot_run_at_once(tmp_path: Path) -> None:
    cps = FileCheckpoints(tmp_path, ("faiss", "a"), ("chroma", "b"))
    with cps.locked(), pytest.raises(StateError, match="another backfill"):
        Backfill(MemoryStore(), MemoryStore(), checkpoints=cps).run()


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("batch_size", {"batch_size": 0}),
        ("max_rate", {"max_rate": -1.0}),
        ("tenant", {"tenants": ["a b"]}),
    ],
)
def test_bad_options_are_refused(field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match=field):
        Backfill(MemoryStore(), MemoryStore(), **kwargs)


def test_progress_lines_show_counts_rate_and_eta() -> None:
    lines: list[str] = []
    clock = FakeClock(start=0.0)
    source = MemoryStore()
    source.upsert("acme", corpus("acme", 300))
    progress = LineProgress(lines.append, verb="backfill", every_s=0.0, clock=clock)

    class Slow(MemoryStore):
        def upsert(self, tenant: str, documents: Any) -> Any:
            clock.advance(1.0)
            return super().upsert(tenant, documents)

    Backfill(source, Slow(), batch_size=100, progress=progress, clock=clock).run()
    assert lines[0] == "backfill acme: 100/300 docs (33.3%), 100 docs/s, ETA 2.0s"
    assert lines[-1].startswith("backfill acme: 300/300 docs (100.0%)") and "done" in lines[-1]


def test_never_logs_content(open_store_of: Opener, caplog: pytest.LogCaptureFixture) -> None:
    source, dest = open_store_of("faiss"), Picky()
    source.upsert("acme", [Document("acme", "d1", [1.0, 0.0], {"cluster": 3}, text="SECRET")])
    with caplog.at_level("DEBUG", logger="shadowswap"):
        Backfill(source, dest).run()
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert '"doc_ids": ["d1"]' in logged  # ids are logged...
    assert "SECRET" not in logged and "cluster" not in logged  # ...content never


def test_a_stop_from_another_thread_ends_after_the_current_batch(open_store_of: Opener) -> None:
    source, dest = open_store_of("faiss"), MemoryStore()
    load(source, "acme", 500)
    stop = threading.Event()
    hooked = Hooked(dest)
    hooked.on("upsert", lambda *_a: stop.set())
    report = Backfill(source, hooked, batch_size=100, stop=stop).run()
    assert report.interrupted and report.processed == 100


def test_tenants_finished_in_an_interrupted_pass_are_not_read_again(
    open_store_of: Opener, tmp_path: Path
) -> None:
    source = Hooked(open_store_of("faiss"))
    dest = MemoryStore()
    for tenant in ("a", "b", "c"):
        load(source.inner, tenant, 200)
    cps = FileCheckpoints(tmp_path, ("faiss", "x"), ("memory", "y"))
    first = Backfill(source, dest, batch_size=100, checkpoints=cps, stop=StopAfter(3)).run()
    assert [(t.tenant, t.complete) for t in first.tenants] == [("a", True), ("b", False)]
    scanned: set[str] = set()
    source.on("scan", lambda tenant, _page: scanned.add(tenant) or True)
    second = Backfill(source, dest, batch_size=100, checkpoints=cps).run()
    assert scanned == {"b", "c"}  # a was finished in this pass
    a, b, c = second.tenants
    assert a.done_earlier and a.processed == 0 and a.complete
    assert (b.resumed_after_docs, b.processed, c.processed) == (100, 100, 200)
    assert second.ok and second.copied == 300
    # A run over other tenants starts its own pass; the full pass then starts anew.
    assert Backfill(source, dest, tenants=["c"], checkpoints=cps).run().skipped == 200
    assert Backfill(source, dest, checkpoints=cps).run().skipped == 600


def test_a_terminal_gets_a_live_bar_with_rate_and_eta() -> None:
    import io

    from shadowswap.sync.progress import RichProgress, progress_for

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = progress_for(screen, verb="backfill")
    assert isinstance(progress, RichProgress)
    source = MemoryStore()
    source.upsert("acme", corpus("acme", 300))
    Backfill(source, MemoryStore(), batch_size=100, progress=progress).run()
    progress.close()
    shown = screen.getvalue()
    assert "backfill acme" in shown and "300/300" in shown and "ETA" in shown
    assert "docs/s" in shown


def test_a_resumed_run_does_not_hide_failures_of_an_earlier_run(open_store_of: Opener) -> None:
    source = open_store_of("faiss")
    docs = load(source, "acme", 400)
    refused = sorted(d.doc_id for d in docs[:100] if d.metadata["cluster"] == 3)
    assert refused
    dest, cps = Picky(), MemoryCheckpoints()
    first = Backfill(source, dest, batch_size=100, checkpoints=cps, stop=StopAfter(1)).run()
    assert first.failed == len(refused) and first.interrupted
    second = Backfill(source, dest, batch_size=100, checkpoints=cps).run()
    assert second.complete and not second.ok
    (t,) = second.tenants
    assert t.failed_in_pass >= len(refused) and set(refused) <= set(t.failed_ids)
    assert second.as_dict()["failed_in_pass"] == t.failed_in_pass

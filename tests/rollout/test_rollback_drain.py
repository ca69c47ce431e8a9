"""Step 0 of a rollback: the outbox is replayed before the switch, so changes still waiting
for the legacy store land on it before it takes every write alone (CONTRACT §1: "a rollback
at any moment loses nothing").

The real step runs against real stores: FAISS (legacy) and LanceDB (primary after a swap),
with the SQLite outbox a writer whose breaker was open would have left behind."""

from __future__ import annotations

import time
from pathlib import Path

from shadowswap.dualwrite.outbox import Change
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.errors import StoreUnavailable
from shadowswap.rollout.drain import DrainFailed, OutboxDrain
from shadowswap.rollout.journal import Journal
from shadowswap.rollout.rollback import Rollback, RollbackRequest
from shadowswap.settings.config import load_settings
from shadowswap.settings.envfile import parse_values
from shadowswap.similarity import Metric
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.lancedb import LanceDBStore
from shadowswap.values import Document


def swapped_env(tmp_path: Path) -> Path:
    """Runbook 001 done: LanceDB primary, FAISS kept in step as its target."""
    path = tmp_path / ".env.prod"
    path.write_text(
        "RETRIEVAL_BACKEND=lancedb\n"
        "RETRIEVAL_TARGET_BACKEND=faiss\n"
        "FF_RETRIEVAL_DUAL_WRITE=ON\n"
        "FF_RETRIEVAL_SHADOW_READ=ON\n"
        f"RETRIEVAL_FAISS_URL={tmp_path / 'faiss'}\n"
        f"RETRIEVAL_LANCEDB_URL={tmp_path / 'lancedb'}\n"
        f"RETRIEVAL_DUAL_WRITE_OUTBOX_URL={tmp_path / 'outbox.sqlite3'}\n"
    )
    return path


def request(path: Path, apply: bool = True) -> RollbackRequest:
    return RollbackRequest(path, apply, "alice", "incident-123")


def test_changes_waiting_for_the_legacy_store_land_before_the_switch(tmp_path: Path) -> None:
    env = swapped_env(tmp_path)
    settings = load_settings(env, environ={})
    new = LanceDBStore(str(tmp_path / "lancedb"), Metric.COSINE)
    doc = Document("acme", "d1", [1.0, 0.0, 0.0], {"lang": "fr"})
    new.upsert("acme", [doc])  # acknowledged by the primary; the breaker to FAISS was open
    new.close()
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
    stored = LanceDBStore(str(tmp_path / "lancedb"), Metric.COSINE).get("acme", ["d1"])["d1"]
    outbox.append([Change.upsert(stored, "faiss", None)], now=time.time(), capacity=100, ttl_s=1e9)
    outbox.close()
    journal = Journal(tmp_path / "log.ndjson")
    drain = OutboxDrain(lambda: load_settings(env, environ={}))
    assert drain.pending() == 1

    dry = Rollback(journal, drain=drain, environ={}).run(request(env, apply=False))
    assert (dry.steps[0].number, dry.steps[0].status) == (0, "would run")
    assert "1 items" in dry.steps[0].detail and drain.pending() == 1  # a dry run replays nothing

    report = Rollback(journal, drain=drain, environ={}).run(request(env))
    assert report.result == "success", report.steps
    assert report.steps[0].status == "done"
    assert report.steps[0].detail.startswith("replayed 1,")
    legacy = FaissStore(settings.faiss_url, Metric.COSINE)
    try:
        assert legacy.get("acme", ["d1"])["d1"].content_hash == stored.content_hash
    finally:
        legacy.close()
    assert drain.pending() == 0
    assert parse_values(env.read_text())["RETRIEVAL_BACKEND"] == "faiss"
    assert journal.entries()[-1].notes.startswith("incident-123; outbox: replayed 1,")


def test_no_outbox_file_is_an_empty_outbox_and_none_is_created(tmp_path: Path) -> None:
    env = swapped_env(tmp_path)
    drain = OutboxDrain(lambda: load_settings(env, environ={}))
    report = Rollback(Journal(tmp_path / "log.ndjson"), drain=drain, environ={}).run(request(env))
    assert (report.steps[0].status, report.steps[0].detail) == ("already", "the outbox is empty")
    assert report.result == "success"
    assert not (tmp_path / "outbox.sqlite3").exists()


class FailingDrain:
    """The legacy store cannot be reached during the replay."""

    def __init__(self) -> None:
        self.runs = 0

    def pending(self) -> int:
        return 4

    def run(self) -> str:
        self.runs += 1
        raise DrainFailed("replayed 0, already applied or superseded 0, failed 4, left 4")


class UnreadableDrain(FailingDrain):
    def pending(self) -> int:
        raise StoreUnavailable("outbox", "open", "disk I/O error")


def test_a_failed_replay_still_moves_traffic_and_fails_the_run(tmp_path: Path) -> None:
    env = swapped_env(tmp_path)
    journal = Journal(tmp_path / "log.ndjson")
    drain = FailingDrain()
    report = Rollback(journal, drain=drain, environ={}).run(request(env))
    assert drain.runs == 1
    assert report.result == "failure"
    assert report.steps[0].status == "failed"
    assert "run shadowswap replay-outbox, then reconcile" in report.steps[0].detail
    settings = load_settings(env, environ={})
    assert settings.backend == "faiss" and not settings.dual_write  # traffic moved anyway
    (entry,) = journal.entries()
    assert entry.result == "failure" and "outbox: FAILED" in entry.notes


def test_an_unreadable_outbox_is_skipped_with_a_warning(tmp_path: Path) -> None:
    env = swapped_env(tmp_path)
    drain = UnreadableDrain()
    journal = Journal(tmp_path / "log.ndjson")
    report = Rollback(journal, drain=drain, environ={}).run(request(env))
    assert drain.runs == 0 and report.result == "success"
    assert report.steps[0].status == "skipped"
    assert report.steps[0].detail.startswith("cannot read the outbox: outbox open failed")
    assert any("run shadowswap replay-outbox where the outbox is reachable" in w
               for w in report.warnings)  # fmt: skip
    assert "outbox: not read:" in journal.entries()[0].notes
    assert load_settings(env, environ={}).backend == "faiss"

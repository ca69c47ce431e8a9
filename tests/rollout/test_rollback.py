"""Rollback (runbook 002) as a library: the plan, the order of the steps around a purge, what
a failure leaves behind, the smoke test against a stub of the service contract, the journal."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from shadowswap.clock import FakeClock
from shadowswap.errors import ConfigError, Refused, StoreUnavailable, WriteError
from shadowswap.rollout.journal import Journal
from shadowswap.rollout.purge import ReconcilePurge
from shadowswap.rollout.rollback import Rollback, RollbackRequest, plan_rollback
from shadowswap.rollout.smoke import HttpSmokeTest
from shadowswap.settings.config import load_settings
from shadowswap.settings.envfile import parse_values
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from tests.rollout.stub_service import StubRetrievalService

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "env.staging"


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env.staging"
    path.write_bytes(FIXTURE.read_bytes())
    return path


def request(path: Path, apply: bool = True, **kw: Any) -> RollbackRequest:
    return RollbackRequest(path, apply, "alice", "incident-123", **kw)


class RecordingPurge:
    """An injected purge step that records what the env file said when it ran."""

    def __init__(self, env_file: Path, clock: FakeClock, fail: bool = False) -> None:
        self.env_file, self.clock, self.fail = env_file, clock, fail
        self.calls: list[tuple[str, str, dict[str, str], float]] = []

    def check(self) -> None:
        return None

    def run(self, source_kind: str, target_kind: str) -> str:
        values = parse_values(self.env_file.read_text())
        self.calls.append((source_kind, target_kind, values, self.clock.monotonic()))
        if self.fail:
            raise StoreUnavailable(target_kind, "purge", "connection refused")
        return "deleted 3 documents"


# -- the plan ----------------------------------------------------------------------------------
def test_plan_follows_the_runbook_order() -> None:
    plan = plan_rollback(parse_values(FIXTURE.read_text()), "faiss", purge=True, smoke=True)
    assert [(s.number, s.status) for s in plan.steps] == [
        (1, "change"),
        (2, "would run"),
        (3, "change"),
        (4, "already"),
        (5, "change"),
        (6, "would run"),
    ]
    assert plan.changes == {
        "FF_RETRIEVAL_DUAL_WRITE": "OFF",
        "FF_RETRIEVAL_SHADOW_READ": "OFF",
        "RETRIEVAL_CUTOVER_TENANTS": "",
        "RETRIEVAL_CUTOVER_PERCENT": "0",
    }
    assert plan.leaving == "chroma" and not plan.warnings


def test_after_a_swap_the_backends_trade_places() -> None:
    values = {
        "RETRIEVAL_BACKEND": "chroma",
        "RETRIEVAL_TARGET_BACKEND": "faiss",
        "FF_RETRIEVAL_DUAL_WRITE": "ON",
    }
    plan = plan_rollback(values, "faiss", purge=False, smoke=False)
    assert plan.changes == {
        "FF_RETRIEVAL_DUAL_WRITE": "OFF",
        "RETRIEVAL_BACKEND": "faiss",
        "RETRIEVAL_TARGET_BACKEND": "chroma",
    }
    assert plan.leaving == "chroma" and not plan.warnings
    assert load_settings(environ={**values, **plan.changes}).target_backend == "chroma"


def test_after_done_the_legacy_backend_is_stale_and_the_plan_says_so() -> None:
    plan = plan_rollback({"RETRIEVAL_BACKEND": "chroma"}, "faiss", purge=False, smoke=False)
    assert plan.changes == {"RETRIEVAL_BACKEND": "faiss", "RETRIEVAL_TARGET_BACKEND": "chroma"}
    (warning,) = plan.warnings
    assert "missing from faiss" in warning


def test_values_are_compared_by_meaning() -> None:
    values = {
        "FF_RETRIEVAL_DUAL_WRITE": "false",
        "FF_RETRIEVAL_SHADOW_READ": "maybe",  # invalid: set to OFF explicitly
        "RETRIEVAL_BACKEND": "FAISS",
        "RETRIEVAL_CUTOVER_PERCENT": "0.0",
        "RETRIEVAL_CUTOVER_TENANTS": " , ",
    }
    plan = plan_rollback(values, "faiss", purge=False, smoke=False)
    assert plan.changes == {"FF_RETRIEVAL_SHADOW_READ": "OFF"}


# -- running it --------------------------------------------------------------------------------
def test_dry_run_writes_only_the_journal(env_file: Path, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "artifacts" / "log.ndjson")
    report = Rollback(journal, environ={}).run(request(env_file, apply=False))
    assert env_file.read_bytes() == FIXTURE.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env.staging", "artifacts"]
    assert report.result == "success" and report.backup is None
    assert "+export FF_RETRIEVAL_DUAL_WRITE='OFF'" in report.diff
    (entry,) = journal.entries()
    assert (entry.apply, entry.result, entry.notes) == (False, "success", "incident-123")
    assert entry.changes == report.changes


def test_apply_edits_once_and_keeps_a_backup(env_file: Path, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "log.ndjson")
    report = Rollback(journal, environ={}).run(request(env_file))
    assert report.backup is not None and report.backup.latest.read_bytes() == FIXTURE.read_bytes()
    settings = load_settings(env_file, environ={})
    assert (settings.dual_write, settings.shadow_read, settings.backend) == (False, False, "faiss")
    assert (settings.cutover_tenants, settings.cutover_percent) == ((), 0)
    assert [s.status for s in report.steps] == [
        "done",
        "skipped",
        "done",
        "already",
        "done",
        "skipped",
    ]
    (entry,) = journal.entries()
    assert entry.apply and entry.result == "success"
    # Run again: nothing left to change, the journal says so, the file is untouched.
    before = env_file.read_bytes()
    again = Rollback(journal, environ={}).run(request(env_file))
    assert again.changes == {} and env_file.read_bytes() == before
    assert journal.entries()[-1].changes == {}


def test_purge_runs_after_dual_write_is_off_and_before_the_rest(
    env_file: Path, tmp_path: Path
) -> None:
    clock = FakeClock()
    purge = RecordingPurge(env_file, clock)
    journal = Journal(tmp_path / "log.ndjson")
    start = clock.monotonic()
    report = Rollback(journal, purge=purge, clock=clock, environ={}).run(
        request(env_file, purge_delta=True, settle_s=6.0)
    )
    ((source, target, seen, at),) = purge.calls
    assert (source, target) == ("faiss", "chroma")
    assert seen["FF_RETRIEVAL_DUAL_WRITE"] == "OFF"  # step 1 done
    assert seen["FF_RETRIEVAL_SHADOW_READ"] == "ON"  # step 3 not yet
    assert seen["RETRIEVAL_CUTOVER_PERCENT"] == "10"  # step 5 not yet
    assert at - start == 6.0  # it waited for processes to stop dual writing
    assert parse_values(env_file.read_text())["FF_RETRIEVAL_SHADOW_READ"] == "OFF"
    assert report.backup is not None and report.backup.latest.read_bytes() == FIXTURE.read_bytes()
    assert report.steps[1].status == "done"
    assert journal.entries()[0].notes == "incident-123; purge: deleted 3 documents"


def test_a_failed_purge_still_rolls_traffic_back_and_fails_the_run(
    env_file: Path, tmp_path: Path
) -> None:
    clock = FakeClock()
    journal = Journal(tmp_path / "log.ndjson")
    report = Rollback(
        journal, purge=RecordingPurge(env_file, clock, fail=True), clock=clock, environ={}
    ).run(request(env_file, purge_delta=True))
    assert report.result == "failure"
    assert report.steps[1].status == "failed"
    settings = load_settings(env_file, environ={})
    assert not settings.dual_write and not settings.shadow_read
    (entry,) = journal.entries()
    assert entry.result == "failure"
    assert "purge: FAILED chroma purge failed: connection refused" in entry.notes


def test_a_missing_purge_module_is_refused_before_any_change(
    env_file: Path, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "log.ndjson")
    purge = ReconcilePurge(lambda: load_settings(env_file, environ={}), module="no_such.module")
    with pytest.raises(Refused, match=r"no_such.module is not part of this build"):
        Rollback(journal, purge=purge, environ={}).run(request(env_file, purge_delta=True))
    assert env_file.read_bytes() == FIXTURE.read_bytes()
    assert not (env_file.parent / ".env.staging.bak").exists()
    (entry,) = journal.entries()
    assert entry.result == "failure" and "--purge-delta refused" in entry.notes


def test_the_real_purge_opens_both_stores_and_calls_purge_delta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``purge_delta`` comes from the sync subsystem; here a module standing in for it records
    what the rollback hands over: the two real stores, source first, and tenants=None."""
    env = {
        "RETRIEVAL_FAISS_URL": str(tmp_path / "faiss"),
        "RETRIEVAL_CHROMA_URL": str(tmp_path / "chroma"),
    }
    seen: list[tuple[object, object, object]] = []
    module = types.ModuleType("fake_reconcile")

    def purge_delta(source: object, target: object, tenants: object = "unset") -> dict[str, int]:
        seen.append((source, target, tenants))
        return {"deleted": 2}

    module.purge_delta = purge_delta  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_reconcile", module)
    purge = ReconcilePurge(lambda: load_settings(environ=env), module="fake_reconcile")
    purge.check()
    assert purge.run("faiss", "chroma") == '{"deleted":2}'
    ((source, target, tenants),) = seen
    assert isinstance(source, FaissStore) and isinstance(target, ChromaStore)
    assert tenants is None


def test_an_unrelated_broken_line_does_not_block_a_rollback(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("FF_RETRIEVAL_DUAL_WRITE=ON\nRETRIEVAL_SHADOW_TIMEOUT_MS=soon\n")
    report = Rollback(Journal(tmp_path / "j.ndjson"), environ={}).run(request(path))
    assert report.result == "success"
    assert any("RETRIEVAL_SHADOW_TIMEOUT_MS" in w for w in report.warnings)
    assert parse_values(path.read_text())["FF_RETRIEVAL_DUAL_WRITE"] == "OFF"


def test_a_shell_override_is_warned_about(env_file: Path, tmp_path: Path) -> None:
    report = Rollback(
        Journal(tmp_path / "j.ndjson"), environ={"FF_RETRIEVAL_DUAL_WRITE": "ON"}
    ).run(request(env_file, apply=False))
    assert any("FF_RETRIEVAL_DUAL_WRITE is also set in this shell" in w for w in report.warnings)


def test_a_missing_env_file_is_journaled_then_raised(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.ndjson")
    with pytest.raises(ConfigError, match="does not exist"):
        Rollback(journal, environ={}).run(request(tmp_path / "nope.env"))
    (entry,) = journal.entries()
    assert entry.result == "failure" and "does not exist" in entry.notes


def test_a_journal_that_cannot_be_written_says_the_change_was_made(
    env_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "artifacts").write_text("not a directory")
    journal = Journal(tmp_path / "artifacts" / "log.ndjson")
    with pytest.raises(WriteError, match="the env file WAS changed"):
        Rollback(journal, environ={}).run(request(env_file))


# -- smoke test against a stub of the service contract -----------------------------------------
def test_smoke_after_apply_waits_for_the_service_to_follow_the_file(
    env_file: Path, tmp_path: Path
) -> None:
    """The stub answers from the backend the env file names, like a service that follows it."""

    def backend() -> str:
        return load_settings(env_file, environ={}).backend

    env_file.write_text(env_file.read_text().replace('BACKEND="faiss"', 'BACKEND="chroma"'))
    env_file.write_text(
        env_file.read_text().replace("TARGET_BACKEND='chroma'", "TARGET_BACKEND='faiss'")
    )
    with StubRetrievalService(backend) as stub:
        smoke = HttpSmokeTest(stub.url, dimension=8, api_key="k-123", clock=FakeClock())
        journal = Journal(tmp_path / "j.ndjson")
        report = Rollback(journal, smoke=smoke, environ={}).run(request(env_file))
    assert report.result == "success"
    assert report.smoke is not None and report.smoke.backend == "faiss"
    assert report.steps[-1].status == "done"
    (entry,) = journal.entries()
    assert entry.notes == "incident-123; smoke: healthz 200, search 200 from faiss (0 hits)"
    method, path, body, auth = stub.requests[-1]
    assert (method, path, auth) == ("POST", "/internal/retrieval/search", "Bearer k-123")
    assert body == {"tenant": "smoke", "vector": [1.0] + [0.0] * 7, "k": 1}
    assert stub.requests[0][:2] == ("GET", "/healthz")


def test_smoke_fails_when_the_service_never_switches(env_file: Path, tmp_path: Path) -> None:
    clock = FakeClock()
    with StubRetrievalService(lambda: "chroma") as stub:
        smoke = HttpSmokeTest(stub.url, dimension=8, wait_s=3, clock=clock)
        report = Rollback(Journal(tmp_path / "j.ndjson"), smoke=smoke, environ={}).run(
            request(env_file)
        )
    assert report.result == "failure"
    assert report.smoke is not None and "does not follow the env file" in report.smoke.detail
    assert 6 <= len(stub.requests) <= 9  # healthz + a search every 0.5 s for 3 s


@pytest.mark.parametrize(
    ("health", "search", "why"),
    [(503, 200, "GET /healthz answered 503"), (200, 400, "answered 400: stub refuses")],
)
def test_smoke_failures_are_reported(
    env_file: Path, tmp_path: Path, health: int, search: int, why: str
) -> None:
    with StubRetrievalService(lambda: "faiss") as stub:
        stub.health_status, stub.search_status = health, search
        smoke = HttpSmokeTest(stub.url, dimension=8, clock=FakeClock())
        report = Rollback(Journal(tmp_path / "j.ndjson"), smoke=smoke, environ={}).run(
            request(env_file, apply=False)
        )
    assert report.result == "failure"
    assert report.smoke is not None and why in report.smoke.detail


def test_smoke_against_nothing_is_a_failure_not_a_crash(env_file: Path, tmp_path: Path) -> None:
    smoke = HttpSmokeTest("http://127.0.0.1:9", timeout_s=1, clock=FakeClock())
    report = Rollback(Journal(tmp_path / "j.ndjson"), smoke=smoke, environ={}).run(
        request(env_file, apply=False)
    )
    assert report.result == "failure"
    assert report.smoke is not None and "unreachable" in report.smoke.detail

"""Issue 15: what a reconcile records about the write plan it ran under, the record of the
last change of the write plan, and the one function that says whether the last reconcile
still speaks for the stores (`reconcile_freshness`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadowswap.clock import FakeClock
from shadowswap.policy import WRITE_PLAN_VARIABLES, write_plan_fingerprint
from shadowswap.settings.config import Settings, load_settings
from shadowswap.stores.base import BaseStore
from shadowswap.sync.freshness import (
    read_write_plan,
    reconcile_freshness,
    record_write_plan,
)
from shadowswap.sync.reconcile import Reconcile, iso, save_last
from tests.sync.conftest import Opener, load

HOUR = 3600.0


def settings_of(tmp_path: Path, **env: str) -> Settings:
    return load_settings(
        environ={
            "RETRIEVAL_BACKEND": "faiss",
            "RETRIEVAL_TARGET_BACKEND": "memory",
            "FF_RETRIEVAL_DUAL_WRITE": "ON",
            "RETRIEVAL_FAISS_URL": str(tmp_path / "faiss"),
            "RETRIEVAL_STATE_DIR": str(tmp_path / "state"),
        }
        | env
    )


@pytest.fixture
def stores(open_store_of: Opener) -> tuple[BaseStore, BaseStore]:
    primary, target = open_store_of("faiss"), open_store_of("memory")
    for store in (primary, target):
        load(store, "acme", 40)
        load(store, "t1", 10, seed=3)
    return primary, target


def reconciled(stores: tuple[BaseStore, BaseStore], settings: Settings, clock: FakeClock) -> Path:
    report = Reconcile(*stores, settings=settings, clock=clock).run()
    return save_last(report, settings.state_dir)


def test_a_reconcile_records_the_write_plan_and_dual_write_per_tenant(
    tmp_path: Path, stores: tuple[BaseStore, BaseStore]
) -> None:
    settings = settings_of(tmp_path, RETRIEVAL_TENANT_ALLOWLIST="acme")
    document = json.loads(reconciled(stores, settings, FakeClock()).read_text())
    plan = document["write_plan"]
    assert plan["fingerprint"] == write_plan_fingerprint(settings)
    assert list(plan["variables"]) == list(WRITE_PLAN_VARIABLES)
    assert plan["variables"]["RETRIEVAL_TENANT_ALLOWLIST"] == "acme"
    assert plan["variables"]["FF_RETRIEVAL_DUAL_WRITE"] == "ON"
    assert document["tenants"]["acme"]["dual_write"] is True
    assert document["tenants"]["t1"]["dual_write"] is False
    assert document["started_at"].endswith("Z") and document["finished_at"].endswith("Z")
    # A reconcile that is not told the settings records no write plan (library use).
    bare = Reconcile(*stores).run().as_dict()
    assert bare["write_plan"] is None and "dual_write" not in bare["tenants"]["acme"]


def test_a_reconcile_after_the_last_change_is_fresh(
    tmp_path: Path, stores: tuple[BaseStore, BaseStore]
) -> None:
    settings, clock = settings_of(tmp_path), FakeClock()
    record_write_plan(settings.state_dir, settings, at=clock.now() - 60, by="phase advance")
    reconciled(stores, settings, clock)
    fresh = reconcile_freshness(settings.state_dir, settings, clock.now() + 120, HOUR)
    assert fresh.fresh and fresh.ready and fresh.reasons == ()
    assert fresh.drift == 0 and fresh.age_s == pytest.approx(120)
    assert fresh.known_drift == 0


def test_an_old_reconcile_is_stale(tmp_path: Path, stores: tuple[BaseStore, BaseStore]) -> None:
    settings, clock = settings_of(tmp_path), FakeClock()
    reconciled(stores, settings, clock)
    old = reconcile_freshness(settings.state_dir, settings, clock.now() + 3 * HOUR, HOUR)
    assert not old.fresh and old.drift == 0 and old.known_drift is None
    assert old.reasons == ("the last reconcile is 3 h old (limit 1 h): run `shadowswap reconcile`",)


def test_a_change_of_the_write_plan_after_the_reconcile_makes_it_stale(
    tmp_path: Path, stores: tuple[BaseStore, BaseStore]
) -> None:
    settings, clock = settings_of(tmp_path), FakeClock()
    reconciled(stores, settings, clock)
    state = settings.state_dir
    clock.advance(30)
    record_write_plan(state, settings, at=clock.now(), by="rollback")
    clock.advance(30)
    record_write_plan(state, settings, at=clock.now(), by="phase advance")
    stale = reconcile_freshness(state, settings, clock.now(), HOUR)
    at = iso(clock.now() - 30)
    last = iso(clock.now())
    assert stale.reasons == (
        f"the write plan changed after the last reconcile (rollback at {at}, then 1 more "
        f"change, the last a phase advance at {last})",
    )
    record = read_write_plan(state)
    assert record is not None and record["by"] == "phase advance"
    assert [c["by"] for c in record["history"]] == ["rollback", "phase advance"]


def test_a_write_plan_other_than_the_reconciles_is_stale_whatever_the_times(
    tmp_path: Path, stores: tuple[BaseStore, BaseStore]
) -> None:
    settings, clock = settings_of(tmp_path), FakeClock()
    reconciled(stores, settings, clock)
    now = settings_of(tmp_path, RETRIEVAL_CUTOVER_PERCENT="10", RETRIEVAL_CUTOVER_TENANTS="b,a")
    stale = reconcile_freshness(settings.state_dir, now, clock.now(), HOUR)
    (reason,) = stale.reasons
    assert reason.startswith("the write plan changed after the last reconcile (")
    assert "RETRIEVAL_CUTOVER_TENANTS was (empty), now a,b" in reason
    assert "RETRIEVAL_CUTOVER_PERCENT was 0, now 10" in reason
    # Shadow read and the sample rate decide no write: no effect on freshness.
    other = settings_of(tmp_path, FF_RETRIEVAL_SHADOW_READ="ON")
    assert reconcile_freshness(settings.state_dir, other, clock.now(), HOUR).fresh


def test_dual_write_off_for_a_covered_tenant_is_stale(
    tmp_path: Path, stores: tuple[BaseStore, BaseStore]
) -> None:
    settings, clock = settings_of(tmp_path, RETRIEVAL_TENANT_ALLOWLIST="acme"), FakeClock()
    reconciled(stores, settings, clock)
    stale = reconcile_freshness(settings.state_dir, settings, clock.now(), HOUR)
    assert stale.reasons == ("dual write was off for tenant t1 when the reconcile ran",)


def test_missing_unreadable_incomplete_and_old_format_files(tmp_path: Path) -> None:
    settings, now = settings_of(tmp_path), 1_800_000_000.0
    state = Path(settings.state_dir)
    missing = reconcile_freshness(state, settings, now, HOUR)
    assert not missing.fresh and missing.drift is None
    assert missing.reasons == (
        f"no reconcile result at {state / 'reconcile_last.json'}: run `shadowswap reconcile` first",
    )
    state.mkdir(parents=True)
    path = state / "reconcile_last.json"
    path.write_text("{")
    assert "not valid JSON" in reconcile_freshness(state, settings, now, HOUR).reasons[0]
    recent = iso(now - 60)
    path.write_text(json.dumps({"drift": 0, "tenants": {}, "finished_at": recent}))
    old = reconcile_freshness(state, settings, now, HOUR)
    assert not old.fresh and old.drift == 0
    assert old.reasons == (
        f"the last reconcile ({path}) does not record the write plan it was taken under "
        "(written by an older shadowswap): run `shadowswap reconcile`",
    )
    path.write_text(json.dumps({"drift": 3, "complete": False}))
    incomplete = reconcile_freshness(state, settings, now, HOUR)
    assert incomplete.drift == 3 and "did not complete" in incomplete.reasons[0]

"""Evidence from the observation log, a real router's metrics registry, and the state dir."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from shadowswap.clock import FakeClock, SystemClock
from shadowswap.errors import InvalidInput
from shadowswap.gate import (
    Evidence,
    combine,
    evidence_from_observations,
    evidence_from_records,
    evidence_from_registry,
    evidence_from_state,
    unexplained_hits,
)
from shadowswap.metrics import Metrics
from shadowswap.policy import write_plan_fingerprint, write_plan_variables
from shadowswap.read.router import Router
from shadowswap.settings.config import Settings, StaticSettings, load_settings
from shadowswap.shadow.observations import (
    JsonlObservationLog,
    MemoryObservations,
    Observation,
    parse_iso_utc,
)
from shadowswap.stores.base import VectorStore
from shadowswap.sync.freshness import record_write_plan
from shadowswap.testing.faults import FlappingStore, LeakingStore
from shadowswap.values import Document
from tests.router_helpers import TENANTS, Stores, load_stores, settings


def obs(
    primary: list[tuple[str, float]], shadow: list[tuple[str, float]], k: int = 3
) -> Observation:
    return Observation(
        ts=1_700_000_000.0, tenant="acme", trace_id="t" * 32, primary_backend="faiss",
        shadow_backend="chroma", outcome="compared", k=k, filtered=False,
        primary_ids=tuple(d for d, _ in primary), primary_scores=tuple(s for _, s in primary),
        primary_latency_s=0.001, shadow_ids=tuple(d for d, _ in shadow),
        shadow_scores=tuple(s for _, s in shadow), shadow_latency_s=0.002,
        agreement_at_5=1.0, agreement_cutoff=3, ndcg_at_10=1.0, score_delta=0.0,
        latency_delta_s=0.001, mismatch=False,
    )  # fmt: skip


def test_unexplained_hits() -> None:
    primary = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    assert unexplained_hits(obs(primary, primary)) == 0
    # an approximate target misses b and returns a worse document: explained
    assert unexplained_hits(obs(primary, [("a", 0.9), ("c", 0.7), ("x", 0.6)])) == 0
    # a document scoring above the primary's last hit that the primary lacks: unexplained
    assert unexplained_hits(obs(primary, [("a", 0.9), ("x", 0.85), ("b", 0.8)])) == 1
    # a tie with the primary's last hit (within float noise) is explained
    assert unexplained_hits(obs(primary, [("a", 0.9), ("b", 0.8), ("y", 0.70000001)])) == 0
    # the primary returned fewer than k: it has nothing else, so any other hit is foreign
    assert unexplained_hits(obs(primary[:2], [("a", 0.9), ("z", 0.1)])) == 1


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    yield from load_stores(tmp_path_factory.mktemp("gate-evidence"))


def _route(
    stores: Stores, target: VectorStore, registry: CollectorRegistry | None = None
) -> MemoryObservations:
    records = MemoryObservations()
    sink = Metrics(
        registry or CollectorRegistry(),
        env="test",
        shadow_version="dev",
        sample="1.0",
        app_version="0",
        primary="faiss",
        target="chroma",
    )
    router = Router(
        primary=stores.faiss,
        target=target,
        settings=StaticSettings(settings()),
        metrics=sink,
        clock=SystemClock(),
        rng=random.Random(0),
        observations=records,
    )
    try:
        for tenant in TENANTS:
            for q in stores.queries[tenant]:
                router.search(tenant, q, 10)
                router.executor.wait_idle()
    finally:
        router.close()
    return records


def test_router_records_and_registry_tell_the_same_story(stores: Stores) -> None:
    registry = CollectorRegistry()
    flaky = FlappingStore(stores.chroma, ops=["search"], down=lambda n: n % 8 == 0)
    records = _route(stores, flaky, registry)
    from_log = evidence_from_records(records.items)
    from_metrics = evidence_from_registry(registry, env="test")
    assert from_log.compared == from_metrics.compared == 35  # 40 reads, every 8th failed
    assert from_log.shadow_errors == from_metrics.shadow_errors == 5
    assert from_log.mismatches == from_metrics.mismatches
    assert from_metrics.reads == 40 and from_metrics.read_errors == 0
    assert from_metrics.drops == {"timeout": 0, "queue_full": 0}
    assert from_metrics.dual_write_errors == 0 and from_metrics.outbox_size == 0
    assert from_metrics.foreign_hits == from_log.foreign_hits == 0  # the lookups, counted
    assert from_metrics.stale_hits == from_log.stale_hits == 0
    assert from_log.foreign_hits == 0 and from_log.dropped is None  # no queue_full in the log
    mean = from_metrics.agreement_at_5.mean  # type: ignore[union-attr]
    assert mean == pytest.approx(np.mean(from_log.agreement_at_5))  # type: ignore[arg-type]
    assert evidence_from_registry(registry, env="prod").compared is None


def test_a_leaking_target_shows_foreign_hits(stores: Stores) -> None:
    # a tenant "intruder" holding near-copies of acme's documents under other ids
    rng = np.random.default_rng(9)
    acme = [d for page in stores.chroma.scan(TENANTS[0]) for d in page]
    copies = [
        Document("intruder", f"x-{d.doc_id}", d.vector + rng.normal(0, 0.01, d.vector.shape))
        for d in acme
    ]
    stores.chroma.upsert("intruder", copies)
    try:
        leaky = LeakingStore(stores.chroma, other=lambda _t: "intruder")
        ev = evidence_from_records(_route(stores, leaky).items, tenants=[TENANTS[0]])
        assert ev.compared == 20 and (ev.foreign_hits or 0) >= 15
        faithful = evidence_from_records(_route(stores, stores.chroma).items)
        assert faithful.compared == 40 and faithful.foreign_hits == 0
    finally:
        stores.chroma.delete("intruder", [d.doc_id for d in copies])


def test_observation_directory_window_and_tenants(tmp_path: Path) -> None:
    clock = FakeClock(start=1_760_000_000.0)
    log = JsonlObservationLog(tmp_path, retention_days=90, clock=clock)
    base = obs([("a", 0.9)], [("a", 0.9)], k=1)
    for i in range(10):
        log.record(Observation(**{**base.__dict__, "ts": 1_760_000_000.0 + i * 3600,
                                  "tenant": "acme" if i % 2 else "globex"}))  # fmt: skip
    log.close()
    with (tmp_path / "shadow-observations-2025-10-09.jsonl").open("a") as f:
        f.write('{"v": 1, "cut sho')
    every = evidence_from_observations(tmp_path)
    assert every.compared == 10 and any("1 lines skipped" in n for n in every.notes)
    window = evidence_from_observations(
        tmp_path, since=1_760_000_000.0 + 2 * 3600, until=1_760_000_000.0 + 6 * 3600
    )
    assert window.compared == 4 and window.window_s == 3 * 3600
    assert evidence_from_observations(tmp_path, tenants=["acme"]).compared == 5
    with pytest.raises(InvalidInput, match="does not exist"):
        evidence_from_observations(tmp_path / "missing")


def reconcile_doc(drift: int, settings: Settings, **extra: object) -> dict[str, object]:
    """A ``reconcile_last.json`` of this format, taken under ``settings``."""
    return {
        "drift": drift,
        "complete": True,
        "started_at": "2025-10-20T22:39:00.000Z",
        "finished_at": "2025-10-20T22:40:00.000Z",
        "write_plan": {
            "fingerprint": write_plan_fingerprint(settings),
            "variables": write_plan_variables(settings),
        },
        "tenants": {},
        **extra,
    }


def test_state_directory(tmp_path: Path) -> None:
    clock = FakeClock(start=1_761_000_000.0)
    now = load_settings(environ={})
    assert evidence_from_state(tmp_path, clock=clock).reconcile_drift is None
    doc = reconcile_doc(3, now)
    (tmp_path / "reconcile_last.json").write_text(json.dumps(doc))
    ev = evidence_from_state(tmp_path, clock=clock, settings=now)
    assert ev.reconcile_drift == 3 and not ev.notes
    assert ev.reconcile_age_s == pytest.approx(1_761_000_000.0 - parse_iso_utc(doc["finished_at"]))
    (tmp_path / "reconcile_last.json").write_text(json.dumps({**doc, "complete": False}))
    assert evidence_from_state(tmp_path, clock=clock).reconcile_drift is None


def test_a_stale_reconcile_leaves_the_drift_unknown(tmp_path: Path) -> None:
    clock = FakeClock(start=1_761_000_000.0)
    then, now = load_settings(environ={}), load_settings(environ={"RETRIEVAL_BACKEND": "memory"})
    path = tmp_path / "reconcile_last.json"
    old = {"drift": 0, "complete": True, "finished_at": "2025-10-20T22:40:00.000Z"}
    path.write_text(json.dumps(old))
    ev = evidence_from_state(tmp_path, clock=clock)
    assert ev.reconcile_drift is None and ev.reconcile_age_s is not None
    assert any("does not record the write plan" in n for n in ev.notes), ev.notes
    path.write_text(json.dumps(reconcile_doc(0, then)))
    assert evidence_from_state(tmp_path, clock=clock, settings=then).reconcile_drift == 0
    other = evidence_from_state(tmp_path, clock=clock, settings=now)
    assert other.reconcile_drift is None
    assert any("RETRIEVAL_BACKEND was faiss, now memory" in n for n in other.notes), other.notes
    record_write_plan(tmp_path, then, at=clock.now(), by="rollback")
    later = evidence_from_state(tmp_path, clock=clock, settings=then)
    assert later.reconcile_drift is None and any("rollback at" in n for n in later.notes)
    # the age is the reconcile_fresh criterion's business, not a reason to forget the drift
    path.write_text(json.dumps(reconcile_doc(0, then, started_at="2025-10-20T22:40:00.500Z")))
    aged = evidence_from_state(tmp_path, clock=FakeClock(start=1_900_000_000.0), settings=then)
    assert aged.reconcile_drift == 0 and aged.reconcile_age_s is not None


def test_combine_takes_the_first_known_value() -> None:
    a = Evidence(compared=5, drops={"timeout": 1}, sources=("a",))
    b = Evidence(compared=9, outbox_size=2, drops={"timeout": 3, "queue_full": 4}, sources=("b",))
    both = combine(a, b)
    assert both.compared == 5 and both.outbox_size == 2
    assert both.drops == {"timeout": 3, "queue_full": 4}  # whole, from the complete source
    assert both.sources == ("a", "b")

"""After shadow reads of every kind (compared, mismatched, failed, timed out, dropped on a
full queue) and a fallback, the Prometheus exposition of a fresh registry holds every metric
of CONTRACT §2 that shadow read touches, with the contract's labels plus env and
shadow_version."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shadowswap.clock import FakeClock
from shadowswap.metrics import Metrics
from shadowswap.shadow.executor import ExecutorSizes
from shadowswap.testing.faults import FailingStore, HangingStore
from tests.router_helpers import Stores, load_stores, make_router

BASE = {"env", "shadow_version"}
#: metric -> the labels CONTRACT §2 gives it (histograms also carry ``le`` on buckets)
CONTRACT = {
    "retrieval_shadow_latency_seconds": {"backend", "sample"},
    "retrieval_shadow_agreement_at_5": {"backend", "k", "sample"},
    "retrieval_shadow_ndcg_at_10": {"backend", "k", "sample"},
    "retrieval_shadow_dropped_total": {"reason"},
    "retrieval_shadow_errors_total": {"backend"},
    "retrieval_total": {"backend", "role", "outcome"},
    "retrieval_duration_seconds": {"backend", "role"},
    "retrieval_fallback_total": {"from", "to"},
    "retrieval_dual_read_score_delta": {"backend"},
    "retrieval_dual_read_latency_delta_seconds": {"backend"},
    "retrieval_dual_read_mismatch_total": {"backend"},
    "retrieval_build_info": {"app_version", "primary", "target"},
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    yield from load_stores(tmp_path_factory.mktemp("exposition-stores"))


def samples(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """metric family name -> its samples (sample name, labels, value)."""
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        out[name] = [(s.name, dict(s.labels), s.value) for s in family.samples]
    return out


def test_the_exposition_holds_every_contract_metric_shadow_read_touches(
    stores: Stores,
) -> None:
    registry = CollectorRegistry()
    sink = Metrics(
        registry,
        env="stg",
        shadow_version="v2.0.0",
        sample="1.0",
        app_version="0.1.0",
        primary="faiss",
        target="chroma",
    )
    clock = FakeClock()
    q = stores.queries["acme"]
    hanging = HangingStore(stores.chroma, ops=["search"])
    try:
        with make_router(stores.faiss, stores.chroma, metrics=sink, clock=clock) as healthy:
            healthy.search("acme", q[0], 10)
            assert healthy.executor.wait_idle()
        with make_router(stores.faiss, stores.other, metrics=sink, clock=clock) as other:
            for vector in q:
                other.search("acme", vector, 10)
            assert other.executor.wait_idle()
        failing = FailingStore(stores.chroma, ops=["search"])
        with make_router(stores.faiss, failing, metrics=sink, clock=clock) as raising:
            raising.search("acme", q[0], 10)
            assert raising.executor.wait_idle()
        sizes = ExecutorSizes(workers=1, queue_size=1, max_stuck=0, tick_s=None)
        with make_router(stores.faiss, hanging, metrics=sink, clock=clock, sizes=sizes) as hung:
            hung.search("acme", q[0], 10)  # runs, and hangs
            assert hanging.wait_for_waiting(1)
            hung.search("acme", q[1], 10)  # waits in the queue
            hung.search("acme", q[2], 10)  # the queue is full: dropped
            clock.advance(1.0)
            assert hung.executor.sweep() == 2
            hanging.release()
            assert hung.executor.wait_idle()
        broken = FailingStore(stores.faiss, ops=["search"])
        env = {"FF_RETRIEVAL_DUAL_WRITE": "ON"}
        with make_router(broken, stores.chroma, env, metrics=sink, clock=clock) as falling:
            assert falling.search("acme", q[0], 10).fallback
    finally:
        hanging.release()

    found = samples(generate_latest(registry).decode())
    for metric, labels in CONTRACT.items():
        assert metric in found, f"{metric} is missing from the exposition"
        for sample_name, sample_labels, _ in found[metric]:
            extra = {"le"} if sample_name.endswith("_bucket") else set()
            assert set(sample_labels) == labels | BASE | extra, (metric, sample_labels)
            assert sample_labels["env"] == "stg"
            assert sample_labels["shadow_version"] == "v2.0.0"

    def value(metric: str, series: str, /, **labels: str) -> float:
        for name, have, v in found[metric]:
            if name == series and all(have.get(k) == w for k, w in labels.items()):
                return v
        raise AssertionError(f"no {series} with {labels}")

    assert value("retrieval_shadow_dropped_total", "retrieval_shadow_dropped_total",
                 reason="timeout") == 2  # fmt: skip
    assert value("retrieval_shadow_dropped_total", "retrieval_shadow_dropped_total",
                 reason="queue_full") == 1  # fmt: skip
    assert value("retrieval_shadow_errors_total", "retrieval_shadow_errors_total",
                 backend="chroma") == 1  # fmt: skip
    compared = 1 + len(q)
    assert value("retrieval_shadow_agreement_at_5", "retrieval_shadow_agreement_at_5_count",
                 backend="chroma", k="5", sample="1.0") == compared  # fmt: skip
    assert value("retrieval_shadow_ndcg_at_10", "retrieval_shadow_ndcg_at_10_count",
                 backend="chroma", k="10", sample="1.0") == compared  # fmt: skip
    assert value("retrieval_shadow_latency_seconds", "retrieval_shadow_latency_seconds_count",
                 backend="chroma", sample="1.0") == compared  # fmt: skip
    assert value("retrieval_dual_read_mismatch_total", "retrieval_dual_read_mismatch_total",
                 backend="chroma") >= 1  # fmt: skip
    assert value("retrieval_fallback_total", "retrieval_fallback_total",
                 **{"from": "faiss", "to": "chroma"}) == 1  # fmt: skip
    assert value("retrieval_total", "retrieval_total", backend="chroma", role="shadow",
                 outcome="timeout") == 1  # fmt: skip
    assert value("retrieval_total", "retrieval_total", backend="chroma", role="shadow",
                 outcome="error") == 1  # fmt: skip
    assert value("retrieval_total", "retrieval_total", backend="faiss", role="primary",
                 outcome="error") == 1  # fmt: skip
    assert value("retrieval_duration_seconds", "retrieval_duration_seconds_count",
                 backend="chroma", role="primary") == 1  # fmt: skip
    assert value("retrieval_build_info", "retrieval_build_info", primary="faiss",
                 target="chroma") == 1  # fmt: skip


def test_the_sample_label_follows_the_rate_in_effect(stores: Stores) -> None:
    registry = CollectorRegistry()
    sink = Metrics(
        registry, env="local", shadow_version="dev", sample="0.25", app_version="0.1.0",
        primary="faiss", target="chroma",
    )  # fmt: skip
    env = {"FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "1.00"}  # the env file was edited since start
    with make_router(stores.faiss, stores.chroma, env, metrics=sink) as router:
        router.search("acme", stores.queries["acme"][0], 10)
        assert router.executor.wait_idle()
    found = samples(generate_latest(registry).decode())
    labels = {s[1]["sample"] for s in found["retrieval_shadow_agreement_at_5"]}
    assert labels == {"1.00"}

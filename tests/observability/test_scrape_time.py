"""`shadowswap.metrics.Metrics`: the values read at scrape time (outbox, drift, phase) and the
listeners, on a fresh registry read back with ``get_sample_value``."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from shadowswap.errors import StoreUnavailable
from shadowswap.metrics import PHASES, Drift, Metrics, OutboxFigures

BASE = {"env": "test", "shadow_version": "v1"}


def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), sample="0.25", app_version="0", primary="faiss",
                   target="chroma", **BASE)  # fmt: skip


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, {**labels, **BASE})


def test_without_readers_the_outbox_reads_empty_and_drift_and_phase_have_no_series() -> None:
    m = metrics()
    assert value(m, "retrieval_dual_write_outbox_size") == 0
    assert value(m, "retrieval_dual_write_outbox_oldest_age_seconds") is None
    for reason in ("full", "ttl"):
        assert value(m, "retrieval_dual_write_outbox_dropped_total", reason=reason) == 0
    text = generate_latest(m.registry).decode()
    assert "# TYPE retrieval_reconcile_drift gauge" in text
    assert "# TYPE retrieval_phase_info gauge" in text
    assert "retrieval_reconcile_drift{" not in text and "retrieval_phase_info{" not in text


def test_the_owner_is_asked_at_every_scrape() -> None:
    m, figures = metrics(), [OutboxFigures(3, 1.5, {"full": 2, "ttl": 0})]
    m.read_outbox_from(lambda: figures[-1])
    assert value(m, "retrieval_dual_write_outbox_size") == 3
    assert value(m, "retrieval_dual_write_outbox_oldest_age_seconds") == 1.5
    assert value(m, "retrieval_dual_write_outbox_dropped_total", reason="full") == 2
    figures.append(OutboxFigures(0, None, {"full": 2, "ttl": 4}))  # another process replayed
    assert value(m, "retrieval_dual_write_outbox_size") == 0
    assert value(m, "retrieval_dual_write_outbox_oldest_age_seconds") == 0  # empty: age 0
    assert value(m, "retrieval_dual_write_outbox_dropped_total", reason="ttl") == 4


def test_an_outbox_that_cannot_be_read_keeps_the_last_figures_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m, calls = metrics(), {"n": 0}

    def read() -> OutboxFigures:
        calls["n"] += 1
        if calls["n"] > 1:
            raise StoreUnavailable("outbox", "stats", "database is locked")
        return OutboxFigures(7, 2.0, {"full": 0, "ttl": 1})

    m.read_outbox_from(read)
    assert value(m, "retrieval_dual_write_outbox_size") == 7
    with caplog.at_level(logging.WARNING, logger="shadowswap.metrics"):
        assert value(m, "retrieval_dual_write_outbox_size") == 7
    assert [r.getMessage() for r in caplog.records] == ["outbox metrics not refreshed"]


def test_drift_and_phase_follow_their_owner() -> None:
    m, state = metrics(), {"drift": None, "phase": "legacy"}
    m.read_drift_from(lambda: state["drift"])  # type: ignore[arg-type, return-value]
    m.read_phase_from(lambda: str(state["phase"]))
    assert value(m, "retrieval_reconcile_drift", kind="missing") is None  # no reconcile yet
    state["drift"], state["phase"] = Drift(4, 1, 0), "cutover"  # type: ignore[assignment]
    kinds = ("missing", "extra", "stale")
    assert [value(m, "retrieval_reconcile_drift", kind=k) for k in kinds] == [4, 1, 0]
    assert {p: value(m, "retrieval_phase_info", phase=p) for p in PHASES} == {
        p: (1.0 if p == "cutover" else 0.0) for p in PHASES
    }


def test_the_breaker_state_is_one_for_the_current_state_and_listeners_hear_it() -> None:
    m, heard = metrics(), []
    m.listen(lambda event, args: heard.append((event, args)))

    def broken(event: str, args: tuple[object, ...]) -> None:
        raise RuntimeError(event)

    m.listen(broken)  # a broken listener breaks nothing
    m.breaker_state("open")
    m.outbox_sampled(3, None)
    assert [value(m, "retrieval_dual_write_breaker_state", state=s) for s in
            ("closed", "open", "half_open")] == [0, 1, 0]  # fmt: skip
    assert heard == [("breaker_state", ("open",)), ("outbox_size", (3, None))]


def test_null_metrics_take_every_event() -> None:
    m = Metrics.null()
    m.read("faiss", "primary", "ok", 0.01)
    m.fallback("faiss", "chroma")
    m.shadow_dropped("queue_full")
    m.shadow_error("chroma")
    m.dual_write_error()
    m.dual_write_skipped("circuit_open")
    m.breaker_state("closed")
    m.outbox_sampled(0, None)
    assert (
        m.registry.get_sample_value(
            "retrieval_dual_write_errors_total", {"env": "", "shadow_version": ""}
        )
        == 1
    )

"""Metrics: the one place that knows Prometheus (CONTRACT §2).

Core code never touches prometheus_client: it reports events to a `MetricsSink`. Three sinks
ship here: `PrometheusSink` (a registry is passed in, never the global default), `NullSink`,
and `RecordingSink` (keeps events in memory, for tests and the rehearsal report).

Every Prometheus series carries the labels ``env`` (METRIC_ENV) and ``shadow_version``
(SHADOW_PIPELINE_VERSION). ``sample`` is the configured sample rate as written (``0.10``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.08,
    0.1,
    0.25,
    0.5,
    0.8,
    1.0,
    1.2,
    2.5,
    5.0,
)
RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
SCORE_DELTA_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# How much slower the shadow answered than the primary, 0 when it was faster. Negative buckets
# would make prometheus_client drop the histogram's `_sum` (OpenMetrics forbids a sum that can
# decrease), and the runbook's mean latency delta is computed from `_sum` / `_count`.
LATENCY_DELTA_BUCKETS = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.12, 0.2, 0.5, 1.0, 2.0)

#: The contract's metric names, for tests and dashboards that check them.
CONTRACT_METRICS = (
    "retrieval_shadow_latency_seconds",
    "retrieval_shadow_agreement_at_5",
    "retrieval_shadow_ndcg_at_10",
    "retrieval_shadow_dropped_total",
    "retrieval_shadow_errors_total",
    "retrieval_dual_write_errors_total",
    "retrieval_dual_write_skipped_total",
    "retrieval_dual_write_outbox_size",
    "retrieval_dual_write_outbox_dropped_total",
    "retrieval_total",
    "retrieval_duration_seconds",
    "retrieval_fallback_total",
    "retrieval_dual_read_score_delta",
    "retrieval_dual_read_latency_delta_seconds",
    "retrieval_dual_read_mismatch_total",
    "retrieval_build_info",
)


_GaugeMode = Literal["livemostrecent", "livemax"]


@dataclass(frozen=True)
class Comparison:
    """The numbers of one shadow comparison that metrics need (no ids, no content)."""

    backend: str  # the shadow backend's kind
    latency_s: float  # the shadow's own latency
    agreement_at_5: float
    ndcg_at_10: float
    score_delta: float | None  # mean |score difference| over shared documents; None if none
    latency_delta_s: float  # shadow latency minus primary latency
    mismatch: bool  # agreement@5 < 1
    # the sample rate in effect for this read, as written; None: the sink's own ``sample``
    sample: str | None = None


class MetricsSink(Protocol):
    """Events the core reports. Implementations must never raise into the caller."""

    def read(self, backend: str, role: str, outcome: str, seconds: float) -> None:
        """A search by ``role`` (primary|shadow), ``outcome`` ok|error|timeout."""

    def fallback(self, from_backend: str, to_backend: str) -> None: ...

    def shadow_compared(self, comparison: Comparison) -> None: ...

    def shadow_dropped(self, reason: str) -> None:
        """``reason`` is queue_full or timeout."""

    def shadow_error(self, backend: str) -> None: ...

    def dual_write_error(self) -> None: ...

    def dual_write_skipped(self, reason: str) -> None:
        """``reason`` is circuit_open."""

    def outbox_size(self, size: int, oldest_age_s: float | None = None) -> None: ...

    def outbox_dropped(self, reason: str, count: int = 1) -> None:
        """``reason`` is full or ttl."""

    def breaker_state(self, state: str) -> None:
        """``state`` is closed, open or half_open."""

    def drift(self, missing: int, extra: int, stale: int) -> None:
        """Totals of the last reconcile over all tenants."""

    def phase(self, name: str) -> None: ...


class NullSink:
    """Discards every event."""

    def read(self, backend: str, role: str, outcome: str, seconds: float) -> None:
        pass

    def fallback(self, from_backend: str, to_backend: str) -> None:
        pass

    def shadow_compared(self, comparison: Comparison) -> None:
        pass

    def shadow_dropped(self, reason: str) -> None:
        pass

    def shadow_error(self, backend: str) -> None:
        pass

    def dual_write_error(self) -> None:
        pass

    def dual_write_skipped(self, reason: str) -> None:
        pass

    def outbox_size(self, size: int, oldest_age_s: float | None = None) -> None:
        pass

    def outbox_dropped(self, reason: str, count: int = 1) -> None:
        pass

    def breaker_state(self, state: str) -> None:
        pass

    def drift(self, missing: int, extra: int, stale: int) -> None:
        pass

    def phase(self, name: str) -> None:
        pass


@dataclass
class RecordingSink:
    """Keeps every event as ``(name, args)`` in order; thread-safe. For tests and reports."""

    events: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _add(self, name: str, *args: Any) -> None:
        with self._lock:
            self.events.append((name, args))

    def of(self, name: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [args for n, args in self.events if n == name]

    def read(self, backend: str, role: str, outcome: str, seconds: float) -> None:
        self._add("read", backend, role, outcome, seconds)

    def fallback(self, from_backend: str, to_backend: str) -> None:
        self._add("fallback", from_backend, to_backend)

    def shadow_compared(self, comparison: Comparison) -> None:
        self._add("shadow_compared", comparison)

    def shadow_dropped(self, reason: str) -> None:
        self._add("shadow_dropped", reason)

    def shadow_error(self, backend: str) -> None:
        self._add("shadow_error", backend)

    def dual_write_error(self) -> None:
        self._add("dual_write_error")

    def dual_write_skipped(self, reason: str) -> None:
        self._add("dual_write_skipped", reason)

    def outbox_size(self, size: int, oldest_age_s: float | None = None) -> None:
        self._add("outbox_size", size, oldest_age_s)

    def outbox_dropped(self, reason: str, count: int = 1) -> None:
        self._add("outbox_dropped", reason, count)

    def breaker_state(self, state: str) -> None:
        self._add("breaker_state", state)

    def drift(self, missing: int, extra: int, stale: int) -> None:
        self._add("drift", missing, extra, stale)

    def phase(self, name: str) -> None:
        self._add("phase", name)


class PrometheusSink:
    """The contract's metrics on ``registry``; every series labelled env and shadow_version.

    >>> from prometheus_client import CollectorRegistry
    >>> sink = PrometheusSink(CollectorRegistry(), env="local", shadow_version="dev",
    ...                       sample="0.25", app_version="0.1.0", primary="faiss", target="chroma")
    >>> sink.shadow_dropped("timeout")
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        env: str,
        shadow_version: str,
        sample: str,
        app_version: str,
        primary: str,
        target: str | None,
    ) -> None:
        self.registry = registry
        self._base = {"env": env, "shadow_version": shadow_version}
        self._sample = sample
        base = ["env", "shadow_version"]

        def hist(name: str, doc: str, labels: list[str], buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, [*labels, *base], buckets=buckets, registry=registry)

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name.removesuffix("_total"), doc, [*labels, *base], registry=registry)

        def gauge(
            name: str, doc: str, labels: list[str], mode: _GaugeMode = "livemostrecent"
        ) -> Gauge:
            # Several service workers (prometheus_client's multiprocess mode): by default the
            # value the latest live worker set (what they share: the outbox, the phase);
            # ignored in a single process.
            return Gauge(name, doc, [*labels, *base], registry=registry, multiprocess_mode=mode)

        self.shadow_latency = hist(
            "retrieval_shadow_latency_seconds", "Shadow search latency.", ["backend", "sample"],
            LATENCY_BUCKETS,
        )  # fmt: skip
        self.agreement = hist(
            "retrieval_shadow_agreement_at_5", "Agreement@5 of shadow vs primary.",
            ["backend", "k", "sample"], RATIO_BUCKETS,
        )  # fmt: skip
        self.ndcg = hist(
            "retrieval_shadow_ndcg_at_10", "nDCG@10 of shadow graded by primary.",
            ["backend", "k", "sample"], RATIO_BUCKETS,
        )  # fmt: skip
        self.dropped = counter(
            "retrieval_shadow_dropped_total", "Shadow reads dropped.", ["reason"]
        )
        self.shadow_errors = counter(
            "retrieval_shadow_errors_total", "Shadow searches that failed.", ["backend"]
        )
        self.dw_errors = counter(
            "retrieval_dual_write_errors_total", "Writes to the other backend that failed.", []
        )
        self.dw_skipped = counter(
            "retrieval_dual_write_skipped_total", "Writes not attempted (breaker open).",
            ["reason"],
        )  # fmt: skip
        self.outbox = gauge("retrieval_dual_write_outbox_size", "Items in the outbox.", [])
        self.outbox_age = gauge(
            "retrieval_dual_write_outbox_oldest_age_seconds", "Age of the oldest outbox item.", []
        )
        self.outbox_drops = counter(
            "retrieval_dual_write_outbox_dropped_total", "Outbox items dropped.", ["reason"]
        )
        # Each worker has its own breaker: a state is 1 when any live worker is in it, so
        # {state="open"} == 1 whenever some worker skips the target (not only the latest
        # worker to change state).
        self.breaker = gauge(
            "retrieval_dual_write_breaker_state",
            "1 for the breaker's current state (closed, open, half_open).",
            ["state"],
            mode="livemax",
        )
        self.total = counter(
            "retrieval_total", "Searches by backend, role and outcome.",
            ["backend", "role", "outcome"],
        )  # fmt: skip
        self.duration = hist(
            "retrieval_duration_seconds", "Search latency by backend and role.",
            ["backend", "role"], LATENCY_BUCKETS,
        )  # fmt: skip
        self.fallbacks = counter(
            "retrieval_fallback_total", "Reads served by the other backend.", ["from", "to"]
        )
        self.score_delta = hist(
            "retrieval_dual_read_score_delta", "Mean |score difference| on shared documents.",
            ["backend"], SCORE_DELTA_BUCKETS,
        )  # fmt: skip
        self.latency_delta = hist(
            "retrieval_dual_read_latency_delta_seconds",
            "How much slower the shadow answered than the primary (0 when faster).",
            ["backend"], LATENCY_DELTA_BUCKETS,
        )  # fmt: skip
        self.mismatches = counter(
            "retrieval_dual_read_mismatch_total", "Shadow results with agreement@5 < 1.",
            ["backend"],
        )  # fmt: skip
        self.drift_gauge = gauge(
            "retrieval_reconcile_drift", "Documents out of step at the last reconcile.", ["kind"]
        )
        self.phase_info = gauge("retrieval_phase_info", "1 for the current phase.", ["phase"])
        self.build_info = gauge(
            "retrieval_build_info", "Build and backends.", ["app_version", "primary", "target"]
        )
        self.build_info.labels(
            app_version=app_version, primary=primary, target=target or "", **self._base
        ).set(1)
        # Pre-create the label sets operators query, so rates exist before the first event.
        for reason in ("queue_full", "timeout"):
            self.dropped.labels(reason=reason, **self._base)
        self.dw_skipped.labels(reason="circuit_open", **self._base)
        self.dw_errors.labels(**self._base)
        for reason in ("full", "ttl"):
            self.outbox_drops.labels(reason=reason, **self._base)
        self.outbox.labels(**self._base).set(0)

    def read(self, backend: str, role: str, outcome: str, seconds: float) -> None:
        self.total.labels(backend=backend, role=role, outcome=outcome, **self._base).inc()
        self.duration.labels(backend=backend, role=role, **self._base).observe(seconds)

    def fallback(self, from_backend: str, to_backend: str) -> None:
        self.fallbacks.labels(**{"from": from_backend, "to": to_backend}, **self._base).inc()

    def shadow_compared(self, comparison: Comparison) -> None:
        b, s = comparison.backend, comparison.sample or self._sample
        self.shadow_latency.labels(backend=b, sample=s, **self._base).observe(comparison.latency_s)
        self.agreement.labels(backend=b, k="5", sample=s, **self._base).observe(
            comparison.agreement_at_5
        )
        self.ndcg.labels(backend=b, k="10", sample=s, **self._base).observe(comparison.ndcg_at_10)
        if comparison.score_delta is not None:
            self.score_delta.labels(backend=b, **self._base).observe(comparison.score_delta)
        self.latency_delta.labels(backend=b, **self._base).observe(
            max(0.0, comparison.latency_delta_s)
        )
        mismatches = self.mismatches.labels(backend=b, **self._base)
        if comparison.mismatch:
            mismatches.inc()

    def shadow_dropped(self, reason: str) -> None:
        self.dropped.labels(reason=reason, **self._base).inc()

    def shadow_error(self, backend: str) -> None:
        self.shadow_errors.labels(backend=backend, **self._base).inc()

    def dual_write_error(self) -> None:
        self.dw_errors.labels(**self._base).inc()

    def dual_write_skipped(self, reason: str) -> None:
        self.dw_skipped.labels(reason=reason, **self._base).inc()

    def outbox_size(self, size: int, oldest_age_s: float | None = None) -> None:
        self.outbox.labels(**self._base).set(size)
        self.outbox_age.labels(**self._base).set(oldest_age_s or 0.0)

    def outbox_dropped(self, reason: str, count: int = 1) -> None:
        self.outbox_drops.labels(reason=reason, **self._base).inc(count)

    def breaker_state(self, state: str) -> None:
        for name in ("closed", "open", "half_open"):
            self.breaker.labels(state=name, **self._base).set(1 if name == state else 0)

    def drift(self, missing: int, extra: int, stale: int) -> None:
        for kind, value in (("missing", missing), ("extra", extra), ("stale", stale)):
            self.drift_gauge.labels(kind=kind, **self._base).set(value)

    def phase(self, name: str) -> None:
        for known in (
            "legacy",
            "dual_write",
            "shadow_read",
            "cutover",
            "swapped",
            "done",
            "custom",
        ):
            self.phase_info.labels(phase=known, **self._base).set(1 if known == name else 0)


def new_registry() -> CollectorRegistry:
    """A fresh registry for a `PrometheusSink` (never the process-wide default)."""
    return CollectorRegistry()


def serve_metrics(
    registry: CollectorRegistry, port: int, host: str = "127.0.0.1"
) -> Callable[[], None]:
    """Expose ``registry`` at ``http://host:port/metrics`` from a daemon thread, for processes
    that are not the HTTP service (``shadowswap reconcile --every``). Returns a function that
    stops the server. Raises OSError when the port cannot be bound."""
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop

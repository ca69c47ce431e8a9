"""Metrics: the one place that knows Prometheus (CONTRACT §2). A foundation module: it imports
nothing of shadowswap, so every layer may use it.

It owns the contract's instruments, made once by `Metrics` on a registry that is passed in
(never the process-wide default; a throwaway registry is the "null" metrics, `Metrics.null`).
Code reports events through `Metrics`' methods or uses its instruments directly; tests read
values back with ``registry.get_sample_value(...)``.

Values owned elsewhere are not pushed: the outbox's size, oldest age and drops (stored, so
changed by other processes too), the last reconcile's drift and the rollout phase are read
when Prometheus scrapes, by a collector that asks their owner (`Metrics.read_outbox_from`,
`read_drift_from`, `read_phase_from`). The breaker state is the exception: every service
worker has its own breaker, and only a gauge in prometheus_client's multiprocess files
(``livemax``) can say "open" while any worker's breaker is open, so the breaker reports its
changes to `Metrics.breaker_state` (a listener, as pybreaker has them).

Listeners (`Metrics.listen`) see every event with its arguments, for the rehearsal's timeline.

Every Prometheus series carries the labels ``env`` (METRIC_ENV) and ``shadow_version``
(SHADOW_PIPELINE_VERSION). ``sample`` is the configured sample rate as written (``0.10``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger("shadowswap.metrics")

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


PHASES = ("legacy", "dual_write", "shadow_read", "cutover", "swapped", "done", "custom")
OUTBOX_DROP_REASONS = ("full", "ttl")
DRIFT_KINDS = ("missing", "extra", "stale")

#: ``listener(event, args)``: an event `Metrics` reported, with its arguments.
Listener = Callable[[str, tuple[Any, ...]], None]


@dataclass(frozen=True)
class OutboxFigures:
    """What the outbox holds, as stored: items, the oldest item's age, drops by reason
    (totals since the outbox was created, also those made by other processes)."""

    size: int
    oldest_age_s: float | None
    dropped: Mapping[str, int]


@dataclass(frozen=True)
class Drift:
    """Totals of the last complete reconcile over all tenants."""

    missing: int
    extra: int
    stale: int


class Metrics:
    """The contract's instruments on ``registry``; every series labelled env and shadow_version.

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> metrics = Metrics(registry, env="local", shadow_version="dev", sample="0.25",
    ...                   app_version="0.1.0", primary="faiss", target="chroma")
    >>> metrics.shadow_dropped("timeout")
    >>> registry.get_sample_value("retrieval_shadow_dropped_total",
    ...     {"reason": "timeout", "env": "local", "shadow_version": "dev"})
    1.0
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
        #: the ``env`` and ``shadow_version`` labels every series carries
        self.base = {"env": env, "shadow_version": shadow_version}
        #: the configured sample rate as written, for a shadow result that names none
        self.sample = sample
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()
        base = ["env", "shadow_version"]

        def hist(name: str, doc: str, labels: list[str], buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, [*labels, *base], buckets=buckets, registry=registry)

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name.removesuffix("_total"), doc, [*labels, *base], registry=registry)

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
        # Each worker has its own breaker: a state is 1 when any live worker is in it, so
        # {state="open"} == 1 whenever some worker skips the target (not only the latest
        # worker to change state). Ignored in a single process.
        self.breaker = Gauge(
            "retrieval_dual_write_breaker_state",
            "1 for the breaker's current state (closed, open, half_open).",
            ["state", *base],
            registry=registry,
            multiprocess_mode="livemax",
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
        self.hit_classes = counter(
            "retrieval_shadow_hit_class_total",
            "Shadow comparisons in which the target returned a document the primary did not, "
            "by what the lookup found: foreign (absent from the tenant in the primary), stale "
            "(another version), late (written after the primary answered), ranking (the same "
            "document), unchecked (the lookup failed).",
            ["backend", "class"],
        )
        # The value the latest live worker set (a build is the same in every worker).
        self.build_info = Gauge(
            "retrieval_build_info", "Build and backends.",
            ["app_version", "primary", "target", *base], registry=registry,
            multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.build_info.labels(
            app_version=app_version, primary=primary, target=target or "", **self.base
        ).set(1)
        #: the values read at scrape time; also part of a multiprocess scrape's registry
        self.scraped = ScrapeTimeCollector(self.base)
        registry.register(self.scraped)
        # Pre-create the label sets operators query, so rates exist before the first event.
        for reason in ("queue_full", "timeout"):
            self.dropped.labels(reason=reason, **self.base)
        self.dw_skipped.labels(reason="circuit_open", **self.base)
        self.dw_errors.labels(**self.base)

    @classmethod
    def null(cls) -> Metrics:
        """Metrics on a throwaway registry: for code that runs without an exposition."""
        return cls(
            CollectorRegistry(), env="", shadow_version="", sample="", app_version="",
            primary="", target=None,
        )  # fmt: skip

    # -- listeners ------------------------------------------------------------------------
    def listen(self, listener: Listener) -> None:
        """Call ``listener(event, args)`` after every event; it must not raise (it is
        logged and ignored if it does)."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def _emit(self, event: str, *args: Any) -> None:
        for listener in self._listeners:
            try:
                listener(event, args)
            except Exception:
                log.exception("metrics listener failed", extra={"event": event})

    # -- values read at scrape time -------------------------------------------------------
    def read_outbox_from(self, read: Callable[[], OutboxFigures]) -> None:
        """Ask ``read`` for the outbox's figures whenever Prometheus scrapes."""
        self.scraped.outbox = read

    def read_drift_from(self, read: Callable[[], Drift | None]) -> None:
        """Ask ``read`` for the last reconcile's drift (None: no reconcile yet) at scrape."""
        self.scraped.drift = read

    def read_phase_from(self, read: Callable[[], str]) -> None:
        """Ask ``read`` for the rollout phase's name at scrape."""
        self.scraped.phase = read

    # -- events ---------------------------------------------------------------------------
    def read(self, backend: str, role: str, outcome: str, seconds: float) -> None:
        """A search by ``role`` (primary|shadow), ``outcome`` ok|error|timeout."""
        self.total.labels(backend=backend, role=role, outcome=outcome, **self.base).inc()
        self.duration.labels(backend=backend, role=role, **self.base).observe(seconds)
        self._emit("read", backend, role, outcome, seconds)

    def fallback(self, from_backend: str, to_backend: str) -> None:
        self.fallbacks.labels(**{"from": from_backend, "to": to_backend}, **self.base).inc()
        self._emit("fallback", from_backend, to_backend)

    def shadow_dropped(self, reason: str) -> None:
        """``reason`` is queue_full or timeout."""
        self.dropped.labels(reason=reason, **self.base).inc()
        self._emit("shadow_dropped", reason)

    def shadow_error(self, backend: str) -> None:
        self.shadow_errors.labels(backend=backend, **self.base).inc()
        self._emit("shadow_error", backend)

    def dual_write_error(self) -> None:
        self.dw_errors.labels(**self.base).inc()
        self._emit("dual_write_error")

    def dual_write_skipped(self, reason: str) -> None:
        """``reason`` is circuit_open."""
        self.dw_skipped.labels(reason=reason, **self.base).inc()
        self._emit("dual_write_skipped", reason)

    def breaker_state(self, state: str) -> None:
        """The breaker's listener: ``state`` is closed, open or half_open."""
        for name in ("closed", "open", "half_open"):
            self.breaker.labels(state=name, **self.base).set(1 if name == state else 0)
        self._emit("breaker_state", state)

    def outbox_sampled(self, size: int, oldest_age_s: float | None) -> None:
        """The outbox's size as a writer or replayer just saw it: for listeners only (the
        exposition reads the outbox itself at scrape time)."""
        self._emit("outbox_size", size, oldest_age_s)


class ScrapeTimeCollector(Collector):
    """The gauges and counters whose values their owners hold, read when Prometheus scrapes.

    A reader that fails is logged; the figures it gave last are shown in its place.

    With several service workers these are deliberately not multiprocess gauges: the workers
    share one outbox and one state directory, and only the worker serving the scrape reads
    them, so each is counted once. As gauges written by every worker they would need a
    multiprocess mode, and none fits: ``livesum`` would count the shared outbox once per
    worker, ``livemax`` or ``mostrecent`` would show a worker's stale view of it.
    """

    def __init__(self, base: Mapping[str, str]) -> None:
        self._base = dict(base)
        self.outbox: Callable[[], OutboxFigures] | None = None
        self.drift: Callable[[], Drift | None] | None = None
        self.phase: Callable[[], str] | None = None
        self._last_outbox: OutboxFigures | None = None

    def collect(self) -> Iterable[Metric]:
        names, values = list(self._base), list(self._base.values())
        yield from self._outbox(names, values)
        drift = GaugeMetricFamily(
            "retrieval_reconcile_drift", "Documents out of step at the last reconcile.",
            labels=["kind", *names],
        )  # fmt: skip
        found = self._read(self.drift, "drift")
        if isinstance(found, Drift):
            for kind in DRIFT_KINDS:
                drift.add_metric([kind, *values], getattr(found, kind))
        yield drift
        phase = GaugeMetricFamily(
            "retrieval_phase_info", "1 for the current phase.", labels=["phase", *names]
        )
        current = self._read(self.phase, "phase")
        if isinstance(current, str):
            for known in PHASES:
                phase.add_metric([known, *values], 1 if known == current else 0)
        yield phase

    def _outbox(self, names: list[str], values: list[str]) -> Iterable[Metric]:
        size = GaugeMetricFamily(
            "retrieval_dual_write_outbox_size", "Items in the outbox.", labels=names
        )
        age = GaugeMetricFamily(
            "retrieval_dual_write_outbox_oldest_age_seconds", "Age of the oldest outbox item.",
            labels=names,
        )  # fmt: skip
        drops = CounterMetricFamily(
            "retrieval_dual_write_outbox_dropped", "Outbox items dropped.",
            labels=["reason", *names],
        )  # fmt: skip
        if self.outbox is not None:
            try:
                self._last_outbox = self.outbox()
            except Exception as exc:  # noqa: BLE001 - a scrape must answer all the same
                log.warning("outbox metrics not refreshed", extra={"error": str(exc)})
        figures = self._last_outbox
        size.add_metric(values, figures.size if figures else 0)
        if figures is not None:
            age.add_metric(values, figures.oldest_age_s or 0.0)
        for reason in OUTBOX_DROP_REASONS:
            drops.add_metric([reason, *values], figures.dropped.get(reason, 0) if figures else 0)
        return (size, age, drops)

    @staticmethod
    def _read(read: Callable[[], object] | None, what: str) -> object:
        if read is None:
            return None
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 - a scrape must answer all the same
            log.warning("metric not read", extra={"metric": what, "error": str(exc)})
            return None


def new_registry() -> CollectorRegistry:
    """A fresh registry for `Metrics` (never the process-wide default)."""
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

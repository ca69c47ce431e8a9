"""`Metrics` for tests: the real class on a fresh registry, with a listener that keeps every
event it heard in order (`of`), the shadow observations published through a router built by
`tests.router_helpers.make_router` (`observed`), and values read back from the registry
(`value`, ``registry.get_sample_value``)."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry

from shadowswap.metrics import Metrics
from shadowswap.shadow.observations import MemoryObservations, Observation


class RecordingMetrics(Metrics):
    """`Metrics` that also remembers its events; thread-safe."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(
            registry if registry is not None else CollectorRegistry(),
            env="test", shadow_version="v1", sample="0.25", app_version="0",
            primary="faiss", target="chroma",
        )  # fmt: skip
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.observed = MemoryObservations()
        self._events_lock = threading.Lock()
        self.listen(self._keep)

    def _keep(self, event: str, args: tuple[Any, ...]) -> None:
        with self._events_lock:
            self.events.append((event, args))

    def of(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every ``name`` event, in order."""
        with self._events_lock:
            return [args for n, args in self.events if n == name]

    def compared(self) -> list[Observation]:
        """The ``compared`` observations published (router built by make_router)."""
        return [o for o in self.observed.items if o.outcome == "compared"]

    def drops(self) -> dict[str, float]:
        """``retrieval_shadow_dropped_total`` by reason."""
        name = "retrieval_shadow_dropped_total"
        return {reason: self.value(name, reason=reason) for reason in ("queue_full", "timeout")}

    def value(self, name: str, **labels: str) -> float:
        """A sample's value on this registry (0 when the series does not exist)."""
        found = self.registry.get_sample_value(name, {**labels, **self.base})
        return 0.0 if found is None else found


class Both:
    """An `ObservationSink` that hands every observation to two sinks."""

    def __init__(self, first: MemoryObservations, second: Any) -> None:
        self._first, self._second = first, second

    def record(self, observation: Observation) -> None:
        self._first.record(observation)
        self._second.record(observation)

    def close(self) -> None:
        self._second.close()


def compared(
    backend: str,
    latency_s: float,
    agreement_at_5: float,
    ndcg_at_10: float,
    score_delta: float | None,
    latency_delta_s: float,
    mismatch: bool,
    sample: str = "",
) -> Observation:
    """A ``compared`` observation holding only what the metrics publish (no ids, no scores)."""
    return Observation(
        ts=0.0, tenant="t", trace_id="0" * 32, primary_backend="faiss", shadow_backend=backend,
        outcome="compared", k=10, filtered=False, primary_ids=(), primary_scores=(),
        primary_latency_s=latency_s - latency_delta_s, shadow_latency_s=latency_s,
        agreement_at_5=agreement_at_5, agreement_cutoff=5, ndcg_at_10=ndcg_at_10,
        score_delta=score_delta, latency_delta_s=latency_delta_s, mismatch=mismatch,
        sample=sample,
    )  # fmt: skip

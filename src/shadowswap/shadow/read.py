"""One shadow read: the task the router hands to the `ShadowExecutor` once the caller's
answer is ready. It searches the shadow backend with the same query, judges the target's
extra hits by looking them up and puts both answers back at the same moment
(`shadowswap.shadow.judge`; the search and the lookups run within the shadow deadline), makes
one `Observation` of what it saw and publishes it to its sinks (the metrics, the observation
log), counts the search in the metrics, and writes a log line.

Nothing here runs on the caller's thread, and nothing here raises into the executor
(which guards the callbacks anyway).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shadowswap.clock import Clock
from shadowswap.metrics import Metrics
from shadowswap.shadow.compare import measure
from shadowswap.shadow.judge import Judged, judge
from shadowswap.shadow.observations import Observation, ObservationSink, Outcome
from shadowswap.shadow.recent import RecentWrites
from shadowswap.stores.base import VectorStore, search_store
from shadowswap.values import MetaValue, Query, SearchResult, Vector

log = logging.getLogger("shadowswap.shadow.read")


class LogLimiter:
    """At most one warning per ``every_s`` seconds per message; the ones held back are
    counted in the next line (``suppressed``). A failing target at 500 reads/s must not
    write 500 log lines a second: the metrics count every event."""

    def __init__(self, clock: Clock, every_s: float = 10.0) -> None:
        self._clock = clock
        self._every_s = every_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, msg: str, extra: dict[str, object]) -> None:
        now = self._clock.monotonic()
        with self._lock:
            last = self._last.get(msg)
            if last is not None and now - last < self._every_s:
                self._held[msg] = self._held.get(msg, 0) + 1
                return
            self._last[msg] = now
            suppressed = self._held.pop(msg, 0)
        log.warning(msg, extra={**extra, "suppressed": suppressed})


@dataclass(frozen=True)
class Shadowed:
    """What the shadow call returns: the target's answer, how long its search took (the
    lookups not included), and the judgement of the two answers."""

    answer: SearchResult
    search_s: float
    judged: Judged


@dataclass(frozen=True)
class ShadowRead:
    """The shadow half of one routed read (see the module docstring)."""

    request: Query  # checked once, at the edge; the shadow store trusts it
    trace_id: str
    store: VectorStore
    shadow_backend: str
    primary_backend: str
    primary: SearchResult
    primary_latency_s: float
    sample: str
    metrics: Metrics
    sinks: Sequence[ObservationSink]  # where each observation is published
    clock: Clock
    limiter: LogLimiter
    primary_store: VectorStore | None = None  # for the lookups; None: extras not judged
    recent: RecentWrites | None = None  # the process's write sequence
    since: int = 0  # the sequence taken before the primary was searched

    @property
    def tenant(self) -> str:
        return self.request.tenant

    @property
    def query(self) -> Vector:
        return self.request.vector

    @property
    def k(self) -> int:
        return self.request.k

    @property
    def filter(self) -> Mapping[str, MetaValue]:
        return self.request.filter

    def call(self) -> Shadowed:
        started = self.clock.monotonic()
        answer = search_store(self.store, self.request)
        search_s = self.clock.monotonic() - started
        judged = judge(
            self.tenant, self.primary.hits, answer.hits,
            primary_store=self.primary_store, shadow_store=self.store,
            recent=self.recent, since=self.since,
        )  # fmt: skip
        return Shadowed(answer, search_s, judged)

    def answered(self, answer: Shadowed, seconds: float) -> None:
        seconds = answer.search_s
        j = answer.judged
        m = measure(
            j.primary, j.shadow, primary_latency_s=self.primary_latency_s, shadow_latency_s=seconds
        )
        self.metrics.read(self.shadow_backend, "shadow", "ok", seconds)
        hits = answer.answer.hits
        self._publish(
            "compared",
            shadow_ids=tuple(h.doc_id for h in hits),
            shadow_scores=tuple(float(h.score) for h in hits),
            shadow_latency_s=seconds,
            agreement_at_5=m.agreement_at_5,
            agreement_cutoff=m.agreement_cutoff,
            ndcg_at_10=m.ndcg_at_10,
            score_delta=m.score_delta,
            latency_delta_s=m.latency_delta_s,
            mismatch=m.mismatch,
            looked_up=j.looked_up,
            left_out=j.left_out,
            late=j.late,
            foreign=j.foreign,
            stale=j.stale,
            ranking=j.ranking,
            unchecked=j.unchecked,
        )
        if j.foreign or j.stale:
            self.limiter.warning(
                "shadow returned documents the primary does not hold for this tenant",
                {**self._ids(), "foreign": list(j.foreign[:10]), "stale": list(j.stale[:10])},
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "shadow compared",
                extra={
                    **self._ids(),
                    "agreement_at_5": m.agreement_at_5,
                    "ndcg_at_10": m.ndcg_at_10,
                    "mismatch": m.mismatch,
                    "shadow_latency_s": round(seconds, 6),
                },
            )

    def failed(self, error: Exception, seconds: float) -> None:
        self.metrics.read(self.shadow_backend, "shadow", "error", seconds)
        self.metrics.shadow_error(self.shadow_backend)
        self._publish("error", shadow_latency_s=seconds, error=type(error).__name__)
        self.limiter.warning(
            "shadow read failed",
            {**self._ids(), "error": f"{type(error).__name__}: {error}"},
        )

    def timed_out(self, waited_s: float, in_call: bool) -> None:
        if in_call:  # a search was made and did not answer in time
            self.metrics.read(self.shadow_backend, "shadow", "timeout", waited_s)
        self._publish("timeout")
        self.limiter.warning(
            "shadow read dropped: deadline passed",
            {**self._ids(), "in_call": in_call, "waited_s": round(waited_s, 6)},
        )

    def _ids(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "trace_id": self.trace_id,
            "backend": self.shadow_backend,
            "primary": self.primary_backend,
        }

    def _publish(self, outcome: Outcome, **measures: object) -> None:
        """Make the one observation of this read and hand it to every sink."""
        hits = self.primary.hits
        observation = Observation(
            ts=self.clock.now(),
            tenant=self.tenant,
            trace_id=self.trace_id,
            primary_backend=self.primary_backend,
            shadow_backend=self.shadow_backend,
            outcome=outcome,
            k=self.k,
            filtered=bool(self.filter),
            primary_ids=tuple(h.doc_id for h in hits),
            primary_scores=tuple(float(h.score) for h in hits),
            primary_latency_s=self.primary_latency_s,
            sample=self.sample,
            write_seq=self.since if self.recent is not None else None,
            **measures,  # type: ignore[arg-type]
        )
        for sink in self.sinks:
            sink.record(observation)

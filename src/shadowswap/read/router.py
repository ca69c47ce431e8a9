"""The retrieval router: what an application (or the HTTP service) calls to search.

A read's input is checked once, into a `shadowswap.values.Query`: `Router.search` builds it
from raw arguments, the HTTP service builds it from the request body and calls
`Router.search_query`; below that nothing checks it again (a `BaseStore` only applies its
dimension and metric, `shadowswap.stores.base.search_store`).

For each read it takes the settings once (`SettingsSource.current`, so an edited env file
applies to the next request) and asks the policy once (`shadowswap.policy.plan`: who serves
the tenant, whether it is shadowed, where it may fall back), then:

1. **Serve.** The backend that serves the tenant's reads (`Plan.read`: the primary, or the
   target for a cutover tenant) answers, within
   ``RETRIEVAL_READ_TIMEOUT_MS``. The call runs on that backend's `Bulkhead` so a hung
   backend costs the caller the deadline, never more, and never more than a bounded number
   of threads. ``RETRIEVAL_READ_TIMEOUT_MS=0`` runs the call on the caller's thread instead,
   with no deadline (and no protection against a hung backend).
2. **Fall back (runbook 003).** When that backend raises a `StoreError`, misses the deadline
   or has every bulkhead slot taken, the read is served by `Plan.fallback` (the other
   backend, when dual write keeps it in step for this tenant): the router logs
   "falling back" with tenant and trace id and counts ``retrieval_fallback_total{from,to}``.
   Without a fallback, or when the fallback fails too, the caller gets `StoreUnavailable`
   saying what failed. Each attempt has its own deadline, so a read ends within twice
   ``RETRIEVAL_READ_TIMEOUT_MS`` at worst. Bad input (`InvalidInput`) is the caller's
   fault: it is raised as is, with no fallback.
3. **Shadow.** If the read is eligible (`Plan.shadow`: flag on, a target, tenant allowed)
   and sampled (``FF_RETRIEVAL_SHADOW_SAMPLE_RATE``, drawn from the injected
   `random.Random`), the same query is handed to the `ShadowExecutor` for the other backend
   *after* the answer is ready; the caller does not wait for it. Fallback reads are not
   shadowed (there is no primary answer to compare with).

The caller always gets the serving backend's answer unchanged, in a `RoutedResult`.

>>> import random
>>> from shadowswap.clock import SystemClock
>>> from shadowswap.settings.config import StaticSettings, load_settings
>>> from shadowswap.metrics import Metrics
>>> from shadowswap.stores.memory import MemoryStore
>>> from shadowswap.values import Document
>>> store = MemoryStore()
>>> _ = store.upsert("acme", [Document("acme", "a", [1.0, 0.0])])
>>> router = Router(primary=store, target=None,
...                 settings=StaticSettings(load_settings(environ={"RETRIEVAL_BACKEND": "memory"})),
...                 metrics=Metrics.null(), clock=SystemClock(), rng=random.Random(0))
>>> router.search("acme", [1.0, 0.0], k=1).hits[0].doc_id
'a'
>>> router.close()
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

from shadowswap.clock import Clock
from shadowswap.errors import StoreError, StoreUnavailable
from shadowswap.metrics import Metrics
from shadowswap.policy import Plan, Role, plan
from shadowswap.read.bulkhead import Bulkhead, BulkheadFull
from shadowswap.settings.config import Settings, SettingsSource
from shadowswap.shadow.executor import ExecutorSizes, ExecutorStats, ShadowExecutor
from shadowswap.shadow.observations import ObservationSink
from shadowswap.shadow.publish import ObservationMetrics
from shadowswap.shadow.read import LogLimiter, ShadowRead
from shadowswap.shadow.recent import RecentWrites
from shadowswap.stores.base import VectorStore, search_store
from shadowswap.traceids import check_trace_id as _check_trace_id
from shadowswap.traceids import new_trace_id
from shadowswap.values import Filter, Hit, Query, SearchResult, VectorLike

log = logging.getLogger("shadowswap.router")

#: Reads in flight per backend before new ones fail fast (see `shadowswap.read.bulkhead`).
DEFAULT_READ_CONCURRENCY = 64


@dataclass(frozen=True)
class RoutedResult:
    """The answer a caller gets: the serving backend's hits, unchanged, and where they came
    from. ``role`` is the configured role of that backend; ``fallback`` is True when the
    backend that should have served failed and the other one answered."""

    hits: tuple[Hit, ...]
    backend: str
    role: Role
    trace_id: str
    latency_s: float
    fallback: bool = False

    @property
    def doc_ids(self) -> list[str]:
        return [h.doc_id for h in self.hits]


@dataclass(frozen=True)
class RouterStats:
    """What `Router.stats` reports."""

    reads_in_flight: dict[str, int]
    shadow: ExecutorStats


@dataclass(frozen=True)
class _Request:
    """One read: its checked query (both backends see it), its trace id, when it started,
    and the policy's plan for its tenant."""

    query: Query
    trace_id: str
    plan: Plan
    started: float
    since: int  # the write sequence before the primary search (`RecentWrites.now`)

    @property
    def tenant(self) -> str:
        return self.query.tenant


class _Failed(Exception):
    """A backend did not answer a read; ``reason`` is for the log and the caller's error."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")


@dataclass(frozen=True)
class _Backend:
    store: VectorStore
    bulkhead: Bulkhead

    @property
    def kind(self) -> str:
        return self.store.kind


class Router:
    """Serves reads, falls back, shadows (see the module docstring).

    ``shadow`` is a `ShadowExecutor` to use (shared; the caller closes it), or the
    `ExecutorSizes` of one the router creates and closes (default sizes when None).
    ``observations`` receives one record per shadow read that reached an outcome.
    """

    def __init__(
        self,
        *,
        primary: VectorStore,
        target: VectorStore | None,
        settings: SettingsSource,
        metrics: Metrics,
        clock: Clock,
        rng: random.Random,
        shadow: ShadowExecutor | ExecutorSizes | None = None,
        observations: ObservationSink | None = None,
        read_concurrency: int = DEFAULT_READ_CONCURRENCY,
        recent: RecentWrites | None = None,
    ) -> None:
        self._settings = settings
        # the writer's sequence (`DualWriter.recent`): which documents changed during a read
        self._recent = recent
        self._metrics = metrics
        self._clock = clock
        self._rng = rng
        # every shadow observation goes to the metrics, and to the log when there is one
        self._sinks: tuple[ObservationSink, ...] = (ObservationMetrics(metrics),) + (
            (observations,) if observations is not None else ()
        )
        self._primary = _Backend(primary, Bulkhead(f"{primary.kind}-primary", read_concurrency))
        self._target = (
            None
            if target is None
            else _Backend(target, Bulkhead(f"{target.kind}-target", read_concurrency))
        )
        if isinstance(shadow, ShadowExecutor):
            self._executor, self._owns_executor = shadow, False
        else:
            self._executor = ShadowExecutor(
                metrics=metrics, clock=clock, sizes=shadow, name="shadow"
            )
            self._owns_executor = True
        self._limiter = LogLimiter(clock)
        self._warned: set[tuple[str, str]] = set()
        self._warn_lock = threading.Lock()

    @property
    def executor(self) -> ShadowExecutor:
        return self._executor

    def stats(self) -> RouterStats:
        """Reads in flight per backend (hung ones included) and the shadow's counters, for
        a status page."""
        in_flight = {self._primary.kind: self._primary.bulkhead.in_flight}
        if self._target is not None:
            in_flight[self._target.kind] = self._target.bulkhead.in_flight
        return RouterStats(reads_in_flight=in_flight, shadow=self._executor.stats())

    # -- the read ---------------------------------------------------------------------------
    def search(
        self,
        tenant: str,
        vector: VectorLike,
        k: int,
        filter: Filter | None = None,
        trace_id: str | None = None,
    ) -> RoutedResult:
        """Answer from the backend serving ``tenant``; see the module docstring.

        Raises `InvalidInput` for bad input and `StoreUnavailable` when no backend could
        answer. Never raises because of the shadow.
        """
        # The query holds private, read-only copies (the shadow uses them later). An empty
        # filter, or any false value, has always meant no filter here.
        return self.search_query(Query(tenant, vector, k, filter or None), trace_id)

    def search_query(self, query: Query, trace_id: str | None = None) -> RoutedResult:
        """`search` for a `Query` made already (the HTTP service makes one per request): it
        is not checked again, here or in the stores."""
        started = self._clock.monotonic()
        settings = self._settings.current()
        request = _Request(
            query=query,
            trace_id=_check_trace_id(trace_id) if trace_id is not None else new_trace_id(),
            plan=plan(settings, query.tenant),
            started=started,
            since=self._recent.now() if self._recent is not None else 0,
        )
        role = request.plan.read
        try:
            kind, answer, took = self._read(settings, role, request)
        except _Failed as failure:
            return self._fall_back(settings, failure, request)
        try:
            self._maybe_shadow(settings, request, kind, answer, took)
        except Exception:  # the caller's answer is ready; nothing may take it away
            log.exception(
                "shadow not started", extra={"tenant": query.tenant, "trace_id": request.trace_id}
            )
        return RoutedResult(
            answer.hits, kind, role, request.trace_id, self._clock.monotonic() - started
        )

    def close(self) -> None:
        """Stop the router's threads. The stores are the caller's to close."""
        if self._owns_executor:
            self._executor.close()
        self._primary.bulkhead.close()
        if self._target is not None:
            self._target.bulkhead.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving and falling back -----------------------------------------------------------
    def _read(
        self, settings: Settings, role: Role, request: _Request
    ) -> tuple[str, SearchResult, float]:
        """One attempt: the answer of the backend playing ``role``, or `_Failed`."""
        backend = self._backend(role, request.plan.kind(role))
        kind = backend.kind
        store, clock, query = backend.store, self._clock, request.query

        def timed() -> tuple[SearchResult, float]:
            t0 = clock.monotonic()
            result = search_store(store, query)
            return result, clock.monotonic() - t0

        timeout_s = settings.read_timeout_ms / 1000.0
        t0 = clock.monotonic()
        try:
            if timeout_s > 0:
                answer, took = backend.bulkhead.call(timed, timeout_s)
            else:
                answer, took = timed()
        except StoreError as exc:
            self._metrics.read(kind, "primary", "error", clock.monotonic() - t0)
            raise _Failed(kind, f"{type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            self._metrics.read(kind, "primary", "timeout", clock.monotonic() - t0)
            raise _Failed(
                kind, f"no answer within RETRIEVAL_READ_TIMEOUT_MS={settings.read_timeout_ms}"
            ) from exc
        except BulkheadFull as exc:
            self._metrics.read(kind, "primary", "timeout", clock.monotonic() - t0)
            raise _Failed(kind, f"{exc} (earlier reads have not returned)") from exc
        self._metrics.read(kind, "primary", "ok", took)
        return kind, answer, took

    def _fall_back(self, settings: Settings, failure: _Failed, request: _Request) -> RoutedResult:
        ids = {"tenant": request.tenant, "trace_id": request.trace_id}
        to_role = request.plan.fallback
        if to_role is None:
            log.error(
                "read failed and no fallback is in step",
                extra={**ids, "backend": failure.kind, "reason": failure.reason},
            )
            raise StoreUnavailable(
                failure.kind,
                "search",
                f"{failure.reason}; no fallback: the other backend is kept in step for this "
                "tenant only with FF_RETRIEVAL_DUAL_WRITE=ON and the tenant in "
                "RETRIEVAL_TENANT_ALLOWLIST (or served by the target)",
                request.tenant,
            )
        to_kind = request.plan.kind(to_role)
        log.warning(
            "falling back",
            extra={**ids, "from": failure.kind, "to": to_kind, "reason": failure.reason},
        )
        self._metrics.fallback(failure.kind, to_kind)
        try:
            kind, answer, _took = self._read(settings, to_role, request)
        except _Failed as second:
            log.error(
                "fallback read failed too",
                extra={**ids, "backend": second.kind, "reason": second.reason},
            )
            raise StoreUnavailable(
                failure.kind,
                "search",
                f"{failure.reason}; the fallback to {second.kind} failed too: {second.reason}",
                request.tenant,
            ) from None
        latency = self._clock.monotonic() - request.started
        return RoutedResult(answer.hits, kind, to_role, request.trace_id, latency, fallback=True)

    # -- shadowing --------------------------------------------------------------------------
    def _maybe_shadow(
        self, settings: Settings, request: _Request, kind: str, answer: SearchResult, took: float
    ) -> None:
        shadow = request.plan.shadow
        if shadow is None:
            return
        rate = settings.shadow_sample_rate
        if rate <= 0.0 or (rate < 1.0 and self._rng.random() >= rate):
            return
        try:
            backend = self._backend(shadow, request.plan.kind(shadow))
        except _Failed as missing:
            self._metrics.shadow_error(missing.kind)
            self._limiter.warning(
                "shadow read not possible",
                {"tenant": request.tenant, "trace_id": request.trace_id, "reason": missing.reason},
            )
            return
        task = ShadowRead(
            request=request.query,
            trace_id=request.trace_id,
            store=backend.store,
            shadow_backend=backend.kind,
            primary_backend=kind,
            primary=answer,
            primary_latency_s=took,
            sample=settings.shadow_sample_rate_text,
            metrics=self._metrics,
            sinks=self._sinks,
            clock=self._clock,
            limiter=self._limiter,
            primary_store=self._store_of_kind(kind),
            recent=self._recent,
            since=request.since,
        )
        self._executor.submit(task, settings.shadow_timeout_ms / 1000.0)

    # -- which store plays a role -----------------------------------------------------------
    def _store_of_kind(self, kind: str) -> VectorStore | None:
        """The open store of ``kind`` (the one that served a read), for the shadow's lookups."""
        for backend in (self._primary, self._target):
            if backend is not None and backend.kind == kind:
                return backend.store
        return None

    def _backend(self, role: Role, wanted: str) -> _Backend:
        """The store playing ``role``, whose kind the settings name ``wanted`` (`Plan.kind`).

        Normally the one given for that role. When the settings swap the two kinds
        (runbook 001: the new backend becomes primary, the old one stays as target) the
        stores follow their kinds. A role with no store fails like a backend that is down.
        """
        given, other = (
            (self._primary, self._target) if role == "primary" else (self._target, self._primary)
        )
        if given is not None and given.kind == wanted:
            return given
        if other is not None and other.kind == wanted:
            return other
        if given is None:
            raise _Failed(
                wanted,
                f"this router has no {role} store open (the settings name {wanted!r}); "
                "restart it with the backend configured",
            )
        self._warn_once(
            (role, wanted),
            "the settings name another backend than the store this router holds",
            {"role": role, "settings": wanted, "store": given.kind},
        )
        return given

    def _warn_once(self, key: tuple[str, str], msg: str, extra: dict[str, object]) -> None:
        with self._warn_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(msg, extra=extra)


__all__ = ["DEFAULT_READ_CONCURRENCY", "RoutedResult", "Router", "RouterStats", "new_trace_id"]

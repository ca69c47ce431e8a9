"""The one factory that builds a running shadowswap from settings: stores, read router, dual
writer, outbox, breaker and metrics. The HTTP service, the rehearsal and library users call it,
so they all wire the pieces the same way.

Stores are opened once, by kind: the primary (``RETRIEVAL_BACKEND``) and, when set, the target
(``RETRIEVAL_TARGET_BACKEND``). Flags, rates, allowlists, cutover and deadlines are read per
request from the `SettingsSource`, so an edited env file takes effect without a restart; the
router and the writer follow a swap of the two kinds (runbook 001). Naming a kind that was not
open at start needs a restart.

>>> from shadowswap.settings.config import StaticSettings, load_settings
>>> rt = build_runtime(StaticSettings(load_settings(environ={"RETRIEVAL_BACKEND": "memory"})))
>>> rt.router.search("acme", [1.0, 0.0], 3).hits
()
>>> rt.close()
"""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from shadowswap import __version__
from shadowswap.clock import Clock, SystemClock
from shadowswap.dualwrite.breaker import Breaker
from shadowswap.dualwrite.outbox import Outbox
from shadowswap.dualwrite.outbox_url import open_outbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.errors import ShadowswapError
from shadowswap.metrics import Metrics, OutboxFigures
from shadowswap.read.router import Router
from shadowswap.settings.config import Settings, SettingsSource
from shadowswap.settings.phase import classify
from shadowswap.shadow.observations import observation_log
from shadowswap.shadow.statelog import StateRecorder
from shadowswap.stores import open_store
from shadowswap.stores.base import BaseStore

log = logging.getLogger("shadowswap.runtime")


@dataclass
class Runtime:
    """Everything a process needs to serve reads and writes; `close` releases it all."""

    settings: SettingsSource
    primary: BaseStore
    target: BaseStore | None
    router: Router
    writer: DualWriter
    outbox: Outbox
    breaker: Breaker
    metrics: Metrics
    registry: CollectorRegistry | None
    clock: Clock
    #: writes state records to the observation log (None when there is no log)
    recorder: StateRecorder | None = None
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Stop the router's and the writer's threads, then close the outbox and the stores."""
        if self._closed:
            return
        self._closed = True
        if self.recorder is not None:  # its last record reads the outbox: first
            self.recorder.close()
        for step in (self.router.close, self.writer.close, self.outbox.close):
            try:
                step()
            except ShadowswapError as exc:  # keep closing the rest
                log.error("close failed", extra={"error": str(exc)})
        for store in (self.primary, self.target):
            if store is not None:
                with contextlib.suppress(ShadowswapError):
                    store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def metrics_for(settings: Settings, registry: CollectorRegistry) -> Metrics:
    """The contract's metrics on ``registry``, labelled from ``settings``."""
    return Metrics(
        registry,
        env=settings.metric_env,
        shadow_version=settings.shadow_pipeline_version,
        sample=settings.shadow_sample_rate_text,
        app_version=__version__,
        primary=settings.backend,
        target=settings.target_backend,
    )


def build_runtime(
    source: SettingsSource,
    *,
    registry: CollectorRegistry | None = None,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    primary: BaseStore | None = None,
    target: BaseStore | None = None,
) -> Runtime:
    """Open the configured stores (unless given) and wire router, writer, outbox and breaker.

    Metrics go to ``metrics`` when given, else to new `Metrics` on ``registry`` (a fresh one
    when None); their scrape-time values (outbox, phase) are read from this runtime's outbox
    and settings. Raises `ConfigError` for settings that cannot work.
    """
    settings = source.current()
    clock = clock or SystemClock()
    if metrics is None:
        registry = registry if registry is not None else CollectorRegistry()
        metrics = metrics_for(settings, registry)
    opened: list[BaseStore] = []
    try:
        if primary is None:
            primary = open_store(settings.backend, settings)
            opened.append(primary)
        if target is None and settings.target_backend:
            target = open_store(settings.target_backend, settings)
            opened.append(target)
        outbox = open_outbox(settings.outbox_url)
    except BaseException:
        for store in opened:
            with contextlib.suppress(ShadowswapError):
                store.close()
        raise
    breaker = Breaker(clock, metrics.breaker_state)
    writer = DualWriter(primary, target, source, outbox, breaker, metrics, clock)
    observations = observation_log(settings, clock)
    router = Router(
        primary=primary,
        target=target,
        settings=source,
        metrics=metrics,
        clock=clock,
        rng=rng or random.Random(),
        observations=observations,
        recent=writer.recent,  # so a shadow read knows what was written while it ran
    )
    metrics.read_outbox_from(lambda: outbox_figures(writer, clock))
    metrics.read_phase_from(lambda: classify(source.current()).name)
    recorder = None
    if observations is not None:  # the serving and write side in the log, for the gate
        recorder = StateRecorder(
            observations, metrics, clock, read_outbox=lambda: outbox_figures(writer, clock)
        )
    return Runtime(
        source,
        primary,
        target,
        router,
        writer,
        outbox,
        breaker,
        metrics,
        registry,
        clock,
        recorder,
    )


def outbox_figures(writer: DualWriter, clock: Clock) -> OutboxFigures:
    """The outbox as stored (items past their TTL expired first), for the exposition."""
    stats = writer.outbox_stats()
    return OutboxFigures(
        stats.size,
        stats.oldest_age_s(clock.now()),
        {"full": stats.dropped_full, "ttl": stats.dropped_ttl},
    )

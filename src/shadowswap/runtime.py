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
from shadowswap.metrics import MetricsSink, PrometheusSink
from shadowswap.read.router import Router
from shadowswap.settings.config import Settings, SettingsSource
from shadowswap.shadow.observations import observation_log
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
    sink: MetricsSink
    registry: CollectorRegistry | None
    clock: Clock
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Stop the router's and the writer's threads, then close the outbox and the stores."""
        if self._closed:
            return
        self._closed = True
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


def prometheus_sink(settings: Settings, registry: CollectorRegistry) -> PrometheusSink:
    """The contract's metrics on ``registry``, labelled from ``settings``."""
    return PrometheusSink(
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
    sink: MetricsSink | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    primary: BaseStore | None = None,
    target: BaseStore | None = None,
) -> Runtime:
    """Open the configured stores (unless given) and wire router, writer, outbox and breaker.

    Metrics go to ``sink`` when given, else to a `PrometheusSink` on ``registry`` (a fresh
    one when None). Raises `ConfigError` for settings that cannot work.
    """
    settings = source.current()
    clock = clock or SystemClock()
    if sink is None:
        registry = registry if registry is not None else CollectorRegistry()
        sink = prometheus_sink(settings, registry)
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
    breaker = Breaker(clock, sink)
    router = Router(
        primary=primary,
        target=target,
        settings=source,
        sink=sink,
        clock=clock,
        rng=rng or random.Random(),
        observations=observation_log(settings, clock),
    )
    writer = DualWriter(primary, target, source, outbox, breaker, sink, clock)
    return Runtime(source, primary, target, router, writer, outbox, breaker, sink, registry, clock)

"""Starting the gateway: settings, runtime, keys, the start-up line, uvicorn, shutdown.

One process (the default): the CLI builds everything here, so a bad setting, a missing keys
file or a store that cannot be opened stops ``shadowswap serve`` with exit code 2 and a
message, before any port is bound. SIGTERM or SIGINT stop it gracefully: uvicorn finishes
the requests in flight, then the app's shutdown closes the runtime (the dual writer applies
what is pending, the outbox and stores are closed) and the process exits 0.

Several workers (``--workers N``): uvicorn starts N processes that each call `worker_app`
(factory mode), which builds its own runtime from the same settings: the env file travels in
``RETRIEVAL_ENV_FILE``, every other option is a setting already. Engines that one process
must own are refused (`multi_worker_problems`); metrics of all workers are gathered through
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a fresh directory made
and removed by the parent), so ``/metrics`` answers the same totals whichever worker serves
the scrape.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import fastapi
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, multiprocess

from shadowswap import __version__
from shadowswap.errors import ConfigError
from shadowswap.logs import configure_logging
from shadowswap.metrics import Metrics
from shadowswap.runtime import Runtime, build_runtime, metrics_for
from shadowswap.service.app import create_app
from shadowswap.service.auth import OPEN, Authenticator, KeyRing
from shadowswap.service.connections import protocol_factory
from shadowswap.service.tracing import install_context_filter
from shadowswap.settings import names
from shadowswap.settings.config import Settings, SettingsSource, StaticSettings, load_settings
from shadowswap.settings.live import EnvFileSettings
from shadowswap.settings.masking import mask_secrets
from shadowswap.settings.phase import classify

log = logging.getLogger("shadowswap.service")

WORKER_FACTORY = "shadowswap.service.server:worker_app"
_ANNOUNCED_FLAGS = (
    "FF_RETRIEVAL_SHADOW_READ",
    "FF_RETRIEVAL_SHADOW_SAMPLE_RATE",
    "FF_RETRIEVAL_DUAL_WRITE",
    "RETRIEVAL_TENANT_ALLOWLIST",
    "RETRIEVAL_CUTOVER_TENANTS",
    "RETRIEVAL_CUTOVER_PERCENT",
    "RETRIEVAL_SHADOW_TIMEOUT_MS",
    "RETRIEVAL_READ_TIMEOUT_MS",
    "METRIC_ENV",
    "SHADOW_PIPELINE_VERSION",
)
#: Kinds whose embedded engine one process must own (server URLs are fine).
_SINGLE_PROCESS = {
    "memory": "the reference store lives in one process's memory",
    "chroma": "embedded Chroma (a path) must not be opened by several processes",
    "qdrant": "embedded Qdrant (Qdrant Edge or local mode) locks its directory to one process",
    "milvus": "Milvus Lite locks its file to one process",
}


@dataclass(frozen=True)
class ServeOptions:
    """The flags of ``shadowswap serve``."""

    host: str = "127.0.0.1"
    port: int = 8080
    env_file: Path | None = None
    workers: int = 1


@dataclass
class Service:
    """A built gateway: the app and what it runs on."""

    app: FastAPI
    runtime: Runtime
    settings: Settings
    env_source: EnvFileSettings | None
    auth: Authenticator
    extra: dict[str, Any] = field(default_factory=dict)


# -- building -----------------------------------------------------------------------------------
def authenticator(settings: Settings) -> Authenticator:
    """The key ring for ``RETRIEVAL_API_KEYS_FILE``, or `OPEN` with ``RETRIEVAL_AUTH=OFF``.
    Raises `ConfigError` (exit 2) when auth is on and the file is missing or invalid."""
    if not settings.auth:
        return OPEN
    if not settings.api_keys_file:
        raise ConfigError(
            "RETRIEVAL_API_KEYS_FILE",
            "",
            "RETRIEVAL_AUTH is ON and no keys file is set: create one with `shadowswap keys "
            "add --tenant T --file keys.json` and set RETRIEVAL_API_KEYS_FILE to it (or set "
            "RETRIEVAL_AUTH=OFF, for local development only)",
        )
    return KeyRing(settings.api_keys_file)


def build_service(
    env_file: Path | None = None, *, multiprocess: bool = False, close_runtime: bool = True
) -> Service:
    """Settings (live when there is an env file), keys, metrics, runtime and app."""
    settings = load_settings(env_file)
    auth = authenticator(settings)
    registry = CollectorRegistry()
    metrics = metrics_for(settings, registry)
    env_source: EnvFileSettings | None = None
    source: SettingsSource
    if settings.env_file:
        env_source = EnvFileSettings(settings.env_file)
        source = env_source
    else:
        source = StaticSettings(settings)
    try:
        runtime = build_runtime(source, registry=registry, metrics=metrics)
    except BaseException:
        if env_source is not None:
            env_source.close()
        raise
    gather = (lambda: _multiprocess_registry(metrics)) if multiprocess else None
    app = create_app(
        runtime,
        auth=auth,
        env_source=env_source,
        registry_for_metrics=gather,
        close_runtime=close_runtime,
    )
    return Service(app, runtime, settings, env_source, auth)


def _multiprocess_registry(metrics: Metrics) -> CollectorRegistry:
    """Every worker's instruments (prometheus_client's files), and the values read at scrape
    time by this worker (outbox, phase), which every worker reads from the same owners."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(metrics.scraped)
    return registry


def multi_worker_problems(settings: Settings) -> list[str]:
    """Why ``--workers N > 1`` cannot work with these backends (empty when it can)."""
    problems = []
    for variable, kind in (
        (names.RETRIEVAL_BACKEND, settings.backend),
        (names.RETRIEVAL_TARGET_BACKEND, settings.target_backend),
    ):
        if kind is None or kind not in _SINGLE_PROCESS:
            continue
        location = settings.location(kind) or ""
        if kind == "memory" or "://" not in location:
            problems.append(f"{variable}={kind} ({location}): {_SINGLE_PROCESS[kind]}")
    return problems


# -- the start-up line (runbook 001) -------------------------------------------------------------
def announce(settings: Settings, options: ServeOptions, auth: Authenticator) -> None:
    """One JSON line: primary kind and location, target, phase, flags, versions; no secret."""
    phase = classify(settings)
    env = settings.as_env(mask=True)
    target = settings.target_backend
    primary = {
        "kind": settings.backend,
        "location": mask_secrets(settings.location(settings.backend) or ""),
    }
    target_info = (
        None
        if target is None
        else {"kind": target, "location": mask_secrets(settings.location(target) or "")}
    )
    keys = len(auth.entries) if isinstance(auth, KeyRing) else None
    log.info(
        f"shadowswap serve: primary {primary['kind']} at {primary['location']}, target "
        f"{target or 'none'}, phase {phase.label}",
        extra={
            "event": "startup",
            "primary": primary,
            "target": target_info,
            "phase": phase.label,
            "flags": {name: env[name] for name in _ANNOUNCED_FLAGS},
            "versions": _versions(),
            "listen": f"{options.host}:{options.port}",
            "workers": options.workers,
            "pid": os.getpid(),
            "env_file": None if settings.env_file is None else str(settings.env_file),
            "auth": "ON" if auth.enabled else "OFF",
            "api_keys": keys,
        },
    )
    if not auth.enabled:
        log.warning(
            "RETRIEVAL_AUTH=OFF: every caller may read, write and delete every tenant's "
            "documents; use this for local development only",
            extra={"event": "auth_off"},
        )
    if phase.name == "custom":
        log.warning("the flags form no known phase", extra={"reason": phase.reason})


def _backend(settings: Settings, kind: str) -> dict[str, str]:
    return {"kind": kind, "location": mask_secrets(settings.location(kind) or "")}


def _versions() -> dict[str, str]:
    return {
        "shadowswap": __version__,
        "python": platform.python_version(),
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
    }


# -- running ------------------------------------------------------------------------------
def log_config() -> dict[str, Any]:
    """uvicorn's own messages as JSON lines too (its access log is replaced by ours)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "shadowswap.logs.JsonFormatter"}},
        "filters": {"plain": {"()": "shadowswap.service.server.PlainMessages"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["plain"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class PlainMessages(logging.Filter):
    """Drops uvicorn's ``color_message`` (the message again, with terminal colour codes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def _exit_cleanly_on_sigterm() -> None:
    """uvicorn re-raises the signal that stopped it once it has shut down gracefully; with
    this handler a SIGTERM then ends the process with exit code 0 instead of -15."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


def serve(options: ServeOptions) -> None:
    """``shadowswap serve``: build, announce, run until stopped (module docstring)."""
    install_context_filter(logging.getLogger("shadowswap"))
    if options.workers > 1:
        _serve_workers(options)
        return
    service = build_service(options.env_file)
    try:
        announce(service.settings, options, service.auth)
        if service.env_source is not None:
            service.env_source.start()
            service.env_source.install_sighup()
        config = uvicorn.Config(
            service.app,
            host=options.host,
            port=options.port,
            **_uvicorn_options(service.settings),
        )
        _exit_cleanly_on_sigterm()
        uvicorn.Server(config).run()
    finally:
        service.runtime.close()  # a no-op when the app's shutdown already closed it
        if service.env_source is not None:
            service.env_source.close()


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What one worker and several share: our JSON log lines, no access log (the request
    middleware logs), no Server header, 30 s to finish requests on SIGTERM, and the
    connection timeouts (`connection_options`)."""
    return {
        "log_config": log_config(),
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 30,
        **connection_options(settings),
    }


def connection_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for ``RETRIEVAL_HTTP_HEADER_TIMEOUT_S`` (a request head must arrive
    within it: `shadowswap.service.connections`) and ``RETRIEVAL_HTTP_KEEP_ALIVE_S`` (an idle
    connection between requests is closed after it)."""
    return {
        "http": protocol_factory(settings.http_header_timeout_s),
        "timeout_keep_alive": settings.http_keep_alive_s,
    }


def _serve_workers(options: ServeOptions) -> None:
    settings = load_settings(options.env_file)
    problems = multi_worker_problems(settings)
    if problems:
        raise ConfigError(
            "--workers",
            str(options.workers),
            "several worker processes cannot share these backends: "
            + "; ".join(problems)
            + ". Run one worker (the default), or point the backend at a server",
        )
    auth = authenticator(settings)  # refuse a bad keys file before starting any worker
    if settings.env_file:
        os.environ[names.RETRIEVAL_ENV_FILE] = str(Path(settings.env_file).resolve())
    announce(settings, options, auth)
    if settings.backend == "faiss" or settings.target_backend == "faiss":
        log.warning(
            "FAISS with several workers: each worker holds its own copy of the indexes in "
            "memory and rebuilds a tenant's index after another worker writes to it",
            extra={"workers": options.workers},
        )
    with _multiprocess_dir():
        _exit_cleanly_on_sigterm()
        uvicorn.run(
            WORKER_FACTORY,
            factory=True,
            host=options.host,
            port=options.port,
            workers=options.workers,
            **_uvicorn_options(settings),
        )


@contextlib.contextmanager
def _multiprocess_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="shadowswap-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def worker_app() -> FastAPI:
    """uvicorn's factory in each worker process (``--workers N``)."""
    configure_logging()
    install_context_filter(logging.getLogger("shadowswap"))
    service = build_service(None, multiprocess=True)
    if service.env_source is not None:
        service.env_source.start()
    _mark_dead_on_shutdown(service.app)
    log.info(
        f"worker {os.getpid()} serving: primary {service.settings.backend}",
        extra={"event": "worker_start", "pid": os.getpid()},
    )
    return service.app


def _mark_dead_on_shutdown(app: FastAPI) -> None:
    pid = os.getpid()
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> Any:
        async with inner(a) as state:
            yield state
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

    app.router.lifespan_context = lifespan

"""Connection check (runbook 003): can we reach a backend, how big is it, how fast is it."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

from shadowswap.errors import ConfigError, MissingDependency, ShadowswapError
from shadowswap.settings import names
from shadowswap.settings.config import KINDS, Settings
from shadowswap.settings.masking import mask_secrets
from shadowswap.stores import open_store


@dataclass(frozen=True)
class CheckResult:
    """What `check_backend` found for one backend."""

    role: str
    kind: str
    location: str
    reachable: bool
    round_trip_ms: float
    documents: int | None
    tenants: int | None
    dimension: int | None
    metric: str | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def resolve_backends(settings: Settings, backend: str | None) -> list[tuple[str, str]]:
    """(role, kind) pairs to check: the one asked for, else the primary and the target."""
    if backend in (None, "", "all"):
        pairs = [("primary", settings.backend)]
        if settings.target_backend:
            pairs.append(("target", settings.target_backend))
        return pairs
    if backend == "primary":
        return [("primary", settings.backend)]
    if backend == "target":
        if not settings.target_backend:
            raise ConfigError(names.RETRIEVAL_TARGET_BACKEND, "", "no target backend is configured")
        return [("target", settings.target_backend)]
    kind = str(backend).lower()
    if kind not in KINDS:
        raise ConfigError(
            "--backend", str(backend), "expected primary, target or one of " + ", ".join(KINDS)
        )
    roles = {settings.backend: "primary", settings.target_backend: "target"}
    return [(roles.get(kind, "other"), kind)]


def check_backend(settings: Settings, role: str, kind: str) -> CheckResult:
    """Open the backend, ask for its health, close it. Never raises for an unreachable store;
    raises `ConfigError` / `MissingDependency` for a configuration that cannot work."""
    location = mask_secrets(settings.location(kind) or "")
    start = time.perf_counter()
    try:
        store = open_store(kind, settings)
    except (ConfigError, MissingDependency):
        raise
    except ShadowswapError as exc:
        return CheckResult(
            role, kind, location, False, _ms(start), None, None, None, None, str(exc)
        )
    try:
        health = store.health()
    finally:
        with contextlib.suppress(ShadowswapError):
            store.close()
    return CheckResult(
        role,
        kind,
        location,
        health.reachable,
        _ms(start),
        health.documents,
        health.tenants,
        health.dimension,
        health.metric,
        health.detail,
    )


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)

"""What ``GET /internal/retrieval/status`` and ``GET /readyz`` report, built from the runtime.

The outbox part shows each tenant's use (issue 16): items held now, the share reserved for
every tenant, and the changes of that tenant dropped so far by reason, from the outbox's own
per-tenant totals (so drops made by another process show too). Per-tenant figures live here
rather than as a metric label: a ``tenant`` label would make a series per tenant.

Health checks of the stores run on a `Bulkhead` with a deadline (``RETRIEVAL_READ_TIMEOUT_MS``,
at least one second): a store that hangs is reported unreachable instead of hanging the status
page or the readiness probe, and no more than a few checks can be stuck at once.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from shadowswap import __version__
from shadowswap.dualwrite.outbox import max_deferrable, tenant_share
from shadowswap.errors import ShadowswapError
from shadowswap.gate.freshness import reconcile_max_age_s
from shadowswap.read.bulkhead import Bulkhead, BulkheadFull
from shadowswap.rollout.phases import next_step
from shadowswap.runtime import Runtime
from shadowswap.settings.config import Settings
from shadowswap.settings.live import EnvFileSettings
from shadowswap.settings.masking import mask_secrets
from shadowswap.settings.phase import classify
from shadowswap.stores.base import Health, VectorStore
from shadowswap.sync.freshness import freshness_of
from shadowswap.sync.reconcile import iso, load_last

log = logging.getLogger("shadowswap.service")

_MIN_CHECK_S = 1.0
_CHECKS_IN_FLIGHT = 4
#: tenants listed under ``outbox.tenants`` (those holding most items, then most drops)
_TENANTS_SHOWN = 1000


@dataclass
class StatusReporter:
    """Builds the status document and answers readiness, for one runtime."""

    runtime: Runtime
    auth_enabled: bool
    started_at: float = field(default_factory=time.time)
    _checks: Bulkhead = field(
        default_factory=lambda: Bulkhead("status-checks", _CHECKS_IN_FLIGHT), repr=False
    )

    def close(self) -> None:
        self._checks.close()

    # -- readiness ----------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str, str]:
        """(ready, primary kind, detail): the primary answers a light call within the
        deadline."""
        settings = self.runtime.settings.current()
        store = self.store_of(settings.backend)
        if store is None:
            return False, settings.backend, f"no {settings.backend} store is open; restart"
        try:
            self._checks.call(store.tenants, _deadline(settings))
        except ShadowswapError as exc:
            return False, store.kind, str(exc)
        except TimeoutError:
            return (
                False,
                store.kind,
                f"{store.kind} did not answer within {_deadline(settings):g} s",
            )
        except BulkheadFull:
            return False, store.kind, "earlier checks of the primary have not returned"
        return True, store.kind, "primary reachable"

    def store_of(self, kind: str) -> VectorStore | None:
        for store in (self.runtime.primary, self.runtime.target):
            if store is not None and store.kind == kind:
                return store
        return None

    # -- the status document ------------------------------------------------------------------
    def document(self, env_source: EnvFileSettings | None) -> dict[str, Any]:
        rt = self.runtime
        settings = rt.settings.current()
        phase = classify(settings)
        return {
            "service": self._service(settings, env_source),
            "phase": {**phase.as_dict(), "next_step": next_step(phase)},
            "flags": settings.as_env(mask=True),
            "backends": self._backends(settings),
            "breaker": self._breaker(),
            "outbox": self._outbox(),
            "router": _router(rt),
            "reconcile": _reconcile(settings),
        }

    def _service(self, settings: Settings, env_source: EnvFileSettings | None) -> dict[str, Any]:
        return {
            "version": __version__,
            "python": platform.python_version(),
            "pid": os.getpid(),
            "started_at": iso(self.started_at),
            "uptime_s": round(time.time() - self.started_at, 3),
            "auth": "ON" if self.auth_enabled else "OFF",
            "settings_source": {
                "env_file": None if env_source is None else str(env_source.path),
                "reloads": 0 if env_source is None else env_source.reloads,
                "last_error": None if env_source is None else env_source.last_error,
            },
        }

    def _backends(self, settings: Settings) -> list[dict[str, Any]]:
        roles = {settings.backend: "primary", settings.target_backend: "target"}
        out = []
        for store in (self.runtime.primary, self.runtime.target):
            if store is None:
                continue
            health = self._health(store, settings)
            out.append(
                {
                    "role": roles.get(store.kind, "open, not configured"),
                    "kind": store.kind,
                    "location": mask_secrets(store.location),
                    "reachable": health.reachable,
                    "round_trip_ms": round(health.round_trip_s * 1000.0, 3),
                    "documents": health.documents,
                    "tenants": health.tenants,
                    "dimension": health.dimension,
                    "metric": health.metric,
                    "detail": health.detail,
                }
            )
        return out

    def _health(self, store: VectorStore, settings: Settings) -> Health:
        deadline = _deadline(settings)
        start = time.perf_counter()
        try:
            return self._checks.call(store.health, deadline)
        except TimeoutError:
            detail = f"no answer within {deadline:g} s"
        except BulkheadFull:
            detail = "earlier health checks have not returned"
        except ShadowswapError as exc:
            detail = str(exc)
        return Health(store.kind, store.location, False, time.perf_counter() - start, detail=detail)

    def _breaker(self) -> dict[str, Any]:
        snap = self.runtime.breaker.snapshot()
        since = None
        if snap.state.value != "closed":
            since = round(max(0.0, self.runtime.clock.monotonic() - snap.since), 3)
        return {"state": snap.state.value, "failures": snap.failures, "in_state_for_s": since}

    def _outbox(self) -> dict[str, Any]:
        location = mask_secrets(self.runtime.outbox.location)
        settings = self.runtime.settings.current()
        share = tenant_share(settings.outbox_max, settings.outbox_tenant_share)
        try:
            stats = self.runtime.writer.outbox_stats()
            uses = self.runtime.outbox.tenants()
        except ShadowswapError as exc:
            return {"location": location, "error": str(exc)}
        age = stats.oldest_age_s(self.runtime.clock.now())
        busiest = sorted(uses, key=lambda u: (-u.items, -(u.dropped_full + u.dropped_ttl)))
        return {
            "location": location,
            "size": stats.size,
            "capacity": settings.outbox_max,
            "oldest_age_s": None if age is None else round(age, 3),
            "dropped_full": stats.dropped_full,
            "dropped_ttl": stats.dropped_ttl,
            "tenant_share": share,
            "max_deferrable": max_deferrable(settings.outbox_max, share),
            "tenants_total": len(uses),
            "tenants": {
                u.tenant: {
                    "items": u.items,
                    "share": share,
                    "dropped_full": u.dropped_full,
                    "dropped_ttl": u.dropped_ttl,
                }
                for u in sorted(busiest[:_TENANTS_SHOWN], key=lambda u: u.tenant)
            },
        }


def _router(rt: Runtime) -> dict[str, Any]:
    stats = rt.router.stats()
    return {"reads_in_flight": stats.reads_in_flight, "shadow": asdict(stats.shadow)}


def _reconcile(settings: Settings) -> dict[str, Any] | None:
    """A summary of ``reconcile_last.json`` (totals, not the per-tenant lists), and whether it
    still counts (`shadowswap.sync.freshness`): ``fresh``, ``age_s``, ``max_age_s`` (the
    default gate criteria's ``reconcile_fresh``), ``reasons`` when stale, ``write_plan``."""
    try:
        last = load_last(settings.state_dir)
    except ShadowswapError as exc:
        return {"error": str(exc)}
    if last is None:
        return None
    keys = (
        "ok", "complete", "started_at", "finished_at", "duration_s", "stores", "source",
        "repair", "purge_delta", "drift", "missing", "extra", "stale",
    )  # fmt: skip
    summary = {k: last[k] for k in keys if k in last}
    tenants = last.get("tenants")
    summary["tenants"] = len(tenants) if isinstance(tenants, dict) else None
    fresh = freshness_of(last, settings.state_dir, settings, time.time(), reconcile_max_age_s())
    summary |= {
        "fresh": fresh.fresh,
        "age_s": None if fresh.age_s is None else round(fresh.age_s, 3),
        "max_age_s": fresh.max_age_s,
        "reasons": list(fresh.reasons),
        "write_plan": fresh.write_plan,
        "write_plan_now": fresh.write_plan_now,
        "plan_changed_at": fresh.plan_changed_at,
    }
    return summary


def _deadline(settings: Settings) -> float:
    return max(_MIN_CHECK_S, settings.read_timeout_ms / 1000.0)

"""Per-request decisions, as pure functions of the settings and the tenant.

Which backend serves a tenant's reads
    the target when the tenant is in ``RETRIEVAL_CUTOVER_TENANTS``, or when its cutover
    bucket is below ``RETRIEVAL_CUTOVER_PERCENT``; otherwise the primary. Without a target
    backend, always the primary.
Cutover bucket
    ``bucket(t) = int.from_bytes(sha256(b"shadowswap/cutover/v1\\0" + utf8(t))[:8], "big")
    / 2**64 * 100``, a number in [0, 100) that depends on nothing but the tenant id, so it is
    the same in every process and release. A tenant is selected at ``p`` percent when
    ``bucket < p``: raising ``p`` never moves a tenant back.
Writes (CONTRACT §1)
    the backend serving the tenant's reads gets its writes synchronously; the other one gets
    them through the breaker and the outbox when dual write applies to the tenant
    (``FF_RETRIEVAL_DUAL_WRITE`` on, tenant in ``RETRIEVAL_TENANT_ALLOWLIST`` or the list
    empty). A tenant whose reads moved to the target always keeps the other backend in step
    while dual write is on, so a rollback at any moment loses nothing.
Shadow reads
    eligible when ``FF_RETRIEVAL_SHADOW_READ`` is on, a target exists and the tenant is in the
    allowlist (or it is empty); the shadow is the backend *not* serving the read. Sampling at
    ``FF_RETRIEVAL_SHADOW_SAMPLE_RATE`` is applied by the caller with an injected random source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from shadowswap.config import Settings

Role = Literal["primary", "target"]
_CUTOVER_SALT = b"shadowswap/cutover/v1\0"


def cutover_bucket(tenant: str) -> float:
    """The tenant's stable position in [0, 100) for percentage cutover."""
    digest = hashlib.sha256(_CUTOVER_SALT + tenant.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def allowed(settings: Settings, tenant: str) -> bool:
    """Tenant in ``RETRIEVAL_TENANT_ALLOWLIST``, or the list is empty (everyone)."""
    return not settings.tenant_allowlist or tenant in settings.tenant_allowlist


def read_role(settings: Settings, tenant: str) -> Role:
    """Which configured backend serves this tenant's reads."""
    if settings.target_backend is None:
        return "primary"
    if tenant in settings.cutover_tenants:
        return "target"
    if settings.cutover_percent > 0 and cutover_bucket(tenant) < settings.cutover_percent:
        return "target"
    return "primary"


def kind_of(settings: Settings, role: Role) -> str:
    """The backend kind playing ``role``."""
    if role == "primary":
        return settings.backend
    assert settings.target_backend is not None
    return settings.target_backend


def other(role: Role) -> Role:
    return "target" if role == "primary" else "primary"


@dataclass(frozen=True)
class WritePlan:
    """Where a tenant's write goes: ``sync`` always, ``deferred`` through breaker and outbox."""

    sync: Role
    deferred: Role | None


def write_plan(settings: Settings, tenant: str) -> WritePlan:
    """CONTRACT §1's rule for writes during a gradual cutover."""
    serving = read_role(settings, tenant)
    if settings.target_backend is None or not settings.dual_write:
        return WritePlan(serving, None)
    if serving == "target" or allowed(settings, tenant):
        return WritePlan(serving, other(serving))
    return WritePlan(serving, None)


def shadow_role(settings: Settings, tenant: str) -> Role | None:
    """The backend to shadow this tenant's read on, or None when not eligible (before sampling)."""
    if not settings.shadow_read or settings.target_backend is None or not allowed(settings, tenant):
        return None
    return other(read_role(settings, tenant))


def fallback_role(settings: Settings, tenant: str) -> Role | None:
    """Where a failed read may be served instead: the other backend, if dual write keeps it in
    step for this tenant; otherwise None (the caller gets an unavailable error)."""
    plan = write_plan(settings, tenant)
    return plan.deferred

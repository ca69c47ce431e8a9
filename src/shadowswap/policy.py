"""The policy: for one tenant under one set of settings, the whole plan, as one value.

`plan(settings, tenant)` answers every question a request has, once: which backend serves the
tenant's reads, whether and where its read is shadowed, where a failed read may fall back, which
backend gets its writes synchronously and which through breaker and outbox. The read router,
the dual writer and reconcile ask it once per request (or per tenant) and pass the `Plan` down;
none of them imports the operator's control plane (`shadowswap.rollout`).

May import: `shadowswap.settings` and the foundation only.

Every request asks `plan` once, with the settings it read at its start, so a change of
configuration applies to new requests only. The single-question functions below (`read_role`,
`write_plan`, `shadow_role`, `fallback_role`) are the rules `plan` is made of, kept for callers
that need one answer only. Nothing here keeps state or does I/O.

In step
    A tenant is *kept in step* on the target when a target backend is configured, dual write
    is on (``FF_RETRIEVAL_DUAL_WRITE``) and the tenant is eligible for it
    (``RETRIEVAL_TENANT_ALLOWLIST`` contains it or is empty). Only such a tenant's reads may
    move to the target: a tenant whose writes do not reach the target would read stale data
    there, and its writes, going to the target alone, would be missing from the primary after
    a rollback. So turning dual write off (the first step of runbook 002) moves every read back
    to the primary at once, and cutover lists or percentages never reach tenants outside the
    allowlist.
Which backend serves a tenant's reads
    the target when the tenant is kept in step and is in ``RETRIEVAL_CUTOVER_TENANTS`` or is
    selected by ``RETRIEVAL_CUTOVER_PERCENT``; otherwise the primary.
Cutover bucket (version 1, fixed: changing it would move tenants between backends)
    ``bucket(t) = int.from_bytes(sha256(b"shadowswap/cutover/v1\\0" + utf8(t))[:8], "big")
    / 2**64 * 100``, a number in [0, 100] that depends on nothing but the tenant id, so it is
    the same in every process, machine and release (``tests/test_policy.py`` pins
    a few values). A tenant is selected at ``p`` percent when ``p >= 100`` or
    ``bucket < p``: raising ``p`` never moves a tenant back, and 100 selects everyone.
Writes (CONTRACT §1)
    the backend serving the tenant's reads gets its writes synchronously; the other one gets
    them through the breaker and the outbox when the tenant is kept in step. So a rollback at
    any moment loses nothing.
Shadow reads
    eligible when ``FF_RETRIEVAL_SHADOW_READ`` is on, a target exists and the tenant is in the
    allowlist (or it is empty); the shadow is the backend *not* serving the read. Sampling at
    ``FF_RETRIEVAL_SHADOW_SAMPLE_RATE`` is applied by the caller with an injected random source.
Fallback
    a failed read may be served by the other backend only when it is kept in step.
The write plan's inputs (issue 15)
    `WRITE_PLAN_VARIABLES` are the variables the rules above read to decide where a write
    goes; `write_plan_variables` gives their values in one spelling (``ON``/``OFF``, lists
    sorted, ``10`` not ``10.0``) and `write_plan_fingerprint` a short hash of them. A
    reconcile records the fingerprint it ran under; a different fingerprint now means writes
    have gone elsewhere since, so that reconcile no longer speaks for the stores.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from shadowswap.settings import names
from shadowswap.settings.config import Settings
from shadowswap.settings.phase import percent_text

Role = Literal["primary", "target"]
_CUTOVER_SALT = b"shadowswap/cutover/v1\0"


def cutover_bucket(tenant: str) -> float:
    """The tenant's stable position in [0, 100] for percentage cutover (see the module doc)."""
    digest = hashlib.sha256(_CUTOVER_SALT + tenant.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def in_percent(tenant: str, percent: float) -> bool:
    """Whether ``percent`` selects the tenant; monotonic in ``percent``, all at 100."""
    if percent >= 100:
        return True
    return percent > 0 and cutover_bucket(tenant) < percent


def allowed(settings: Settings, tenant: str) -> bool:
    """Tenant in ``RETRIEVAL_TENANT_ALLOWLIST``, or the list is empty (everyone)."""
    return not settings.tenant_allowlist or tenant in settings.tenant_allowlist


def in_step(settings: Settings, tenant: str) -> bool:
    """Whether dual write keeps the other backend in step for this tenant."""
    return settings.target_backend is not None and settings.dual_write and allowed(settings, tenant)


def cutover_selects(settings: Settings, tenant: str) -> bool:
    """Whether the cutover variables name the tenant (by list or by percentage)."""
    return tenant in settings.cutover_tenants or in_percent(tenant, settings.cutover_percent)


def read_role(settings: Settings, tenant: str) -> Role:
    """Which configured backend serves this tenant's reads."""
    if in_step(settings, tenant) and cutover_selects(settings, tenant):
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
    if in_step(settings, tenant):
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
    return write_plan(settings, tenant).deferred


@dataclass(frozen=True)
class Plan:
    """Everything the hot path needs to know about one tenant, decided once per request.

    ``read`` serves the tenant's reads (backend ``read_kind``); ``other`` is the other role
    (backend ``other_kind``, None without a target). ``shadowed``: the read is eligible for a
    shadow read on ``other`` (before sampling). ``in_step``: dual write keeps ``other`` in step
    for this tenant, so it gets the writes through breaker and outbox and may serve a failed
    read.

    >>> from shadowswap.settings import load_settings
    >>> settings = load_settings(environ={"RETRIEVAL_TARGET_BACKEND": "chroma",
    ...     "FF_RETRIEVAL_DUAL_WRITE": "ON", "RETRIEVAL_CUTOVER_TENANTS": "acme"})
    >>> p = plan(settings, "acme")
    >>> (p.read, p.read_kind, p.fallback, p.shadow)
    ('target', 'chroma', 'primary', None)
    """

    tenant: str
    read: Role
    read_kind: str
    other_kind: str | None
    shadowed: bool
    in_step: bool

    @property
    def other(self) -> Role:
        return "target" if self.read == "primary" else "primary"

    @property
    def shadow(self) -> Role | None:
        """Where an eligible read is shadowed, or None."""
        return self.other if self.shadowed else None

    @property
    def shadow_kind(self) -> str | None:
        return self.other_kind if self.shadowed else None

    @property
    def fallback(self) -> Role | None:
        """Where a failed read may be served instead, or None."""
        return self.other if self.in_step else None

    @property
    def fallback_kind(self) -> str | None:
        return self.other_kind if self.in_step else None

    @property
    def write(self) -> WritePlan:
        """Writes: synchronously to ``read``, deferred to ``other`` when in step."""
        return WritePlan(self.read, self.fallback)

    def kind(self, role: Role) -> str:
        """The backend kind playing ``role``; asking for the target's when none is configured
        is a bug in the caller (a plan without a target never names it)."""
        if role == self.read:
            return self.read_kind
        if self.other_kind is None:
            raise ValueError(f"no {role} backend is configured for tenant {self.tenant!r}")
        return self.other_kind

    @property
    def sync_kind(self) -> str:
        return self.read_kind

    @property
    def deferred_kind(self) -> str | None:
        return self.fallback_kind


def plan(settings: Settings, tenant: str) -> Plan:
    """The whole plan for ``tenant`` under ``settings`` (the module doc's rules), computed once."""
    serving = read_role(settings, tenant)
    has_target = settings.target_backend is not None
    return Plan(
        tenant=tenant,
        read=serving,
        read_kind=kind_of(settings, serving),
        other_kind=kind_of(settings, other(serving)) if has_target else None,
        shadowed=settings.shadow_read and has_target and allowed(settings, tenant),
        in_step=in_step(settings, tenant),
    )


#: The variables that decide where a tenant's writes go (module doc), in a fixed order.
WRITE_PLAN_VARIABLES: tuple[str, ...] = (
    names.RETRIEVAL_BACKEND,
    names.RETRIEVAL_TARGET_BACKEND,
    names.FF_RETRIEVAL_DUAL_WRITE,
    names.RETRIEVAL_TENANT_ALLOWLIST,
    names.RETRIEVAL_CUTOVER_TENANTS,
    names.RETRIEVAL_CUTOVER_PERCENT,
)


def write_plan_variables(settings: Settings) -> dict[str, str]:
    """The values of `WRITE_PLAN_VARIABLES`, one spelling per meaning (``yes`` is ``ON``,
    ``b, a`` is ``a,b``, ``10.0`` is ``10``), in that order."""
    return {
        names.RETRIEVAL_BACKEND: settings.backend,
        names.RETRIEVAL_TARGET_BACKEND: settings.target_backend or "",
        names.FF_RETRIEVAL_DUAL_WRITE: "ON" if settings.dual_write else "OFF",
        names.RETRIEVAL_TENANT_ALLOWLIST: ",".join(sorted(settings.tenant_allowlist)),
        names.RETRIEVAL_CUTOVER_TENANTS: ",".join(sorted(settings.cutover_tenants)),
        names.RETRIEVAL_CUTOVER_PERCENT: percent_text(settings.cutover_percent),
    }


def write_plan_fingerprint(settings: Settings) -> str:
    """12 hex digits of SHA-256 over `write_plan_variables` (canonical JSON): equal exactly
    when every write goes where it went."""
    canonical = json.dumps(write_plan_variables(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

"""What phase the flags form: a read of the settings, named (runbooks 000, 001, 003, 004).

`classify` names the phase a set of flags forms (``legacy`` … ``done``, or ``custom`` with the
reason); it is a pure function of `Settings`, used wherever the phase is shown (status, reload
logs, the phase gauge). Deciding *moves* between phases is the control plane's job
(`shadowswap.rollout.phases`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shadowswap.settings import names
from shadowswap.settings.config import Settings

BACKEND = names.RETRIEVAL_BACKEND
TARGET = names.RETRIEVAL_TARGET_BACKEND
DUAL = names.FF_RETRIEVAL_DUAL_WRITE
SHADOW = names.FF_RETRIEVAL_SHADOW_READ

PhaseName = Literal["legacy", "dual_write", "shadow_read", "cutover", "swapped", "done", "custom"]
PHASES: tuple[PhaseName, ...] = (
    "legacy",
    "dual_write",
    "shadow_read",
    "cutover",
    "swapped",
    "done",
)


def percent_text(value: float) -> str:
    """A percentage as an env file writes it: ``10``, ``12.5``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def phase_label(name: str, percent: float, tenants: tuple[str, ...]) -> str:
    """How a phase or a goal is named to people: ``cutover 10% + tenants a,b``, ``legacy``."""
    if name != "cutover":
        return name
    parts = [f"{percent_text(percent)}%"] if percent > 0 else []
    if tenants:
        parts.append("tenants " + ",".join(tenants))
    return "cutover " + " + ".join(parts)


@dataclass(frozen=True)
class Phase:
    """Where a migration stands, read from the flags."""

    name: PhaseName
    primary: str
    target: str | None
    legacy: str
    new: str | None
    dual_write: bool
    shadow_read: bool
    percent: float = 0.0
    tenants: tuple[str, ...] = ()
    allowlist: tuple[str, ...] = ()
    reason: str = ""
    notes: tuple[str, ...] = ()

    @property
    def rank(self) -> int | None:
        return None if self.name == "custom" else PHASES.index(self.name)

    @property
    def label(self) -> str:
        """``cutover 10% + tenants a,b``, ``shadow_read``, ``custom``."""
        return phase_label(self.name, self.percent, self.tenants)

    def as_dict(self) -> dict[str, object]:
        return {
            "phase": self.name,
            "label": self.label,
            "primary": self.primary,
            "target": self.target,
            "legacy": self.legacy,
            "new": self.new,
            "dual_write": self.dual_write,
            "shadow_read": self.shadow_read,
            "cutover_percent": self.percent,
            "cutover_tenants": list(self.tenants),
            "allowlist": list(self.allowlist),
            "reason": self.reason,
            "notes": list(self.notes),
        }


_Named = tuple[PhaseName, str, tuple[str, ...]]  # name, reason when custom, extra notes


def classify(settings: Settings) -> Phase:
    """Name the phase the flags form (module doc), or ``custom`` with the reason."""
    legacy, primary, target = settings.legacy_backend, settings.backend, settings.target_backend
    if target is None:
        name, reason, extra = _without_target(settings)
    elif primary == legacy:
        name, reason, extra = _before_swap(settings, target)
    elif target == legacy:
        name, reason, extra = _after_swap(settings)
    else:
        name, reason, extra = (
            "custom",
            f"neither {BACKEND} ({primary}) nor {TARGET} ({target}) is the legacy backend "
            f"{legacy}; set RETRIEVAL_LEGACY_BACKEND to the backend you migrate from",
            (),
        )
    return Phase(
        name,
        primary,
        target,
        legacy,
        target if primary == legacy else primary,
        settings.dual_write,
        settings.shadow_read,
        settings.cutover_percent,
        settings.cutover_tenants,
        settings.tenant_allowlist,
        reason,
        _notes(settings) + extra,
    )


def _cut(settings: Settings) -> bool:
    return settings.cutover_percent > 0 or bool(settings.cutover_tenants)


def _without_target(settings: Settings) -> _Named:
    flags = (
        (DUAL, settings.dual_write),
        (SHADOW, settings.shadow_read),
        ("cutover", _cut(settings)),
    )
    inert = [name for name, on in flags if on]
    if inert:
        reason = f"{', '.join(inert)} set but no {TARGET}: no effect; set a target or turn them off"
        return "custom", reason, ()
    return ("legacy" if settings.backend == settings.legacy_backend else "done"), "", ()


def _before_swap(settings: Settings, target: str) -> _Named:
    dual, shadow = settings.dual_write, settings.shadow_read
    if _cut(settings) and not dual:
        reason = (
            f"cutover variables are set but {DUAL} is OFF: reads stay on {settings.backend} "
            "(cutover needs dual write); turn dual write on or clear the cutover variables"
        )
        return "custom", reason, ()
    if _cut(settings):
        return "cutover", "", ()
    if shadow and not dual:
        note = (
            f"{DUAL} is OFF: {target} receives no writes, so shadow answers will drift from the "
            "primary's; dual write must be ON before cutover"
        )
        return "shadow_read", "", (note,)
    return ("shadow_read" if shadow else "dual_write" if dual else "legacy"), "", ()


def _after_swap(settings: Settings) -> _Named:
    primary, legacy = settings.backend, settings.legacy_backend
    if _cut(settings):
        reason = (
            f"cutover variables are set while {primary} is primary: the tenants they select "
            f"read from {legacy}; `phase back` returns to cutover, `phase set swapped` clears"
        )
        return "custom", reason, ()
    if not settings.dual_write:
        reason = (
            f"{primary} is primary and {legacy} is the target but {DUAL} is OFF: {legacy} is "
            "not kept in step; turn dual write on (swapped) or remove the target (done)"
        )
        return "custom", reason, ()
    return "swapped", "", ()


def _notes(settings: Settings) -> tuple[str, ...]:
    allow = settings.tenant_allowlist
    if not allow or settings.target_backend is None:
        return ()
    return (
        f"RETRIEVAL_TENANT_ALLOWLIST limits dual write and cutover to {len(allow)} tenant(s): "
        f"{','.join(allow[:5])}{',...' if len(allow) > 5 else ''}",
    )

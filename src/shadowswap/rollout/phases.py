"""Migration phases: named from the flags, moved one step at a time, unsafe moves refused.

The phases, in order (runbooks 000, 001, 003, 004); L is the legacy backend
(``RETRIEVAL_LEGACY_BACKEND``, default ``faiss``), N the new one:

=============  =========  ======  ==========  ======  ============================================
phase          primary    target  dual write  shadow  cutover
=============  =========  ======  ==========  ======  ============================================
legacy         L          N/none  OFF         OFF     none
dual_write     L          N       ON          OFF     none
shadow_read    L          N       ON          ON      none
cutover        L          N       ON          any     tenants and/or percent (10 -> 50 -> 100)
swapped        N          L       ON          any     none (runbook 001: old backend kept in step)
done           N          none    OFF         OFF     none
=============  =========  ======  ==========  ======  ============================================

Flags that form none of these are ``custom``, with the reason. Shadow read with dual write
OFF (runbook 000 starts that way) is still ``shadow_read``, with a note.

`transition` is the one function that decides a move. Its rules, each overridable with
``force`` (``--force``):

1. one phase forward at a time (within ``cutover``, any increase of the percentage or of the
   tenant list is one step);
2. reads may only move onto a backend that is kept in step *now*: the current primary, or
   the current target while dual write is ON (so: no cutover while dual write is off, no
   return from ``done`` to a phase reading the legacy backend);
3. cutover tenants must be eligible for dual write (``RETRIEVAL_TENANT_ALLOWLIST``);
4. making the new backend primary (``swapped``, ``done`` from before the swap) needs the last
   reconcile (``<RETRIEVAL_STATE_DIR>/reconcile_last.json``, written by ``shadowswap
   reconcile``) to be fresh and to report a drift of 0 (issue 15,
   `shadowswap.sync.freshness`): taken with dual write on for every tenant it covered,
   under the current write plan and after its last recorded change, and not older than the
   gate's ``reconcile_fresh`` threshold. A missing, unreadable or stale file is refused with
   the reasons.

Moves back are otherwise always allowed: a rollback must never wait for a check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shadowswap.errors import InvalidInput
from shadowswap.settings import names
from shadowswap.settings.config import KINDS
from shadowswap.settings.phase import (
    BACKEND,
    DUAL,
    PHASES,
    SHADOW,
    TARGET,
    Phase,
    PhaseName,
    percent_text,
    phase_label,
)
from shadowswap.sync.freshness import Freshness

LADDER: tuple[float, ...] = (10.0, 50.0, 100.0)

TENANTS = names.RETRIEVAL_CUTOVER_TENANTS
PERCENT = names.RETRIEVAL_CUTOVER_PERCENT
ROLLOUT_VARIABLES = names.ROLLOUT_VARIABLES


def next_step(phase: Phase) -> str:
    """What an operator does next from ``phase`` (runbooks 000, 001, 003)."""
    new = phase.new or "the new backend"
    upcoming = percent_text(next((p for p in LADDER if p > phase.percent), 100.0))
    steps = {
        "legacy": f"turn dual write on to {new} (`phase advance`), then backfill it and reconcile"
        if phase.target
        else "pick the new backend and turn dual write on: `phase advance --target KIND`",
        "dual_write": f"backfill {new} and reconcile to drift 0 (`shadowswap reconcile`), then "
        "turn shadow read on (`phase advance`)",
        "shadow_read": "watch agreement@5 / nDCG@10 and run the gate, then cut over an internal "
        "tenant (`phase advance --tenants T`) or 10% (`phase advance`)"
        if phase.dual_write
        else f"turn dual write on (`phase set shadow_read`) before any cutover to {new}",
        "cutover": f"reconcile to drift 0, then make {new} primary (`phase advance`: swapped)"
        if phase.percent >= 100
        else f"watch errors and latency, then widen to {upcoming}% (`phase advance`)",
        "swapped": f"keep {phase.legacy} in step for 24 h without alerts (runbook 001), then "
        "stop dual writes to it (`phase advance`: done)",
        "done": "nothing: the migration is complete",
    }
    return steps.get(
        phase.name, "bring the flags to a known phase with `phase set PHASE` (`phase status`)"
    )


# -- goals ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Goal:
    """Where a move goes. ``percent``/``tenants`` only matter for ``cutover``."""

    name: PhaseName
    percent: float = 0.0
    tenants: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        return PHASES.index(self.name)

    @property
    def label(self) -> str:
        return phase_label(self.name, self.percent, self.tenants)


def next_goal(
    phase: Phase, percent: float | None = None, tenants: tuple[str, ...] | None = None
) -> Goal:
    """The step `phase advance` takes from ``phase`` (options pick the cutover position)."""
    if phase.name == "custom":
        raise InvalidInput("phase", f"the flags form no phase ({phase.reason}); use `phase set`")
    if phase.name == "done":
        raise InvalidInput("phase", "the migration is done; there is no next phase")
    if phase.name == "shadow_read":
        chosen_tenants = tenants or ()
        default = 0.0 if chosen_tenants else LADDER[0]
        return _cutover_goal(default if percent is None else percent, chosen_tenants)
    if phase.name == "cutover":
        if percent is None and tenants is None and phase.percent >= 100:
            return Goal("swapped")
        if percent is None:
            percent = next((p for p in LADDER if p > phase.percent), 100.0)
        return _cutover_goal(percent, phase.tenants if tenants is None else tenants)
    return Goal(PHASES[PHASES.index(phase.name) + 1])


def previous_goal(phase: Phase) -> Goal:
    """The step `phase back` takes from ``phase``."""
    if phase.name == "custom":
        raise InvalidInput("phase", f"the flags form no phase ({phase.reason}); use `phase set`")
    if phase.name == "legacy":
        raise InvalidInput("phase", "already at legacy; there is no earlier phase")
    if phase.name == "swapped":
        return Goal("cutover", 100.0)
    if phase.name == "cutover":
        lower = [p for p in LADDER if p < phase.percent]
        if phase.percent > 0 and (lower or phase.tenants):
            return Goal("cutover", lower[-1] if lower else 0.0, phase.tenants)
        return Goal("shadow_read")
    return Goal(PHASES[PHASES.index(phase.name) - 1])


def set_goal(
    name: str, percent: float | None = None, tenants: tuple[str, ...] | None = None
) -> Goal:
    """The goal of `phase set NAME`."""
    if name not in PHASES:
        raise InvalidInput("PHASE", f"{name!r} is not a phase; use one of {', '.join(PHASES)}")
    if name != "cutover":
        if percent is not None or tenants:
            raise InvalidInput("--percent/--tenants", "only apply to `phase set cutover`")
        return Goal(PHASES[PHASES.index(name)])
    if percent is None and not tenants:
        raise InvalidInput("--percent/--tenants", "`phase set cutover` needs one of them")
    return _cutover_goal(percent or 0.0, tenants or ())


def _cutover_goal(percent: float, tenants: tuple[str, ...]) -> Goal:
    if not (math.isfinite(percent) and 0 <= percent <= 100):
        raise InvalidInput("--percent", f"{percent!r} is not accepted; use a number from 0 to 100")
    if percent == 0 and not tenants:
        raise InvalidInput("--percent", "a cutover of 0% with no tenants is shadow_read")
    return Goal("cutover", float(percent), tuple(tenants))


# -- the transition function ------------------------------------------------------------------
@dataclass(frozen=True)
class Transition:
    """A decided move: the variables to write, and the refusals (empty when allowed)."""

    source: Phase
    goal: Goal
    values: dict[str, str]
    changes: dict[str, str]
    refusals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return not self.refusals


def transition(
    phase: Phase, goal: Goal, reconcile: Freshness, new: str | None = None
) -> Transition:
    """Decide the move from ``phase`` to ``goal``, ``reconcile`` being what
    `shadowswap.sync.freshness.reconcile_freshness` says of the last reconcile; ``new`` names
    the new backend when the flags do not (legacy without a target). Raises `InvalidInput`
    when no new backend is known.
    """
    new_kind = _new_backend(phase, goal, new)
    values = goal_values(goal, phase.legacy, new_kind)
    changes = {k: v for k, v in values.items() if v != _current(phase, k)}
    refusals = [r for r in _refusals(phase, goal, reconcile, new_kind) if r]
    warnings = []
    if reconcile.drift and goal.name == "cutover":
        warnings.append(
            f"the last reconcile reports drift {reconcile.drift}: reads moving to {new_kind} "
            "may miss documents"
        )
    return Transition(phase, goal, values, changes, tuple(refusals), tuple(warnings))


def _new_backend(phase: Phase, goal: Goal, new: str | None) -> str | None:
    kind = new or phase.new
    if kind is not None and kind not in KINDS:
        raise InvalidInput("--target", f"{kind!r} is not a backend kind; use one of {KINDS}")
    if kind == phase.legacy:
        raise InvalidInput("--target", f"{kind!r} is the legacy backend; name the new one")
    if kind is None and goal.name != "legacy":
        raise InvalidInput(
            "--target", f"no new backend is configured ({TARGET} is empty); pass --target KIND"
        )
    return kind


def goal_values(goal: Goal, legacy: str, new: str | None) -> dict[str, str]:
    """The rollout variables a phase sets (module doc's table); shadow read is left alone in
    cutover and swapped, and the target too in legacy when none is known."""
    off = {TENANTS: "", PERCENT: "0"}
    if goal.name in ("legacy", "dual_write", "shadow_read"):
        dual = "OFF" if goal.name == "legacy" else "ON"
        shadow = "ON" if goal.name == "shadow_read" else "OFF"
        out = {BACKEND: legacy, DUAL: dual, SHADOW: shadow, **off}
        if new is not None:
            out[TARGET] = new
        return out
    assert new is not None
    if goal.name == "cutover":
        return {
            BACKEND: legacy,
            TARGET: new,
            DUAL: "ON",
            TENANTS: ",".join(goal.tenants),
            PERCENT: percent_text(goal.percent),
        }
    if goal.name == "swapped":
        return {BACKEND: new, TARGET: legacy, DUAL: "ON", **off}
    return {BACKEND: new, TARGET: "", DUAL: "OFF", SHADOW: "OFF", **off}


def _current(phase: Phase, variable: str) -> str:
    return {
        BACKEND: phase.primary,
        TARGET: phase.target or "",
        DUAL: "ON" if phase.dual_write else "OFF",
        SHADOW: "ON" if phase.shadow_read else "OFF",
        TENANTS: ",".join(phase.tenants),
        PERCENT: percent_text(phase.percent),
    }[variable]


def _reads_now(phase: Phase) -> set[str]:
    """Backends that serve some reads under the current flags."""
    cut = phase.percent > 0 or bool(phase.tenants)
    extra = {phase.target} if phase.target and phase.dual_write and cut else set()
    return {phase.primary} | extra


def _reads_after(goal: Goal, legacy: str, new: str | None) -> set[str]:
    if goal.name in ("legacy", "dual_write", "shadow_read"):
        return {legacy}
    if goal.name == "cutover":
        return {legacy, new} if new else {legacy}
    return {new} if new else set()


def _refusals(phase: Phase, goal: Goal, reconcile: Freshness, new: str | None) -> list[str]:
    out: list[str] = []
    rank = phase.rank
    if rank is not None and goal.rank > rank + 1:
        skipped = ", ".join(PHASES[rank + 1 : goal.rank])
        out.append(f"it skips {skipped}; go one phase at a time")
    if phase.name == "cutover" and goal.name == "swapped" and phase.percent < 100:
        out.append("raise the cutover to 100% before the swap")
    moving = _reads_after(goal, phase.legacy, new) - _reads_now(phase)
    if goal.name == "cutover" and new is not None:
        grows = phase.name != "cutover" or goal.percent > phase.percent
        if grows or set(goal.tenants) - set(phase.tenants):
            moving.add(new)
    in_step = {phase.primary} | ({phase.target} if phase.target and phase.dual_write else set())
    for kind in sorted(moving - in_step):
        why = f"{DUAL} is OFF" if kind == phase.target else f"{kind} is not the target"
        out.append(
            f"{goal.label} would move reads to {kind}, which is not kept in step now ({why}); "
            "turn dual write on first, then backfill and reconcile"
        )
    outside = [t for t in goal.tenants if phase.allowlist and t not in phase.allowlist]
    if outside:
        out.append(
            f"cutover tenants {','.join(outside)} are not in RETRIEVAL_TENANT_ALLOWLIST: their "
            "writes do not reach the target, so their reads would not move"
        )
    if goal.name in ("swapped", "done") and phase.primary == phase.legacy:
        if not reconcile.fresh:
            first, *rest = reconcile.reasons or ("the last reconcile does not count",)
            out.append(f"making {new} primary needs a fresh reconcile with drift 0; {first}")
            out.extend(rest)
        elif reconcile.drift != 0:
            out.append(
                f"making {new} primary needs a reconcile with drift 0; the last reconcile "
                f"reports drift {reconcile.drift}"
            )
    return out

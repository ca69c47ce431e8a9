"""Running a phase move (`phase advance|back|set`): decide it with `phases.transition`, edit the
env file with `envfile` (``.bak`` first on ``--apply``), append one journal line.

A refused move changes nothing and is journaled as a failure, with the reasons; ``force``
writes it anyway and the journal says which checks were overridden.

The swap's check reads the last reconcile through `shadowswap.sync.freshness` with the
mover's clock and ``max_reconcile_age_s`` (the gate's ``reconcile_fresh`` threshold, which the
caller reads: ``shadowswap.gate.freshness.reconcile_max_age_s``). An applied move that
changes a variable deciding where writes go records the change in
``<RETRIEVAL_STATE_DIR>/write_plan.json``, so no reconcile taken before it counts for a swap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shadowswap.clock import Clock, SystemClock
from shadowswap.errors import ConfigError, Refused, ShadowswapError, StateError
from shadowswap.rollout.journal import (
    Journal,
    JournalEntry,
    append_after_error,
    append_or_explain,
    previous_values,
    utc_timestamp,
)
from shadowswap.rollout.phases import (
    Goal,
    Transition,
    next_goal,
    previous_goal,
    set_goal,
    transition,
)
from shadowswap.settings.config import Settings, gather, load_settings
from shadowswap.settings.envfile import (
    Backup,
    edit_text,
    exclusive,
    parse_values,
    read_env,
    render_diff,
    write_env,
)
from shadowswap.settings.phase import Phase, classify
from shadowswap.sync.freshness import (
    Freshness,
    reconcile_freshness,
    record_write_plan,
    touches_write_plan,
)

Action = Literal["advance", "back", "set"]


@dataclass(frozen=True)
class MoveRequest:
    """A phase move as asked on the command line."""

    env_file: Path
    action: Action
    apply: bool
    operator: str
    reason: str
    phase: str | None = None  # for `set`
    percent: float | None = None
    tenants: tuple[str, ...] | None = None
    target: str | None = None
    force: bool = False


@dataclass(frozen=True)
class MoveReport:
    """What a move did (or would do)."""

    request: MoveRequest
    timestamp: str
    source: Phase
    goal: Goal
    transition: Transition
    diff: str
    backup: Backup | None
    written: bool
    result: str
    notes: str
    duration_s: float
    journal: Path
    warnings: tuple[str, ...] = field(default=())
    reconcile: Freshness | None = None  # the last reconcile, as the swap's check saw it
    previous: dict[str, str | None] = field(default_factory=dict)  # what the changes replace

    def as_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "operator": self.request.operator,
            "env_file": str(self.request.env_file),
            "apply": self.request.apply,
            "result": self.result,
            "duration_s": self.duration_s,
            "changes": self.transition.changes,
            "notes": self.notes,
            "action": self.request.action,
            "from": self.source.label,
            "to": self.goal.label,
            "allowed": self.transition.allowed,
            "forced": bool(self.transition.refusals) and self.request.force,
            "refusals": list(self.transition.refusals),
            "warnings": list(self.warnings),
            "diff": self.diff,
            "previous": self.previous,
            "backup": str(self.backup.latest) if self.backup else None,
            "backup_kept": str(self.backup.kept) if self.backup and self.backup.kept else None,
            "written": self.written,
            "journal": str(self.journal),
            "reconcile": None if self.reconcile is None else self.reconcile.as_dict(),
        }


class PhaseMover:
    """Runs phase moves against env files, journaling each one. ``max_reconcile_age_s``
    is the age beyond which the last reconcile no longer opens a swap."""

    def __init__(
        self,
        journal: Journal,
        *,
        max_reconcile_age_s: float,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._journal = journal
        self._max_age_s = max_reconcile_age_s
        self._clock = clock or SystemClock()
        self._environ = environ

    def run(self, request: MoveRequest) -> MoveReport:
        """Decide and (with ``apply``) write the move. Raises `Refused` (after journaling)
        when a check says no and ``force`` is not set."""
        started, t0 = self._clock.now(), self._clock.monotonic()
        notes = f"phase {request.action}: {request.reason}"
        with contextlib.ExitStack() as stack:
            try:
                # An apply holds the env file's edit lock until its journal line is written
                # (as a rollback does): concurrent applies are serialised, each journaled.
                if request.apply:
                    stack.enter_context(exclusive(request.env_file))
                report = self._run(request, utc_timestamp(started), t0)
            except ShadowswapError as exc:
                entry = JournalEntry(
                    utc_timestamp(started),
                    request.operator,
                    str(request.env_file),
                    request.apply,
                    "failure",
                    round(self._clock.monotonic() - t0, 3),
                    {},
                    f"{notes}; error: {exc}",
                )
                append_after_error(self._journal, entry)
                raise
            entry = JournalEntry(
                report.timestamp,
                request.operator,
                str(request.env_file),
                request.apply,
                "success",
                report.duration_s,
                report.transition.changes,
                report.notes,
                report.previous,
            )
            append_or_explain(self._journal, entry, report.written)
            return report

    def _run(self, request: MoveRequest, timestamp: str, t0: float) -> MoveReport:
        snapshot = read_env(request.env_file)
        settings = load_settings(request.env_file, self._environ)
        phase = classify(settings)
        goal = self._goal(request, phase)
        reconcile = reconcile_freshness(
            settings.state_dir, settings, self._clock.now(), self._max_age_s
        )
        move = transition(phase, goal, reconcile, request.target)
        head = f"phase {request.action}: {phase.label} -> {goal.label}; {request.reason}"
        if move.refusals and not request.force:
            raise Refused(
                f"phase {request.action} {phase.label} -> {goal.label}",
                [*move.refusals, "--force overrides these checks (the journal records it)"],
            )
        new_text = edit_text(snapshot.text, move.changes, str(request.env_file))
        load_settings(environ=parse_values(new_text))  # the result must load
        diff = render_diff(str(request.env_file), snapshot.text, new_text)
        backup = None
        if request.apply:
            at = self._clock.now()
            backup = write_env(snapshot, new_text, backup=True, at=at)
        recorded = []
        if request.apply and touches_write_plan(move.changes):
            recorded = self._record(request, settings)
        notes = head
        if move.refusals:
            notes += "; forced past: " + " | ".join(move.refusals)
        _, sources = gather(request.env_file, self._environ)
        overridden = [
            f"{k} is also set in this shell's environment, which wins over the env file"
            for k in move.changes
            if sources.get(k) == "environment"
        ]
        return MoveReport(
            request,
            timestamp,
            phase,
            goal,
            move,
            diff,
            backup,
            request.apply and bool(move.changes),
            "success",
            notes,
            round(self._clock.monotonic() - t0, 3),
            self._journal.path,
            move.warnings + tuple(overridden) + tuple(recorded),
            reconcile,
            previous_values(snapshot.values, move.changes),
        )

    def _record(self, request: MoveRequest, before: Settings) -> list[str]:
        """Record the change of the write plan (module doc); a failure is a warning, since
        the env file is already changed."""
        try:
            after = load_settings(request.env_file, self._environ)
            record_write_plan(
                after.state_dir, after, at=self._clock.now(), by=f"phase {request.action}"
            )
        except (StateError, ConfigError) as exc:
            return [
                f"the change of the write plan was not recorded in {before.state_dir} ({exc}): "
                "a reconcile taken before this move may look fresh; run `shadowswap "
                "reconcile` again before the swap"
            ]
        return []

    @staticmethod
    def _goal(request: MoveRequest, phase: Phase) -> Goal:
        if request.action == "advance":
            return next_goal(phase, request.percent, request.tenants)
        if request.action == "back":
            return previous_goal(phase)
        assert request.phase is not None
        return set_goal(request.phase, request.percent, request.tenants)

"""Rollback to the legacy backend (runbook 002), as a plan of numbered steps, then its run.

The steps, in the runbook's order, after a step of ours:

0. replay the outbox, when one is configured (the CLI always does; `shadowswap.rollout.drain`):
   changes still waiting for the legacy store land on it before it takes every write alone.
1. ``FF_RETRIEVAL_DUAL_WRITE=OFF``: writes stop going to the other backend; with dual write
   off every read is served by the primary again (`shadowswap.policy`).
2. purge the target's inconsistent delta, only with ``--purge-delta`` (`shadowswap.rollout.purge`).
3. ``FF_RETRIEVAL_SHADOW_READ=OFF``.
4. ``RETRIEVAL_BACKEND=<legacy>`` (``faiss`` unless ``--backend`` or
   ``RETRIEVAL_LEGACY_BACKEND`` says otherwise). When the primary was another backend (after a
   swap, runbook 001, or after ``done``) that backend becomes ``RETRIEVAL_TARGET_BACKEND``:
   the two trade places, so the configuration stays valid (target and primary must differ)
   and re-opening shadow read later (runbook 002, step 7) points at the right backend, with
   every flag OFF until then.
5. cutover cleared: ``RETRIEVAL_CUTOVER_TENANTS=`` and ``RETRIEVAL_CUTOVER_PERCENT=0``.
6. smoke test, only with ``--smoke-url`` (`shadowswap.rollout.smoke`).

A step whose variables already hold the wanted value (compared by meaning: ``off`` is
``OFF``) changes nothing and is shown as such; ``changes`` lists only real changes. The plan is
computed from the env file's own values, not from validated settings, so a rollback works even
when another line of the file is broken.

Without a purge, steps 1, 3, 4 and 5 are one atomic edit: a process following the file sees
all of them at once. With ``--purge-delta`` and ``--apply``, step 1 is written first, then the
run waits ``settle_s`` (6 s: long enough for processes that follow the file, which look every
second, to stop dual writing) before purging, then writes the rest. A purge that fails does
not stop the rollback (traffic comes first); the run ends as a failure and says so.

The replay runs first, with ``--apply`` only (a dry run says how many items it would replay).
Like a failed purge, a failed replay does not stop the rollback; the run ends as a failure
and says to run ``shadowswap replay-outbox`` then ``shadowswap reconcile``. An outbox that
cannot even be read (unreachable from where the script runs) skips the step with a warning
saying the same; the run's result does not change for it.

``--apply`` first writes ``<file>.bak`` (byte-identical) and a timestamped copy that is never
replaced (`shadowswap.settings.envfile`); a dry-run writes nothing but the journal. Every
run, dry or not, successful or not, appends one journal line, with the value each changed
variable had before (``previous``). An apply holds the env file's edit lock from reading
the file to writing its journal line: six rollbacks started at once run one after the other,
the first changes the file, the others find nothing to change, and each line says so.

Each applied edit that changes where writes go is recorded in
``<RETRIEVAL_STATE_DIR>/write_plan.json`` (`shadowswap.sync.freshness`): no reconcile taken
before the rollback opens a later swap, even once the phase moves have brought the same flags
back. A record that cannot be written is a warning, never a failed rollback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shadowswap.clock import Clock, SystemClock
from shadowswap.errors import ConfigError, ConfigErrors, ShadowswapError, StateError, WriteError
from shadowswap.rollout.drain import Drain
from shadowswap.rollout.journal import (
    Journal,
    JournalEntry,
    append_after_error,
    append_or_explain,
    previous_values,
    utc_timestamp,
)
from shadowswap.rollout.phases import PERCENT, TENANTS
from shadowswap.rollout.purge import Purge
from shadowswap.rollout.smoke import SmokeResult, SmokeTest
from shadowswap.settings import names
from shadowswap.settings.config import KINDS, gather, load_settings
from shadowswap.settings.envfile import (
    Backup,
    EnvSnapshot,
    edit_text,
    exclusive,
    parse_values,
    read_env,
    render_diff,
    write_env,
)
from shadowswap.settings.phase import BACKEND, DUAL, SHADOW, TARGET
from shadowswap.sync.freshness import record_write_plan, touches_write_plan

SETTLE_S = 6.0


@dataclass(frozen=True)
class Step:
    """One numbered step of the plan and what became of it."""

    number: int
    title: str
    changes: dict[str, str]
    status: str  # change | already | skipped | done | failed | would run
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "title": self.title,
            "changes": self.changes,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback of this env file does; ``leaving`` is the backend reads leave."""

    legacy: str
    leaving: str | None
    steps: tuple[Step, ...]
    warnings: tuple[str, ...]

    @property
    def changes(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for step in self.steps:
            out.update(step.changes)
        return out


def plan_rollback(
    values: Mapping[str, str], legacy: str, *, purge: bool, smoke: bool
) -> RollbackPlan:
    """The plan for an env file setting ``values`` (module doc)."""
    defaults = load_settings(environ={}).as_env(mask=False)

    def now(variable: str) -> str:
        raw = values.get(variable, "").strip()
        return raw if raw else (defaults.get(variable) or "")

    primary, target = now(BACKEND).lower(), now(TARGET).lower()
    leaving = primary if primary != legacy and primary in KINDS else None
    if leaving is None and target in KINDS and target != legacy:
        leaving = target
    backend_changes = {BACKEND: legacy}
    if primary != legacy and primary in KINDS:
        backend_changes[TARGET] = primary
    elif target == legacy:
        backend_changes[TARGET] = ""
    wanted = [
        (1, f"{DUAL}=OFF (stop dual writes)", {DUAL: "OFF"}),
        (3, f"{SHADOW}=OFF (stop shadow reads)", {SHADOW: "OFF"}),
        (4, f"{BACKEND}={legacy} ({legacy} serves every read)", backend_changes),
        (5, "cutover cleared", {TENANTS: "", PERCENT: "0"}),
    ]
    steps: list[Step] = []
    for number, title, change in wanted:
        real = {k: v for k, v in change.items() if not _same(k, now(k), v)}
        held = "now " + ", ".join(f"{k}={now(k) or '(empty)'}" for k in change)
        steps.append(Step(number, title, real, "change" if real else "already", held))
    if not purge:
        purge_step = Step(2, "purge the target's delta", {}, "skipped", "not asked (--purge-delta)")
    elif leaving is None:
        purge_step = Step(2, "purge the target's delta", {}, "skipped", "no other backend")
    else:
        purge_step = Step(
            2, f"purge {leaving}'s delta against {legacy}", {}, "would run", "after step 1"
        )
    steps.insert(1, purge_step)
    smoke_title = "smoke test (healthz + one search)"
    if smoke:
        steps.append(Step(6, smoke_title, {}, "would run"))
    else:
        steps.append(Step(6, smoke_title, {}, "skipped", "not asked (--smoke-url); run your own"))
    warnings = []
    if primary != legacy and not (target == legacy and _same(DUAL, now(DUAL), "ON")):
        warnings.append(
            f"{legacy} was not kept in step while {primary} was primary without dual write to "
            f"it: writes made since then are missing from {legacy}; backfill it from {primary}"
        )
    return RollbackPlan(legacy, leaving, tuple(steps), tuple(warnings))


def _same(variable: str, current: str, wanted: str) -> bool:
    """Equal in meaning (``off`` is ``OFF``, ``a, b`` is ``a,b``, ``0.0`` is ``0``)."""
    if variable in (DUAL, SHADOW):
        words = {"on": "ON", "true": "ON", "1": "ON", "yes": "ON"}
        words |= {"off": "OFF", "false": "OFF", "0": "OFF", "no": "OFF"}
        return words.get(current.strip().lower()) == wanted
    if variable == PERCENT:
        try:
            return float(current) == float(wanted)
        except ValueError:
            return False
    if variable == TENANTS:
        return [t.strip() for t in current.split(",") if t.strip()] == [
            t for t in wanted.split(",") if t
        ]
    return current.strip().lower() == wanted


# -- running it -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RollbackRequest:
    """What the operator asked for (the command line)."""

    env_file: Path
    apply: bool
    operator: str
    reason: str
    legacy: str | None = None
    purge_delta: bool = False
    settle_s: float = SETTLE_S


@dataclass(frozen=True)
class RollbackReport:
    """What a rollback did (or, dry, would do)."""

    request: RollbackRequest
    timestamp: str
    plan: RollbackPlan | None
    steps: tuple[Step, ...]
    changes: dict[str, str]
    diff: str
    backup: Backup | None
    smoke: SmokeResult | None
    result: str
    notes: str
    duration_s: float
    journal: Path
    warnings: tuple[str, ...] = field(default=())
    error: str | None = None
    previous: dict[str, str | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "operator": self.request.operator,
            "env_file": str(self.request.env_file),
            "apply": self.request.apply,
            "result": self.result,
            "duration_s": self.duration_s,
            "changes": self.changes,
            "notes": self.notes,
            "legacy": self.plan.legacy if self.plan else self.request.legacy,
            "steps": [s.as_dict() for s in self.steps],
            "diff": self.diff,
            "previous": self.previous,
            "backup": str(self.backup.latest) if self.backup else None,
            "backup_kept": str(self.backup.kept) if self.backup and self.backup.kept else None,
            "smoke": self.smoke.as_dict() if self.smoke else None,
            "warnings": list(self.warnings),
            "journal": str(self.journal),
            "error": self.error,
        }


class Rollback:
    """Runs a rollback: plan, optional purge, edits, smoke test, journal line.

    >>> Rollback(Journal("artifacts/rollback_drill_log.ndjson")).run(request)  # doctest: +SKIP
    """

    def __init__(
        self,
        journal: Journal,
        *,
        purge: Purge | None = None,
        smoke: SmokeTest | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        drain: Drain | None = None,
    ) -> None:
        self._journal = journal
        self._purge = purge
        self._drain = drain
        self._smoke = smoke
        self._clock = clock or SystemClock()
        self._environ = environ

    def run(self, request: RollbackRequest) -> RollbackReport:
        """Run it; the journal line is written whatever happens. Errors are re-raised after
        the journal line (the CLI maps them to exit codes); a failed purge or smoke test is a
        report with ``result == "failure"``."""
        started, t0 = self._clock.now(), self._clock.monotonic()
        progress = _Progress()
        with contextlib.ExitStack() as stack:
            try:
                # An apply holds the env file's edit lock until its journal line is written:
                # concurrent applies run one after the other, each journaling what it replaced.
                if request.apply:
                    stack.enter_context(exclusive(request.env_file))
                report = self._run(request, progress, utc_timestamp(started), t0)
            except ShadowswapError as exc:
                entry = JournalEntry(
                    utc_timestamp(started),
                    request.operator,
                    str(request.env_file),
                    request.apply,
                    "failure",
                    round(self._clock.monotonic() - t0, 3),
                    progress.written,
                    _notes(request.reason, progress, error=str(exc)),
                    previous_values(progress.before, progress.written),
                )
                append_after_error(self._journal, entry)
                raise
            entry = JournalEntry(
                report.timestamp,
                request.operator,
                str(request.env_file),
                request.apply,
                "success" if report.result == "success" else "failure",
                report.duration_s,
                report.changes,
                report.notes,
                report.previous,
            )
            append_or_explain(self._journal, entry, request.apply and bool(report.changes))
            return report

    def _run(
        self,
        request: RollbackRequest,
        progress: _Progress,
        timestamp: str,
        t0: float,
    ) -> RollbackReport:
        label = str(request.env_file)
        snapshot = read_env(request.env_file)
        progress.before = dict(snapshot.values)
        legacy = (request.legacy or _legacy_of(request.env_file, self._environ)).lower()
        if legacy not in KINDS:
            raise ConfigError("--backend", legacy, "expected one of " + ", ".join(KINDS))
        plan = plan_rollback(
            snapshot.values, legacy, purge=request.purge_delta, smoke=self._smoke is not None
        )
        purging = request.purge_delta and plan.leaving is not None
        if purging:
            if self._purge is None:  # pragma: no cover - the CLI always passes one
                raise WriteError(str(request.env_file), "no purge step configured")
            self._purge.check()
        new_text = edit_text(snapshot.text, plan.changes, label)
        warnings = list(plan.warnings) + self._check_result(snapshot, new_text, plan.changes)
        warnings += self._overridden(request.env_file, plan.changes)
        diff = render_diff(str(request.env_file), snapshot.text, new_text)
        steps = {s.number: s for s in plan.steps}
        if self._drain is not None:
            steps[0] = self._drain_step(request.apply, legacy, progress)
            if steps[0].status == "skipped":
                warnings.append(
                    f"the outbox was not replayed ({steps[0].detail}); changes it holds for "
                    f"{legacy} are not on it: run shadowswap replay-outbox where the outbox "
                    "is reachable, then shadowswap reconcile"
                )
        backup: Backup | None = None
        if request.apply:
            backup, steps = self._apply(request, plan, snapshot, steps, progress, warnings)
        smoke = None
        if self._smoke is not None:
            smoke = self._smoke.run(legacy if request.apply else None)
            steps[6] = Step(6, steps[6].title, {}, "done" if smoke.ok else "failed", smoke.detail)
            progress.smoke = smoke.detail if smoke.ok else f"FAILED {smoke.detail}"
        failed = any(s.status == "failed" for s in steps.values())
        return RollbackReport(
            request,
            timestamp,
            plan,
            tuple(steps[n] for n in sorted(steps)),
            plan.changes,
            diff,
            backup,
            smoke,
            "failure" if failed else "success",
            _notes(request.reason, progress),
            round(self._clock.monotonic() - t0, 3),
            self._journal.path,
            tuple(warnings),
            previous=previous_values(snapshot.values, plan.changes),
        )

    def _apply(
        self,
        request: RollbackRequest,
        plan: RollbackPlan,
        snapshot: EnvSnapshot,
        steps: dict[int, Step],
        progress: _Progress,
        warnings: list[str],
    ) -> tuple[Backup | None, dict[int, Step]]:
        changes, label = plan.changes, str(request.env_file)
        at = self._clock.now()
        if request.purge_delta and plan.leaving is not None:
            # Runbook order: dual write off, (settle), purge, then the rest.
            first = {k: v for k, v in changes.items() if k == DUAL}
            backup = None
            if first:
                first_text = edit_text(snapshot.text, first, label)
                backup = write_env(snapshot, first_text, backup=True, at=at)
                progress.written.update(first)
                self._record(request.env_file, first, warnings)
                self._clock.sleep(request.settle_s)
            self._purge_step(plan, steps, progress)
            snapshot = read_env(request.env_file)
            rest = {k: v for k, v in changes.items() if k != DUAL}
            second = write_env(
                snapshot,
                edit_text(snapshot.text, rest, label),
                backup=backup is None,
                at=at,
            )
            backup = backup or second
            self._record(request.env_file, rest, warnings)
        else:
            new_text = edit_text(snapshot.text, changes, label)
            backup = write_env(snapshot, new_text, backup=True, at=at)
            self._record(request.env_file, changes, warnings)
        progress.written.update(changes)
        for number, step in steps.items():
            if step.status == "change":
                steps[number] = Step(number, step.title, step.changes, "done", step.detail)
        return backup, steps

    def _record(self, env_file: Path, changes: Mapping[str, str], warnings: list[str]) -> None:
        """Record a change of the write plan (module doc); the settings may not load (an
        unrelated broken line): then the state dir is read from the raw values."""
        if not touches_write_plan(changes):
            return
        settings = None
        try:
            settings = load_settings(env_file, self._environ)
            state_dir = settings.state_dir
        except ConfigError:
            merged, _ = gather(env_file, self._environ)
            state_dir = merged.get(names.RETRIEVAL_STATE_DIR) or _default_state_dir()
        try:
            record_write_plan(state_dir, settings, at=self._clock.now(), by="rollback")
        except StateError as exc:
            warnings.append(
                f"the change of the write plan was not recorded ({exc}): a reconcile taken "
                "before this rollback may look fresh later; run shadowswap reconcile again "
                "before any swap"
            )

    def _drain_step(self, apply: bool, legacy: str, progress: _Progress) -> Step:
        """Step 0 (module doc): look at the outbox; with ``apply``, replay it."""
        assert self._drain is not None
        title = f"replay the outbox (changes {legacy} may miss)"
        try:
            pending = self._drain.pending()
        except ShadowswapError as exc:  # traffic comes first: said, not failed
            progress.drain = f"not read: {exc}"
            return Step(0, title, {}, "skipped", f"cannot read the outbox: {exc}")
        if pending == 0:
            return Step(0, title, {}, "already", "the outbox is empty")
        if not apply:
            return Step(0, title, {}, "would run", f"{pending} items, before step 1")
        try:
            summary = self._drain.run()
        except ShadowswapError as exc:
            progress.drain = f"FAILED {exc}"
            detail = f"{exc}; after the rollback run shadowswap replay-outbox, then reconcile"
            return Step(0, title, {}, "failed", detail)
        progress.drain = summary
        return Step(0, title, {}, "done", summary)

    def _purge_step(self, plan: RollbackPlan, steps: dict[int, Step], progress: _Progress) -> None:
        assert self._purge is not None and plan.leaving is not None
        title = steps[2].title
        try:
            summary = self._purge.run(plan.legacy, plan.leaving)
        except ShadowswapError as exc:
            steps[2] = Step(2, title, {}, "failed", str(exc))
            progress.purge = f"FAILED {exc}"
            return
        steps[2] = Step(2, title, {}, "done", summary)
        progress.purge = summary

    def _check_result(
        self, snapshot: EnvSnapshot, new_text: str, changes: Mapping[str, str]
    ) -> list[str]:
        """The edited file must load; errors in lines the rollback did not touch are only
        reported (a rollback must not wait for someone to fix an unrelated line)."""
        try:
            load_settings(environ=parse_values(new_text))
        except ConfigError as exc:
            errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
            ours = [e for e in errors if e.variable in changes]
            if ours:
                raise WriteError(
                    str(snapshot.path), f"the result would not load: {ours[0]}"
                ) from exc
            return [f"the env file has another invalid value: {e}" for e in errors]
        return []

    def _overridden(self, env_file: Path, changes: Mapping[str, str]) -> list[str]:
        _, sources = gather(env_file, self._environ)
        return [
            f"{k} is also set in this shell's environment, which wins over the env file for "
            "processes started from it"
            for k in changes
            if sources.get(k) == "environment"
        ]


@dataclass
class _Progress:
    """What has been written and what happened so far (for the journal, even on error)."""

    written: dict[str, str] = field(default_factory=dict)
    before: dict[str, str] = field(default_factory=dict)  # the env file's values at the start
    drain: str | None = None
    purge: str | None = None
    smoke: str | None = None


def _notes(reason: str, progress: _Progress, error: str | None = None) -> str:
    parts = [reason]
    if progress.drain:
        parts.append(f"outbox: {progress.drain}")
    if progress.purge:
        parts.append(f"purge: {progress.purge}")
    if progress.smoke:
        parts.append(f"smoke: {progress.smoke}")
    if error:
        parts.append(f"error: {error}")
    return "; ".join(parts)


def _default_state_dir() -> str:
    return load_settings(environ={}).state_dir


def _legacy_of(env_file: Path, environ: Mapping[str, str] | None) -> str:
    """``RETRIEVAL_LEGACY_BACKEND`` as configuration reads it (environment, file, default)."""
    merged, _ = gather(env_file, environ)
    raw = merged.get(names.RETRIEVAL_LEGACY_BACKEND, "").strip()
    return raw or load_settings(environ={}).legacy_backend

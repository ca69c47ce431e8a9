"""``shadowswap rollback`` (runbook 002) and ``shadowswap phase status|advance|back|set``.

A thin shell over `shadowswap.rollout`: parse, call, render. ``scripts/rollback_retrieval.py``
runs ``rollback`` with the runbook's flags.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from shadowswap.cli.common import AsJson, EnvFile, emit_json, handled
from shadowswap.errors import ConfigError, InvalidInput
from shadowswap.gate.criteria import load_criteria
from shadowswap.gate.freshness import reconcile_max_age_s
from shadowswap.rollout.drain import OutboxDrain
from shadowswap.rollout.journal import Journal, check_operator, check_reason
from shadowswap.rollout.moves import Action, MoveReport, MoveRequest, PhaseMover
from shadowswap.rollout.phases import next_goal, next_step, previous_goal
from shadowswap.rollout.purge import ReconcilePurge
from shadowswap.rollout.rollback import SETTLE_S, Rollback, RollbackReport, RollbackRequest
from shadowswap.rollout.smoke import HttpSmokeTest
from shadowswap.settings import names
from shadowswap.settings.config import gather, load_settings
from shadowswap.settings.phase import PHASES, classify
from shadowswap.sync.freshness import Freshness, reconcile_freshness
from shadowswap.values import check_tenant

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Show the plan and the diff; write only the journal.")
]
Apply = Annotated[bool, typer.Option("--apply", help="Edit the env file (after a .bak copy).")]
Operator = Annotated[
    str | None, typer.Option("--operator", help="Who runs this: a handle, no personal data.")
]
Reason = Annotated[
    str | None, typer.Option("--reason", help="Why (drill, incident id); goes in the journal.")
]
JournalPath = Annotated[
    Path | None,
    typer.Option(
        "--journal",
        help="Journal file (default: RETRIEVAL_ROLLBACK_JOURNAL, "
        "artifacts/rollback_drill_log.ndjson).",
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Override the safety checks (journaled).")]
Percent = Annotated[float | None, typer.Option("--percent", help="Cutover percentage, 0 to 100.")]
Tenants = Annotated[str | None, typer.Option("--tenants", help="Cutover tenants, comma-separated.")]
Target = Annotated[
    str | None, typer.Option("--target", help="The new backend, when none is configured.")
]
CriteriaFile = Annotated[
    Path | None,
    typer.Option(
        "--criteria",
        help="Gate criteria file (deploy/gate.yml): the threshold of its reconcile_fresh "
        "criterion is the oldest reconcile a swap accepts. Default: the built-in criteria.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``rollback`` and the ``phase`` group to the ``shadowswap`` app."""
    app.command("rollback")(rollback_cmd)
    phase = typer.Typer(
        name="phase",
        help="Migration phases: status, and moves one step at a time.",
        no_args_is_help=True,
    )
    phase.command("status")(status_cmd)
    phase.command("advance")(advance_cmd)
    phase.command("back")(back_cmd)
    phase.command("set")(set_cmd)
    app.add_typer(phase)


# -- rollback ---------------------------------------------------------------------------------
@handled
def rollback_cmd(
    *,
    env_file: EnvFile = None,
    dry_run: DryRun = False,
    apply: Apply = False,
    operator: Operator = None,
    reason: Reason = None,
    backend: Annotated[
        str | None,
        typer.Option(help="Backend to return to (default RETRIEVAL_LEGACY_BACKEND, faiss)."),
    ] = None,
    purge_delta: Annotated[
        bool, typer.Option("--purge-delta", help="Purge the target's delta (step 2).")
    ] = False,
    settle_s: Annotated[
        float,
        typer.Option(min=0, help="With --purge-delta: seconds between dual write off and purge."),
    ] = SETTLE_S,
    smoke_url: Annotated[
        str | None, typer.Option(help="Service URL: GET /healthz + one search after the edit.")
    ] = None,
    smoke_tenant: Annotated[str, typer.Option(help="Tenant of the smoke search.")] = "smoke",
    smoke_dim: Annotated[
        int, typer.Option(min=1, help="Dimension of the smoke query vector.")
    ] = 384,
    smoke_api_key_file: Annotated[
        Path | None, typer.Option(help="File holding an API key for the smoke test.")
    ] = None,
    smoke_wait_s: Annotated[
        float, typer.Option(min=0, help="After --apply: how long to wait for the switch.")
    ] = 10.0,
    journal: JournalPath = None,
    as_json: AsJson = False,
) -> None:
    """Roll back to the legacy backend (runbook 002), journaled.

    Outbox replayed, dual write off, purge of the target's delta (if asked), shadow read off,
    RETRIEVAL_BACKEND=the legacy backend, cutover cleared, smoke test (if asked).
    """
    file, is_apply, who, why = _common(env_file, dry_run, apply, operator, reason)
    smoke = None
    if smoke_url:
        key = _read_key(smoke_api_key_file) if smoke_api_key_file else None
        smoke = HttpSmokeTest(
            smoke_url, tenant=smoke_tenant, dimension=smoke_dim, api_key=key, wait_s=smoke_wait_s
        )
    runner = Rollback(
        Journal(_journal_path(journal, file)),
        purge=ReconcilePurge(lambda: load_settings(file)),
        smoke=smoke,
        drain=OutboxDrain(lambda: load_settings(file)),
    )
    report = runner.run(
        RollbackRequest(
            file,
            is_apply,
            who,
            why,
            legacy=backend,
            purge_delta=purge_delta,
            settle_s=settle_s,
        )
    )
    if as_json:
        emit_json(report.as_dict())
    else:
        _show_rollback(report)
    if report.result != "success":
        raise typer.Exit(1)


def _show_rollback(report: RollbackReport) -> None:
    request = report.request
    mode = "APPLY" if request.apply else "dry-run: nothing is written but the journal"
    legacy = report.plan.legacy if report.plan else "?"
    typer.echo(f"rollback of {request.env_file} to {legacy} ({mode})")
    for step in report.steps:
        typer.echo(f"  {step.number}. {step.title:<52} {step.status:<9} {step.detail}")
        for key, value in step.changes.items():
            typer.echo(f"       {key} -> {value or '(empty)'}")
    if report.diff:
        typer.echo("diff:")
        typer.echo(report.diff.rstrip("\n"))
    else:
        typer.echo("diff: none (the env file already says all this)")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if report.backup:
        kept = f" (this state is also kept as {report.backup.kept})" if report.backup.kept else ""
        typer.echo(f"backup: {report.backup.latest}{kept}")
    typer.echo(f"result: {report.result} in {report.duration_s:g} s; journal: {report.journal}")


# -- phases -----------------------------------------------------------------------------------
@handled
def status_cmd(
    env_file: EnvFile = None, criteria: CriteriaFile = None, as_json: AsJson = False
) -> None:
    """Name the current phase from the flags, say what comes next, and whether the last
    reconcile still counts (its age, and why not when it is stale)."""
    max_age_s = _max_age(criteria)
    settings = load_settings(env_file)
    phase = classify(settings)
    reconcile = reconcile_freshness(settings.state_dir, settings, time.time(), max_age_s)
    advance = _try(lambda: next_goal(phase).label)
    back = _try(lambda: previous_goal(phase).label)
    step = next_step(phase)
    file = str(env_file or settings.env_file or ".env")
    target = "" if phase.new else " --target KIND"
    command = (
        f"shadowswap phase advance --env-file {file}{target} --dry-run --operator NAME "
        "--reason TEXT"
        if advance
        else None
    )
    document = phase.as_dict() | {
        "next": step,
        "advance_to": advance,
        "back_to": back,
        "command": command,
        "drift": reconcile.known_drift,
        "drift_detail": reconcile.detail,
        "reconcile": reconcile.as_dict(),
    }
    if as_json:
        emit_json(document)
        return
    typer.echo(f"phase: {phase.label}")
    typer.echo(
        f"  primary {phase.primary}, target {phase.target or '(none)'} (legacy {phase.legacy}); "
        f"dual write {'ON' if phase.dual_write else 'OFF'}, "
        f"shadow read {'ON' if phase.shadow_read else 'OFF'}"
    )
    if phase.reason:
        typer.echo(f"  why custom: {phase.reason}")
    for note in phase.notes:
        typer.echo(f"  note: {note}")
    _show_reconcile(reconcile)
    typer.echo(f"next: {step}")
    if command:
        typer.echo(f"  {command}   (-> {advance})")
    if back:
        typer.echo(f"back: `phase back` -> {back}")


def _show_reconcile(reconcile: Freshness) -> None:
    if reconcile.drift is None:
        typer.echo(f"  reconcile: {'; '.join(reconcile.reasons)}")
        return
    if reconcile.fresh:
        typer.echo(f"  reconcile: {reconcile.summary}: fresh")
        return
    typer.echo(f"  reconcile: {reconcile.summary}: STALE, it does not count for the swap:")
    for reason in reconcile.reasons:
        typer.echo(f"    - {reason}")


def _max_age(criteria: Path | None) -> float:
    """The reconcile_fresh threshold of ``criteria`` (a file), else of the default criteria."""
    return reconcile_max_age_s(load_criteria(criteria) if criteria is not None else None)


def _try(fn: Any) -> str | None:
    try:
        return str(fn())
    except InvalidInput:
        return None


@handled
def advance_cmd(
    *,
    env_file: EnvFile = None,
    dry_run: DryRun = False,
    apply: Apply = False,
    operator: Operator = None,
    reason: Reason = None,
    percent: Percent = None,
    tenants: Tenants = None,
    target: Target = None,
    force: Force = False,
    criteria: CriteriaFile = None,
    journal: JournalPath = None,
    as_json: AsJson = False,
) -> None:
    """Move one phase forward (within cutover: 10 -> 50 -> 100 %)."""
    _move(
        action="advance", phase=None, env_file=env_file, dry_run=dry_run, apply=apply,
        operator=operator, reason=reason, percent=percent, tenants=tenants, target=target,
        force=force, criteria=criteria, journal=journal, as_json=as_json,
    )  # fmt: skip


@handled
def back_cmd(
    *,
    env_file: EnvFile = None,
    dry_run: DryRun = False,
    apply: Apply = False,
    operator: Operator = None,
    reason: Reason = None,
    force: Force = False,
    journal: JournalPath = None,
    as_json: AsJson = False,
) -> None:
    """Move one phase back (within cutover: 100 -> 50 -> 10 %)."""
    _move(
        action="back", phase=None, env_file=env_file, dry_run=dry_run, apply=apply,
        operator=operator, reason=reason, percent=None, tenants=None, target=None,
        force=force, criteria=None, journal=journal, as_json=as_json,
    )  # fmt: skip


@handled
def set_cmd(
    *,
    phase: Annotated[str, typer.Argument(help="One of: " + ", ".join(PHASES))],
    env_file: EnvFile = None,
    dry_run: DryRun = False,
    apply: Apply = False,
    operator: Operator = None,
    reason: Reason = None,
    percent: Percent = None,
    tenants: Tenants = None,
    target: Target = None,
    force: Force = False,
    criteria: CriteriaFile = None,
    journal: JournalPath = None,
    as_json: AsJson = False,
) -> None:
    """Set the flags of a named phase (the same safety checks apply)."""
    _move(
        action="set", phase=phase, env_file=env_file, dry_run=dry_run, apply=apply,
        operator=operator, reason=reason, percent=percent, tenants=tenants, target=target,
        force=force, criteria=criteria, journal=journal, as_json=as_json,
    )  # fmt: skip


def _move(
    *,
    action: Action,
    phase: str | None,
    env_file: Path | None,
    dry_run: bool,
    apply: bool,
    operator: str | None,
    reason: str | None,
    percent: float | None,
    tenants: str | None,
    target: str | None,
    force: bool,
    criteria: Path | None,
    journal: Path | None,
    as_json: bool,
) -> None:
    file, is_apply, who, why = _common(env_file, dry_run, apply, operator, reason)
    max_age_s = _max_age(criteria)
    tenant_list = None
    if tenants is not None:
        parts = [t.strip() for t in tenants.split(",") if t.strip()]
        tenant_list = tuple(check_tenant(t, "--tenants") for t in parts)
    mover = PhaseMover(Journal(_journal_path(journal, file)), max_reconcile_age_s=max_age_s)
    report = mover.run(
        MoveRequest(
            file,
            action,
            is_apply,
            who,
            why,
            phase=phase,
            percent=percent,
            tenants=tenant_list,
            target=target.lower() if target else None,
            force=force,
        )
    )
    if as_json:
        emit_json(report.as_dict())
    else:
        _show_move(report)


def _show_move(report: MoveReport) -> None:
    request = report.request
    mode = "APPLY" if request.apply else "dry-run: nothing is written but the journal"
    typer.echo(f"phase {request.action}: {report.source.label} -> {report.goal.label} ({mode})")
    for refusal in report.transition.refusals:
        typer.echo(f"  FORCED past: {refusal}", err=True)
    for key, value in report.transition.changes.items():
        typer.echo(f"  {key} -> {value or '(empty)'}")
    if report.diff:
        typer.echo(report.diff.rstrip("\n"))
    else:
        typer.echo("  no change: the env file already says this")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if report.backup:
        kept = f" (this state is also kept as {report.backup.kept})" if report.backup.kept else ""
        typer.echo(f"backup: {report.backup.latest}{kept}")
    typer.echo(f"result: {report.result}; journal: {report.journal}")


# -- shared -----------------------------------------------------------------------------------
def _common(
    env_file: Path | None,
    dry_run: bool,
    apply: bool,
    operator: str | None,
    reason: str | None,
) -> tuple[Path, bool, str, str]:
    if dry_run == apply:
        raise InvalidInput("--dry-run/--apply", "say exactly one of --dry-run or --apply")
    if operator is None:
        raise InvalidInput("--operator", "is required: who runs this (a handle such as alice)")
    if reason is None:
        raise InvalidInput("--reason", "is required: why (for example: drill, incident-123)")
    who, why = check_operator(operator), check_reason(reason)
    if env_file is None:
        merged, _ = gather(None)
        if not merged.get(names.RETRIEVAL_ENV_FILE):
            raise InvalidInput("--env-file", "is required: the env file to edit")
        env_file = Path(merged[names.RETRIEVAL_ENV_FILE])
    return env_file, apply, who, why


def _journal_path(option: Path | None, env_file: Path) -> Path:
    if option is not None:
        return option
    try:
        merged, _ = gather(env_file)
    except ConfigError:  # a missing env file is reported by the command itself
        merged, _ = gather(None)
    return Path(
        merged.get(names.RETRIEVAL_ROLLBACK_JOURNAL) or "artifacts/rollback_drill_log.ndjson"
    )


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidInput("--smoke-api-key-file", f"cannot read {path}: {exc.strerror}") from exc
    if not key:
        raise InvalidInput("--smoke-api-key-file", f"{path} is empty")
    return key

"""The ladder after the gate: cutover 10 % -> 50 % -> 100 %, swap (runbook 001), rollback
drill (runbook 002) and the way back, final reconcile, and the check of every acknowledged
write.

At every cutover position the reads are checked: each must be served by the backend the
settings say (the cutover hash decides per tenant), without fallback or error; each answer is
compared with the legacy store's own answer to the same query (identical top 10, and
agreement@5), which tells what a cut-over tenant sees change.
"""

from __future__ import annotations

from typing import Any

from shadowswap.policy import cutover_selects
from shadowswap.rehearsal.context import Context, Outcome, StepFailed
from shadowswap.rehearsal.data import LIVE_PREFIX
from shadowswap.rehearsal.steps_before import DisplayProgress
from shadowswap.rehearsal.traffic import ReadBatch, send_reads
from shadowswap.rollout.drain import outcome
from shadowswap.rollout.rollback import Rollback, RollbackRequest

SWAPPED_SAMPLE_RATE = "0.05"


def _check_reads(ctx: Context, name: str) -> ReadBatch:
    """The cutover sample of queries through the router, checked against the settings."""
    queries = ctx.dataset.queries[: ctx.options.cutover_reads]
    batch = send_reads(
        ctx.runtime.router,
        queries,
        clock=ctx.clock,
        expect=ctx.expected_kind,
        reference=ctx.primary,
        progress=lambda done, total: ctx.display.progress(done, total, "reads"),
    )
    ctx.reads[name] = batch
    return batch


def _read_problems(batch: ReadBatch) -> str | None:
    problems = []
    if batch.errors:
        problems.append(f"{batch.errors} reads failed")
    if batch.unexpected:
        problems.append(f"{batch.unexpected} reads served by another backend than the settings say")
    if batch.fallbacks:
        problems.append(f"{batch.fallbacks} reads fell back")
    return "; ".join(problems) or None


def _reads_line(batch: ReadBatch) -> str:
    served = ", ".join(f"{kind} {n:,}" for kind, n in sorted(batch.served_by.items()))
    same = batch.identical / batch.compared if batch.compared else 0.0
    return (
        f"{batch.reads:,} reads ({served}), {batch.fallbacks} fallbacks, "
        f"{same:.1%} answers identical to the legacy store's"
    )


# -- 9, 10, 11 -----------------------------------------------------------------------------------
def cutover(percent: float) -> Any:
    """The step that moves the cutover to ``percent``."""

    def step(ctx: Context) -> Outcome:
        report, reload_s = ctx.move("advance", f"rehearsal: cutover {percent:g}%", percent=percent)
        settings = ctx.settings
        moved = [t for t in ctx.dataset.tenants if cutover_selects(settings, t)]
        batch = _check_reads(ctx, f"cutover {percent:g}%")
        numbers = {
            "reload_s": reload_s,
            "tenants_on_target": moved,
            "tenants": len(ctx.dataset.tenants),
            **batch.as_dict(),
            "changes": report.transition.changes,
        }
        problem = _read_problems(batch)
        if problem:
            raise StepFailed(problem, numbers)
        return Outcome(
            f"{len(moved)}/{len(ctx.dataset.tenants)} tenants on {ctx.target.kind}; "
            + _reads_line(batch),
            numbers,
        )

    step.__doc__ = f"``phase advance --percent {percent:g}``, then reads checked."
    return step


# -- 12 --------------------------------------------------------------------------------------------
def reconcile_before_swap(ctx: Context, name: str) -> dict[str, Any]:
    """The reconcile a swap needs (issue 15): taken at cutover 100 %, after the last change of
    the write plan, with the writes paused and everything in flight landed; drift 0."""
    drained = ctx.drain()
    try:
        report = ctx.reconcile(name, progress=DisplayProgress(ctx, None))
    finally:
        ctx.writer.resume()
    numbers = {
        "reconcile_drift": report.drift,
        "reconcile_s": round(report.duration_s, 3),
        "reconcile_drain_s": drained["drain_s"],
    }
    if report.drift:
        raise StepFailed(f"drift {report.drift} before the swap", numbers)
    return numbers


def swap(ctx: Context) -> Outcome:
    """Runbook 001: the new backend becomes primary; the legacy one stays as its target, kept
    in step by dual write. The phase move refuses unless the last reconcile is fresh (taken
    after the last change of the write plan, here cutover 100 %) and reported drift 0, so
    one is taken first."""
    reconciled = reconcile_before_swap(ctx, "before swap")
    report, reload_s = ctx.move("advance", "rehearsal: swap (runbook 001)")
    # Runbook 001: keep the previous backend as shadow with a reduced sample rate.
    sample_s = ctx.edit_env(
        {"FF_RETRIEVAL_SHADOW_SAMPLE_RATE": SWAPPED_SAMPLE_RATE},
        "rehearsal: after the swap, the previous backend shadowed at 5 % (runbook 001)",
    )
    settings = ctx.settings
    batch = _check_reads(ctx, "swap")
    numbers = {
        **reconciled,
        "reload_s": reload_s,
        "sample_rate": settings.shadow_sample_rate_text,
        "sample_rate_reload_s": sample_s,
        "primary": settings.backend,
        "target": settings.target_backend,
        **batch.as_dict(),
        "changes": report.transition.changes,
    }
    problem = _read_problems(batch)
    if problem:
        raise StepFailed(problem, numbers)
    if set(batch.served_by) != {ctx.target.kind}:
        raise StepFailed(f"reads still served by {sorted(batch.served_by)}", numbers)
    return Outcome(
        f"{ctx.target.kind} primary, {ctx.primary.kind} its target (kept in step, shadowed at "
        f"{SWAPPED_SAMPLE_RATE}); " + _reads_line(batch),
        numbers,
    )


# -- 13 --------------------------------------------------------------------------------------------
def rollback_drill(ctx: Context) -> Outcome:
    """Runbook 002 with the rollout machinery: a dry run (nothing but the journal may
    change), then ``--apply``: every read back on the legacy store at once."""
    before = ctx.ws.env_file.read_bytes()
    lines_before = len(ctx.journal.entries())
    rollback = Rollback(
        ctx.journal, clock=ctx.clock, environ=ctx.environ, drain=_RehearsalDrain(ctx)
    )
    dry = rollback.run(
        RollbackRequest(
            ctx.ws.env_file, apply=False, operator=ctx.options.operator, reason="rehearsal drill"
        )
    )
    if ctx.ws.env_file.read_bytes() != before:
        raise StepFailed("the dry run changed the env file")
    applied = rollback.run(
        RollbackRequest(
            ctx.ws.env_file,
            apply=True,
            operator=ctx.options.operator,
            reason="rehearsal drill (apply)",
        )
    )
    legacy = ctx.primary.kind
    reload_s = ctx.await_settings(
        lambda s: s.backend == legacy and not s.dual_write, f"RETRIEVAL_BACKEND={legacy}"
    )
    batch = _check_reads(ctx, "rollback")
    entries = ctx.journal.entries()[lines_before:]
    numbers = {
        "dry_run_changes": dry.changes,
        "applied_changes": applied.changes,
        "apply_s": applied.duration_s,
        "reload_s": reload_s,
        "backup": str(applied.backup) if applied.backup else None,
        "journal_lines": len(entries),
        "journal_results": [e.result for e in entries],
        "outbox_before_switch": next((s.detail for s in applied.steps if s.number == 0), None),
        **batch.as_dict(),
    }
    problem = _read_problems(batch)
    if problem:
        raise StepFailed(problem, numbers)
    if applied.result != "success" or dry.result != "success":
        raise StepFailed("the rollback did not succeed", numbers)
    # The live writes go on (to the legacy store only, dual write is off), so an update may
    # land between a read and its reference read: 1 % of answers may differ for that reason.
    if set(batch.served_by) != {legacy} or batch.identical < batch.reads * 0.99:
        raise StepFailed(f"reads not all served by {legacy} with its own answers", numbers)
    if len(entries) != 2:
        raise StepFailed(f"{len(entries)} journal lines for the drill, not 2", numbers)
    return Outcome(
        f"dry run (env file untouched), then --apply: every read on {legacy} after "
        f"{reload_s:.2f}s, {batch.identical}/{batch.reads} answers identical to its own; "
        "2 journal lines",
        numbers,
    )


class _RehearsalDrain:
    """The rollback's step 0 on the rehearsal's own outbox and stores (the CLI's
    `shadowswap.rollout.drain.OutboxDrain` opens them from the env file instead)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def pending(self) -> int:
        return self._ctx.runtime.outbox.stats().size

    def run(self) -> str:
        return outcome(self._ctx.replay())


# -- 14 --------------------------------------------------------------------------------------------
def return_after_drill(ctx: Context) -> Outcome:
    """Runbook 002 step 7, then the ladder again: dual write on, reconcile --repair (the new
    backend missed the writes made while rolled back), shadow read, cutover 10 -> 50 -> 100,
    a reconcile after that last change of the write plan, swap."""
    moves: list[str] = []
    reloads: list[float] = []
    report, reload_s = ctx.move("advance", "rehearsal: after the drill, dual write on")
    moves.append(report.goal.label)
    reloads.append(reload_s)
    drained = ctx.drain()
    try:
        repaired = ctx.reconcile(
            "repair after drill", repair=True, progress=DisplayProgress(ctx, None)
        )
    finally:
        ctx.writer.resume()
    if repaired.drift:
        raise StepFailed(f"drift {repaired.drift} left after the repair")
    reconciled: dict[str, Any] = {}
    for percent in (None, 10.0, 50.0, 100.0, None):
        options = {} if percent is None else {"percent": percent}
        if percent is None and moves[-1] == "cutover 100%":
            reconciled = reconcile_before_swap(ctx, "before the swap after the drill")
        report, reload_s = ctx.move("advance", "rehearsal: back after the drill", **options)
        moves.append(report.goal.label)
        reloads.append(reload_s)
        ctx.display.note(" -> ".join(moves))
    settings = ctx.settings
    numbers = {
        "moves": moves,
        "reload_s": reloads,
        "repaired": repaired.found.as_dict(),
        "written": sum(t.written for t in repaired.tenants),
        "deleted": sum(t.deleted for t in repaired.tenants),
        **drained,
        **reconciled,
        "primary": settings.backend,
    }
    if settings.backend != ctx.target.kind:
        raise StepFailed(f"{settings.backend} is primary after the way back", numbers)
    found = repaired.found
    return Outcome(
        f"reconcile --repair brought {found.total:,} documents missed while rolled back "
        f"into {ctx.target.kind}; " + " -> ".join(moves),
        numbers,
    )


# -- 15 --------------------------------------------------------------------------------------------
def final_reconcile(ctx: Context) -> Outcome:
    """Stop the live writes for good, let everything land, compare every document."""
    ctx.writer.stop()
    if not ctx.runtime.writer.flush(30.0):
        raise StepFailed("the dual writer did not apply its pending writes within 30 s")
    replay = ctx.replay(quiet=True)
    report = ctx.reconcile("final", progress=DisplayProgress(ctx, None))
    numbers = {
        "drift": report.drift,
        "found": report.found.as_dict(),
        "documents": sum(t.source_docs for t in report.tenants),
        "duration_s": round(report.duration_s, 3),
        "replayed": replay.replayed,
        "outbox_left": ctx.runtime.outbox.stats().size,
    }
    if report.drift:
        raise StepFailed(f"drift {report.drift} ({report.found.as_dict()})", numbers)
    return Outcome(
        f"drift 0 over {numbers['documents']:,} documents in {report.duration_s:.1f}s",
        numbers,
    )


# -- 16 --------------------------------------------------------------------------------------------
def lost_writes(ctx: Context) -> Outcome:
    """Every acknowledged write, read back by id from both stores."""
    ctx.writer.stop()
    check = ctx.ledger.check([ctx.primary, ctx.target])
    stats = ctx.writer.stats()
    numbers = {**check.as_dict(), **stats.as_dict()}
    if ctx.options.own_stores:
        numbers["removed_rehearsal_documents"] = _remove_live_documents(ctx)
    if check.lost:
        raise StepFailed(
            f"{check.lost} acknowledged writes lost (e.g. {', '.join(check.examples[:3])})",
            numbers,
        )
    return Outcome(
        f"{stats.calls:,} acknowledged write calls over {check.documents_checked:,} documents: "
        f"every one in both stores",
        numbers,
    )


def _remove_live_documents(ctx: Context) -> int:
    """Against the user's stores: delete the documents the live writer created
    (``rehearsal-live-…``) from both, after they were checked."""
    removed = 0
    by_tenant: dict[str, list[str]] = {}
    for tenant, doc_id in ctx.ledger.expected():
        if doc_id.startswith(LIVE_PREFIX):
            by_tenant.setdefault(tenant, []).append(doc_id)
    for tenant, ids in by_tenant.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            removed += ctx.primary.delete(tenant, chunk)
            ctx.target.delete(tenant, chunk)
    return removed

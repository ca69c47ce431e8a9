"""Run a rehearsal: open the pieces, walk the ladder step by step (timed, recorded, stopped at
the first failed step), settle, check every acknowledged write, write the reports.

    ws = prepare_workspace(options)       # the work dir, recreated
    result = run_rehearsal(options, ws)   # the ladder; reports written in ws.report_dir

A step that fails stops the ladder (the rest is ``not run``); the live writes are then
stopped, the target brought back if it was down, the outbox replayed, and the acknowledged
writes still checked, so a failed rehearsal says what it lost.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry

from shadowswap.clock import Clock, SystemClock
from shadowswap.errors import ConfigError, InvalidInput, ShadowswapError
from shadowswap.gate.freshness import reconcile_max_age_s
from shadowswap.rehearsal import steps_after as after
from shadowswap.rehearsal import steps_before as before
from shadowswap.rehearsal.context import Context, Outcome, StepFailed
from shadowswap.rehearsal.data import Dataset, glove_dataset, own_store_dataset
from shadowswap.rehearsal.display import Display, NullDisplay
from shadowswap.rehearsal.ledger import Ledger
from shadowswap.rehearsal.options import RehearsalOptions
from shadowswap.rehearsal.report import CutoverBar, ReportInputs, write_reports
from shadowswap.rehearsal.result import RehearsalResult, StepRecord
from shadowswap.rehearsal.timeline import Timeline
from shadowswap.rehearsal.workload import LiveWriter
from shadowswap.rehearsal.workspace import (
    EMBEDDED,
    Workspace,
    env_text,
    own_store_environ,
    prepare,
    write_env,
)
from shadowswap.rollout.journal import Journal
from shadowswap.rollout.moves import PhaseMover
from shadowswap.runtime import build_runtime, metrics_for
from shadowswap.settings.config import load_settings
from shadowswap.settings.live import EnvFileSettings
from shadowswap.settings.phase import classify
from shadowswap.stores import open_store
from shadowswap.stores.base import BaseStore, VectorStore
from shadowswap.sync.reconcile import iso
from shadowswap.testing.faults import FlappingStore

log = logging.getLogger("shadowswap.rehearsal")

StepFn = Callable[[Context], Outcome]

LADDER: tuple[tuple[str, StepFn], ...] = (
    ("load primary", before.load_primary),
    ("dual write on", before.dual_write_on),
    ("backfill target", before.backfill_target),
    ("target outage", before.target_outage),
    ("replay outbox", before.replay_outbox),
    ("shadow read", before.shadow_read),
    ("reconcile", before.reconcile_step),
    ("gate", before.gate_step),
    ("cutover 10%", after.cutover(10.0)),
    ("cutover 50%", after.cutover(50.0)),
    ("cutover 100%", after.cutover(100.0)),
    ("swap", after.swap),
    ("rollback drill", after.rollback_drill),
    ("return after drill", after.return_after_drill),
    ("final reconcile", after.final_reconcile),
    ("lost writes", after.lost_writes),
)
STEP_NAMES = tuple(name for name, _ in LADDER)
_CHECKED_READS = ("shadow read", "cutover 10%", "cutover 50%", "cutover 100%", "swap", "rollback")


def prepare_workspace(options: RehearsalOptions) -> Workspace:
    """The work directory, recreated (see `shadowswap.rehearsal.workspace`), once the
    backends asked for are known to be usable (bad usage changes nothing on disk)."""
    _kinds(options)
    return prepare(options.workdir, options.report_dir)


def run_rehearsal(
    options: RehearsalOptions,
    ws: Workspace,
    *,
    display: Display | None = None,
    clock: Clock | None = None,
) -> RehearsalResult:
    """Walk the ladder in ``ws``; returns the result (reports written). Raises
    `ConfigError` / `InvalidInput` before the first step for options that cannot work."""
    display = display or NullDisplay()
    clock = clock or SystemClock()
    started_at, t0 = clock.now(), clock.monotonic()
    ctx = _open(options, ws, display, clock)
    result = RehearsalResult(
        primary=ctx.primary.kind,
        target=ctx.target.kind,
        data=_data(options, ctx.dataset),
        started_at=iso(started_at),
    )
    title = (
        f"shadowswap rehearse: {ctx.primary.kind} -> {ctx.target.kind}, "
        f"{ctx.dataset.name}, {len(ctx.dataset.tenants)} tenants ({ws.root})"
    )
    try:
        display.begin(title, STEP_NAMES, lambda: _status(ctx))
        _walk(ctx, result, t0)
        _settle(ctx, result)
    finally:
        display.end([])
        _close(ctx)
    result.duration_s = clock.monotonic() - t0
    result.finished_at = iso(clock.now())
    result.files = {
        "json report": str(ws.json_report),
        "html report": str(ws.html_report),
        "env file": str(ws.env_file),
        "journal": str(ws.journal),
        "observations": str(ws.observations_dir),
        "log": str(ws.log_file),
        "last reconcile": str(ws.state_dir / "reconcile_last.json"),
    }
    write_reports(_inputs(ctx, result), ws.json_report, ws.html_report)
    return result


def summary_lines(result: RehearsalResult) -> list[str]:
    """What the command prints at the end (stderr)."""
    failed = result.failed_step
    head = "ok" if result.ok else f"FAILED at {failed.name}" if failed else "FAILED"
    lines = [
        f"{head}: verdict {result.verdict}, lost_writes {_show(result.lost_writes)}, "
        f"drift {_show(result.drift)}, agreement@5 {_show(result.agreement_at_5)}, "
        f"nDCG@10 {_show(result.ndcg_at_10)}, {result.duration_s:.0f}s",
        f"reports: {result.files.get('html report')} and {result.files.get('json report')}",
    ]
    if failed is not None:
        lines.insert(1, f"  {failed.name}: {failed.summary}")
    return lines


def _show(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# -- opening ------------------------------------------------------------------------------------
def _kinds(options: RehearsalOptions) -> tuple[str, str, dict[str, str | None] | None]:
    """Primary and target kinds, and the user's settings (own stores) or None."""
    if options.env_file is None:
        primary, target = options.primary or "faiss", options.target or "chroma"
        if primary == target:
            raise InvalidInput("--target", "the target must be another kind than the primary")
        for flag, kind in (("--primary", primary), ("--target", target)):
            if kind not in EMBEDDED:
                raise InvalidInput(
                    flag,
                    f"{kind} needs a server: point the rehearsal at it with --env-file (its "
                    f"RETRIEVAL_{kind.upper()}_URL); embedded kinds: {', '.join(EMBEDDED)}",
                )
        return primary, target, None
    return _user_kinds(options)


def _user_kinds(options: RehearsalOptions) -> tuple[str, str, dict[str, str | None]]:
    assert options.env_file is not None
    user = load_settings(options.env_file)
    primary = options.primary or user.backend
    target = options.target or user.target_backend
    if not target:
        raise ConfigError(
            "RETRIEVAL_TARGET_BACKEND",
            "",
            "the rehearsal needs a target: set it in the env file or pass --target KIND",
        )
    if primary == target:
        raise InvalidInput("--target", "the target must be another kind than the primary")
    return primary, target, user.as_env(mask=False)


def _open(options: RehearsalOptions, ws: Workspace, display: Display, clock: Clock) -> Context:
    primary_kind, target_kind, user = _kinds(options)
    text = env_text(
        ws,
        primary_kind,
        target_kind,
        own_stores=user is not None,
        sample_rate=options.sample_rate,
        cb_window_s=options.cb_window_s,
    )
    write_env(ws, text)
    environ = {} if user is None else own_store_environ(user, text)
    source = EnvFileSettings(ws.env_file, environ=environ, clock=clock)
    opened: list[VectorStore] = []
    try:
        settings = source.current()
        primary = open_store(primary_kind, settings)
        opened.append(primary)
        target = open_store(target_kind, settings)
        opened.append(target)
        dataset = _dataset(options, primary)
        faulty = FlappingStore(target)
        metrics, timeline = metrics_for(settings, CollectorRegistry()), Timeline(clock)
        metrics.listen(timeline.hear)
        runtime = build_runtime(
            source,
            metrics=metrics,
            clock=clock,
            rng=random.Random(options.seed),
            primary=primary,
            # The fault wrapper is a VectorStore, all the router and the dual writer need;
            # build_runtime is typed for the stores it opens itself.
            target=cast("BaseStore", faulty),
        )
    except BaseException:
        for store in opened:
            store.close()
        source.close()
        raise
    source.start()
    ledger = Ledger(primary.metric)
    writer = LiveWriter(
        runtime.writer,
        ledger,
        tenants=dataset.tenants,
        touchable=dataset.touchable,
        fresh=dataset.fresh,
        metric=primary.metric,
        clock=clock,
        seed=options.seed + 1,
        rate=options.write_rate,
    )
    journal = Journal(ws.journal)
    return Context(
        options=options,
        ws=ws,
        dataset=dataset,
        primary=primary,
        target=target,
        faulty=faulty,
        source=source,
        environ=environ,
        runtime=runtime,
        timeline=timeline,
        ledger=ledger,
        writer=writer,
        mover=PhaseMover(
            journal, clock=clock, environ=environ, max_reconcile_age_s=reconcile_max_age_s()
        ),
        journal=journal,
        display=display,
        clock=clock,
    )


def _dataset(options: RehearsalOptions, primary: VectorStore) -> Dataset:
    if options.own_stores:
        return own_store_dataset(
            primary, queries=options.queries, seed=options.seed, queries_file=options.queries_file
        )
    return glove_dataset(
        docs=options.docs, queries=options.queries, tenants=options.tenants, seed=options.seed
    )


def _data(options: RehearsalOptions, dataset: Dataset) -> dict[str, Any]:
    return {
        "source": dataset.name,
        "documents": dataset.document_count,
        "tenants": list(dataset.tenants),
        "queries": len(dataset.queries),
        "dimension": dataset.dimension,
        "seed": options.seed,
        "own_stores": options.own_stores,
    }


# -- walking ------------------------------------------------------------------------------------
def _walk(ctx: Context, result: RehearsalResult, t0: float) -> None:
    stopped = False
    for index, (name, step) in enumerate(LADDER):
        began = ctx.clock.monotonic()
        if stopped:
            record = StepRecord(name, "not run", began - t0, 0.0, "not run: an earlier step failed")
            result.steps.append(record)
            ctx.display.step_finished(index, record)
            continue
        ctx.display.step_started(index)
        log.info("rehearsal step started", extra={"step": name})
        try:
            outcome = step(ctx)
            record = StepRecord(
                name, "passed", began - t0, ctx.clock.monotonic() - began, outcome.summary,
                outcome.numbers,
            )  # fmt: skip
        except StepFailed as exc:
            took = ctx.clock.monotonic() - began
            record = _failed(name, began - t0, took, exc.reason, exc.numbers)
        except ShadowswapError as exc:
            record = _failed(name, began - t0, ctx.clock.monotonic() - began, str(exc), {})
        except Exception as exc:  # the report must still be written: logged with its traceback
            log.exception("rehearsal step crashed", extra={"step": name})
            record = _failed(
                name, began - t0, ctx.clock.monotonic() - began, f"{type(exc).__name__}: {exc}", {}
            )
        stopped = record.status == "failed"
        log.info(
            "rehearsal step finished",
            extra={
                "step": name,
                "status": record.status,
                "duration_s": round(record.duration_s, 3),
            },
        )
        result.steps.append(record)
        ctx.display.step_finished(index, record)


def _failed(name: str, start: float, took: float, why: str, numbers: dict[str, Any]) -> StepRecord:
    return StepRecord(name, "failed", start, took, "failed", numbers, why)


def _settle(ctx: Context, result: RehearsalResult) -> None:
    """Fill the result's figures; after a failure, first let what is in flight land, then
    check the acknowledged writes anyway."""
    by_name = {s.name: s for s in result.steps}
    lost = by_name.get("lost writes")
    if lost is not None and lost.status != "not run":
        result.lost_writes = int(lost.numbers.get("lost_writes", -1))
        result.writes = dict(lost.numbers)
    else:
        result.notes.append(
            "The ladder stopped early; the acknowledged writes were checked after letting what "
            "was in flight land (target back up, writes stopped, outbox replayed)."
        )
        try:
            ctx.faulty.come_up()
            ctx.writer.stop()
            ctx.runtime.writer.flush(10.0)
            ctx.replay(quiet=True)
            check = ctx.ledger.check([ctx.primary, ctx.target])
            result.lost_writes = check.lost
            result.writes = {**check.as_dict(), **ctx.writer.stats().as_dict()}
        except ShadowswapError as exc:
            result.notes.append(f"The acknowledged writes could not be checked: {exc}")
    _breaker_notes(ctx, result)
    final = ctx.reconciles.get("final")
    result.drift = final.drift if final is not None else None
    compared = [o for o in ctx.observations if o.outcome == "compared"]
    agreement = [o.agreement_at_5 for o in compared if o.agreement_at_5 is not None]
    ndcg = [o.ndcg_at_10 for o in compared if o.ndcg_at_10 is not None]
    result.agreement_at_5 = sum(agreement) / len(agreement) if agreement else None
    result.ndcg_at_10 = sum(ndcg) / len(ndcg) if ndcg else None
    result.verdict = ctx.verdict
    result.gate = ctx.gate
    if ctx.verdict not in ("PROMOTE", "NONE"):
        result.notes.append(
            f"The gate said {ctx.verdict}: a real migration would stop there. The rehearsal "
            "went on to rehearse the rest of the ladder."
        )


def _breaker_notes(ctx: Context, result: RehearsalResult) -> None:
    """How often the breaker opened, and how often outside the injected outage (a slow
    target: batches over RETRIEVAL_DUAL_WRITE_TIMEOUT_MS count against it)."""
    opens = [e.t for e in ctx.timeline.events("breaker_state") if e.args[0] == "open"]
    lo, hi = ctx.windows.get("outage", (0.0, -1.0))
    outside = [t for t in opens if not lo <= t <= hi]
    result.writes["breaker_opens"] = len(opens)
    result.writes["breaker_opens_outside_outage"] = len(outside)
    if outside:
        result.notes.append(
            f"The breaker also opened {len(outside)} time(s) outside the injected outage: the "
            f"target's background batches took longer than RETRIEVAL_DUAL_WRITE_TIMEOUT_MS "
            f"({ctx.settings.dual_write_timeout_ms} ms) under load. No write failed; those "
            "changes went to the outbox and were replayed."
        )


def _close(ctx: Context) -> None:
    try:
        ctx.writer.stop()
    finally:
        ctx.runtime.close()
        ctx.source.close()


def _status(ctx: Context) -> str:
    stats = ctx.writer.stats()
    try:
        outbox = f"{ctx.runtime.outbox.stats().size:,}"
    except ShadowswapError:
        outbox = "?"
    return (
        f"live writes {stats.calls:,} acknowledged ({stats.failed_calls} failed) · "
        f"outbox {outbox} · breaker {ctx.runtime.breaker.state.value} · "
        f"phase {_phase(ctx)}"
    )


def _phase(ctx: Context) -> str:
    return classify(ctx.source.current()).label


# -- the report's series --------------------------------------------------------------------------
def _inputs(ctx: Context, result: RehearsalResult) -> ReportInputs:
    compared = [o for o in ctx.observations if o.outcome == "compared"]
    window = ctx.windows.get("outage")
    outbox: list[tuple[float, float]] = []
    breaker: list[tuple[float, str]] = []
    if window is not None:
        lo, hi = window
        before_window = [e for e in ctx.timeline.events("breaker_state") if e.t < lo]
        if before_window:
            breaker.append((lo, str(before_window[-1].args[0])))
        breaker += [(e.t, str(e.args[0])) for e in ctx.timeline.events("breaker_state", lo, hi)]
        sizes = ctx.timeline.events("outbox_size", 0.0, hi)
        earlier = [e for e in sizes if e.t < lo]
        if earlier:
            outbox.append((lo, float(earlier[-1].args[0])))
        outbox += [(e.t, float(e.args[0])) for e in sizes if e.t >= lo]
    bars = []
    for name in _CHECKED_READS:
        batch = ctx.reads.get(name)
        if batch is None:
            continue
        share = batch.identical / batch.compared if batch.compared else None
        bars.append(CutoverBar(name, dict(batch.served_by), batch.fallbacks, share))
    return ReportInputs(
        result=result,
        agreement=[o.agreement_at_5 for o in compared if o.agreement_at_5 is not None],
        ndcg=[o.ndcg_at_10 for o in compared if o.ndcg_at_10 is not None],
        primary_latency_ms=[o.primary_latency_s * 1000 for o in compared],
        shadow_latency_ms=[
            o.shadow_latency_s * 1000 for o in compared if o.shadow_latency_s is not None
        ],
        outbox=outbox,
        breaker=breaker,
        marks=ctx.timeline.marks(),
        outage_window=window,
        cutover=bars,
        env_text=_read(ctx.ws.env_file),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


__all__ = ["LADDER", "STEP_NAMES", "prepare_workspace", "run_rehearsal", "summary_lines"]

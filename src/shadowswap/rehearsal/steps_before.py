"""The ladder up to the gate: load, dual write, backfill, outage and replay, shadow read,
reconcile, gate.

Order, and why dual write comes before the backfill: a backfill copies what the primary
holds when it reads it; writes made after that and before dual write is on would reach the
primary only. Turning dual write on first, then backfilling while the live writes go on, is
the order ``docs/sync.md`` prescribes (the backfill verifies every page against concurrent
writes), and the one a rehearsal must teach.

Each step returns an `Outcome` (one line and its numbers) or raises `StepFailed`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from shadowswap.dualwrite.breaker import State
from shadowswap.gate import (
    Verdict,
    combine,
    default_criteria,
    evaluate,
    evidence_from_observations,
    evidence_from_state,
)
from shadowswap.rehearsal.context import Context, Outcome, StepFailed
from shadowswap.rehearsal.traffic import ReadBatch, send_reads, wait_for_shadows
from shadowswap.shadow.observations import read_observations
from shadowswap.sync.backfill import Backfill
from shadowswap.sync.checkpoint import FileCheckpoints
from shadowswap.sync.progress import Progress

_LOAD_BATCH = 1000
_BREAKER_WAIT_S = 15.0


class DisplayProgress:
    """A sync `Progress` (tenant by tenant) shown as one bar over ``total`` documents."""

    def __init__(self, ctx: Context, total: int | None, unit: str = "documents") -> None:
        self._ctx, self._total, self._unit = ctx, total, unit
        self.done = 0

    def begin(self, label: str, total: int | None, done: int = 0) -> None:
        self._ctx.display.note(f"tenant {label}")

    def advance(self, n: int) -> None:
        self.done += n
        self._ctx.display.progress(self.done, self._total, self._unit)

    def end(self) -> None:
        pass


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


# -- 1 -----------------------------------------------------------------------------------------
def load_primary(ctx: Context) -> Outcome:
    """Fill the legacy primary with the data (or, with the user's stores, count theirs)."""
    started = ctx.clock.monotonic()
    if ctx.options.own_stores:
        counts = {t: ctx.primary.count(t) for t in ctx.dataset.tenants}
        total = sum(counts.values())
        return Outcome(
            f"{total:,} documents already in {ctx.primary.kind} over {len(counts)} tenants "
            "(your data; nothing loaded)",
            {"documents": total, "tenants": counts},
        )
    total = ctx.dataset.document_count
    done = 0
    for tenant, docs in ctx.dataset.documents.items():
        for i in range(0, len(docs), _LOAD_BATCH):
            ctx.primary.upsert(tenant, docs[i : i + _LOAD_BATCH])
            done += len(docs[i : i + _LOAD_BATCH])
            ctx.display.progress(done, total, "documents")
    seconds = ctx.clock.monotonic() - started
    counts = {t: ctx.primary.count(t) for t in ctx.dataset.tenants}
    if sum(counts.values()) != total:
        raise StepFailed(f"the primary holds {sum(counts.values())} documents, not {total}")
    return Outcome(
        f"{total:,} {ctx.dataset.name} vectors into {ctx.primary.kind}, "
        f"{len(counts)} tenants ({_rate(total, seconds):,.0f} docs/s)",
        {"documents": total, "tenants": counts, "docs_per_s": _rate(total, seconds)},
    )


# -- 2 -----------------------------------------------------------------------------------------
def dual_write_on(ctx: Context) -> Outcome:
    """``phase advance`` to dual_write, then start the live writes."""
    report, reload_s = ctx.move("advance", "rehearsal: dual write on")
    ctx.writer.start()
    deadline = ctx.clock.monotonic() + 10.0
    while ctx.writer.stats().calls < 20 and ctx.clock.monotonic() < deadline:
        ctx.clock.sleep(0.05)
    stats = ctx.writer.stats()
    deferred = stats.outcomes.get("deferred", 0) + stats.outcomes.get("queued", 0)
    if deferred == 0:
        raise StepFailed(
            f"{stats.calls} live writes acknowledged but none was carried to {ctx.target.kind}",
            {"outcomes": stats.outcomes},
        )
    return Outcome(
        f"phase {report.source.label} -> {report.goal.label} (env file edited, in force after "
        f"{reload_s:.2f}s); live writes started at {ctx.options.write_rate:.0f}/s",
        {
            "changes": report.transition.changes,
            "reload_s": reload_s,
            "first_writes": stats.calls,
            "outcomes": stats.outcomes,
        },
    )


# -- 3 -----------------------------------------------------------------------------------------
def backfill_target(ctx: Context) -> Outcome:
    """Copy every tenant into the target while the live writes go on."""
    before = ctx.writer.stats().calls
    total = sum(ctx.primary.count(t) for t in ctx.dataset.tenants)
    progress: Progress = DisplayProgress(ctx, total)
    report = Backfill(
        ctx.primary,
        ctx.target,
        batch_size=1000,
        checkpoints=FileCheckpoints(
            ctx.ws.state_dir,
            (ctx.primary.kind, ctx.primary.location),
            (ctx.target.kind, ctx.target.location),
        ),
        clock=ctx.clock,
        progress=progress,
    ).run()
    writes = ctx.writer.stats().calls - before
    numbers = {**_backfill_numbers(report.as_dict()), "live_writes_meanwhile": writes}
    if not report.ok:
        raise StepFailed(f"backfill incomplete: {report.failed_in_pass} documents failed", numbers)
    return Outcome(
        f"{report.copied:,} documents copied to {ctx.target.kind} in {report.duration_s:.1f}s "
        f"({report.rate:,.0f} docs/s) beside {writes:,} live writes",
        numbers,
    )


def _backfill_numbers(doc: dict[str, Any]) -> dict[str, Any]:
    keep = ("copied", "skipped", "deleted", "failed", "processed", "duration_s")
    return {k: doc[k] for k in keep} | {"docs_per_s": doc["rate_docs_per_s"]}


# -- 4 -----------------------------------------------------------------------------------------
def target_outage(ctx: Context) -> Outcome:
    """Take the target down during the live writes: the breaker must open, the outbox fill,
    no write fail; bring it back: the breaker must close."""
    failed_before = ctx.writer.stats().failed_calls
    calls_before = ctx.writer.stats().calls
    down = ctx.timeline.mark("target down")
    ctx.faulty.go_down()
    opened = _wait_state(ctx, State.OPEN, _BREAKER_WAIT_S)
    if opened is None:
        ctx.faulty.come_up()
        raise StepFailed(f"the breaker did not open within {_BREAKER_WAIT_S:.0f} s")
    ctx.display.note("breaker open; target down")
    stay = ctx.clock.monotonic() + ctx.options.outage_s
    while ctx.clock.monotonic() < stay:
        ctx.display.note(f"target down; outbox {ctx.runtime.outbox.stats().size:,} items")
        ctx.clock.sleep(0.1)
    peak = ctx.runtime.outbox.stats().size
    up = ctx.timeline.mark("target up")
    ctx.faulty.come_up()
    wait = ctx.settings.cb_window_s + 30.0  # a slow trial batch re-opens it for a window
    closed = _wait_state(ctx, State.CLOSED, wait)
    end = ctx.timeline.elapsed()
    ctx.windows["outage"] = (down - 1.0, end + 1.0)
    skipped = ctx.timeline.count("dual_write_skipped", down, end)
    errors = ctx.timeline.count("dual_write_error", down, end)
    states = [(round(e.t - down, 3), e.args[0]) for e in ctx.timeline.events("breaker_state", down)]
    stats = ctx.writer.stats()
    numbers = {
        "breaker_open_after_s": round(opened, 3),
        "down_s": round(up - down, 3),
        "outbox_peak": peak,
        "writes_during_outage": stats.calls - calls_before,
        "writes_failed": stats.failed_calls - failed_before,
        "skipped_circuit_open": skipped,
        "dual_write_errors": errors,
        "breaker_states": states,
        "closed_after_up_s": None if closed is None else round(closed, 3),
    }
    if closed is None:
        raise StepFailed(f"the breaker did not close within {wait:.0f} s of recovery", numbers)
    if stats.failed_calls != failed_before:
        raise StepFailed("live writes failed during the target outage", numbers)
    if peak == 0:
        raise StepFailed("the outbox stayed empty while the target was down", numbers)
    return Outcome(
        f"breaker open after {opened:.2f}s, {peak:,} items in the outbox after "
        f"{up - down:.1f}s down, {stats.calls - calls_before:,} writes, none failed; "
        f"closed {closed:.1f}s after recovery",
        numbers,
    )


def _wait_state(ctx: Context, state: State, timeout_s: float) -> float | None:
    started = ctx.clock.monotonic()
    while ctx.runtime.breaker.state is not state:
        if ctx.clock.monotonic() - started > timeout_s:
            return None
        ctx.clock.sleep(0.01)
    return ctx.clock.monotonic() - started


# -- 5 -----------------------------------------------------------------------------------------
def replay_outbox(ctx: Context) -> Outcome:
    """``replay-outbox`` (in process): what the breaker held back reaches the target."""
    start = ctx.timeline.elapsed()
    stored = ctx.runtime.outbox.stats().size
    report = ctx.replay()
    left = ctx.runtime.outbox.stats().size
    lo, _ = ctx.windows.get("outage", (start, start))
    ctx.windows["outage"] = (lo, ctx.timeline.elapsed() + 1.0)
    ctx.timeline.mark("replayed")
    numbers = {**report.as_dict(), "outbox_before": stored, "outbox_after": left}
    if report.failed:
        raise StepFailed(f"{report.failed} outbox items failed to replay", numbers)
    return Outcome(
        f"{stored:,} items: {report.replayed:,} replayed, {report.skipped_superseded:,} "
        f"already applied or superseded, 0 failed; outbox {left} after",
        numbers,
    )


# -- 6 -----------------------------------------------------------------------------------------
def shadow_read(ctx: Context) -> Outcome:
    """``phase advance`` to shadow_read, then the queries as live reads: the primary serves,
    a sample is shadowed on the target and compared (observation log in the work dir)."""
    report, reload_s = ctx.move("advance", "rehearsal: shadow read")
    start = ctx.timeline.elapsed()
    ctx.gate_window = (_state_record(ctx), None)
    queries = ctx.dataset.queries
    batch = send_reads(
        ctx.runtime.router,
        queries,
        clock=ctx.clock,
        expect=ctx.expected_kind,
        progress=lambda done, total: ctx.display.progress(done, total, "reads"),
    )
    settled = wait_for_shadows(ctx.runtime.router, ctx.clock)
    ctx.reads["shadow read"] = batch
    ctx.windows["shadow"] = (start, ctx.timeline.elapsed())
    ctx.observations = list(read_observations(ctx.ws.observations_dir))
    outcomes = Counter(o.outcome for o in ctx.observations)
    compared = [o for o in ctx.observations if o.outcome == "compared"]
    agreement = [o.agreement_at_5 for o in compared if o.agreement_at_5 is not None]
    ndcg = [o.ndcg_at_10 for o in compared if o.ndcg_at_10 is not None]
    shadow_ms = [o.shadow_latency_s * 1000 for o in compared if o.shadow_latency_s is not None]
    dropped = ctx.timeline.count("shadow_dropped", start)
    numbers = {
        "reload_s": reload_s,
        "sample_rate": ctx.settings.shadow_sample_rate_text,
        **batch.as_dict(),
        "observations": dict(outcomes),
        "dropped": dropped,
        "agreement_at_5_mean": _mean(agreement),
        "ndcg_at_10_mean": _mean(ndcg),
        "mismatches": sum(1 for o in compared if o.mismatch),
        "shadow_latency_ms_p95": _pct(shadow_ms, 95),
        "primary_latency_ms_p95": _pct([s * 1000 for s in _primary_latencies(batch)], 95),
        "changes": report.transition.changes,
    }
    if batch.errors or batch.unexpected:
        raise StepFailed(
            f"{batch.errors} reads failed, {batch.unexpected} served by another backend", numbers
        )
    if not compared:
        raise StepFailed("no shadow read was compared", numbers)
    if not settled:
        raise StepFailed("shadow reads were still running 30 s after the last read", numbers)
    return Outcome(
        f"{batch.reads:,} reads served by {ctx.primary.kind}; {len(compared):,} shadowed on "
        f"{ctx.target.kind}: agreement@5 {_mean(agreement):.4f}, nDCG@10 {_mean(ndcg):.4f}",
        numbers,
    )


def _primary_latencies(batch: ReadBatch) -> list[float]:
    return [v for values in batch.latencies.values() for v in values]


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 4) if values else float("nan")


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


# -- 7 -----------------------------------------------------------------------------------------
def reconcile_step(ctx: Context) -> Outcome:
    """Pause the writes, let everything in flight land, compare every document of every
    tenant by content hash: the drift must be 0 (no repair: this proves nothing was lost)."""
    drained = ctx.drain()
    ctx.drained = drained
    ctx.gate_window = (ctx.gate_window[0], _state_record(ctx))
    total = sum(ctx.primary.count(t) for t in ctx.dataset.tenants)
    try:
        report = ctx.reconcile("reconcile", progress=DisplayProgress(ctx, total))
    finally:
        ctx.writer.resume()
    numbers = {
        "drift": report.drift,
        "found": report.found.as_dict(),
        "documents": total,
        "duration_s": round(report.duration_s, 3),
        **drained,
    }
    if report.drift:
        raise StepFailed(f"drift {report.drift} ({report.found.as_dict()})", numbers)
    return Outcome(
        f"drift 0 over {total:,} documents in {report.duration_s:.1f}s "
        f"(writes paused {drained['drain_s']:.1f}s to drain the outbox first)",
        numbers,
    )


# -- 8 -----------------------------------------------------------------------------------------
def _state_record(ctx: Context) -> float:
    """Write a state record now (the gate's window starts or ends here); its time."""
    recorder = ctx.runtime.recorder
    if recorder is not None:
        recorder.flush()
    return ctx.runtime.clock.now() + 1e-3  # just after the record


def gate_step(ctx: Context) -> Outcome:
    """The promotion gate (`shadowswap.gate`, default criteria) as ``shadowswap gate``
    decides it with no source flag: from the observation log alone (the comparisons and the
    state records of the window from the shadow read to the drained reconcile) and
    ``reconcile_last.json`` in the state dir. No Prometheus. The rehearsal goes on whatever
    it says, to rehearse the rest of the ladder; a real migration would stop on HOLD or
    ROLLBACK."""
    since, until = ctx.gate_window
    evidence = combine(
        evidence_from_observations(ctx.ws.observations_dir, since=since, until=until),
        evidence_from_state(ctx.ws.state_dir, clock=ctx.clock, settings=ctx.settings),
    )
    criteria = default_criteria()
    result = evaluate(evidence, criteria)
    ctx.gate = result.as_dict()
    ctx.verdict = result.verdict.value
    passed = sum(1 for c in result.criteria if c.passed)
    numbers = {
        "verdict": ctx.verdict,
        "criteria_passed": passed,
        "criteria": len(result.criteria),
        "reasons": list(result.reasons),
    }
    if result.verdict is Verdict.PROMOTE:
        return Outcome(f"PROMOTE: {passed}/{len(result.criteria)} criteria passed", numbers)
    failed = [c.name for c in result.criteria if c.passed is False]
    short = [c for c in result.criteria if c.passed is None and c.verdict is not Verdict.PROMOTE]
    parts = [f"failed: {', '.join(failed)}"] if failed else []
    if short:
        needs = [
            f"{c.name} about {c.needed:,} more {c.unit}" for c in short if c.needed is not None
        ]
        few = f" ({'; '.join(needs)})" if needs else ""
        parts.append(
            f"not enough evidence for {', '.join(c.name for c in short)}{few}: rehearse with "
            "more --queries or a longer --queries-file"
        )
    return Outcome(
        f"{ctx.verdict} ({'; '.join(parts)}); a real migration would stop here, the "
        "rehearsal goes on",
        numbers,
    )

"""Where the gate's evidence comes from: the shadow observation log, metric series (an
in-process registry here, Prometheus in `shadowswap.gate.prometheus`), and the state directory.

Every source fills what it knows and leaves the rest ``None`` (unknown):

    observation log   per-comparison samples (exact), compared / mismatches / foreign and
                      stale hits (judged by lookup) / shadow errors / timeouts; and from its
                      state records (`shadowswap.shadow.statelog`) serving reads and their
                      errors, full-queue drops, dual-write errors and skips, the breaker and
                      the outbox. Alone, it decides every default criterion but the
                      reconcile's (the state directory's).
    metric series     histograms (count, sum, buckets) of the measures, every counter and
                      gauge (a Prometheus server, or a gateway's own ``/metrics``).
    state directory   the last reconcile's drift and age (``reconcile_last.json``); the
                      drift only while that reconcile still speaks for the stores
                      (`shadowswap.sync.freshness`), else unknown with a note.

`combine` merges sources field by field, the first that knows a field winning, so
``combine(observations, prometheus, state)`` takes exact samples from the log and the rest
from Prometheus. Give the sources the same window.

Unexplained hits, for records from before the lookups (`shadowswap.shadow.judge` now
looks every extra hit up: foreign, stale, late, ranking). A shadow hit that the primary did
not return although it scores above the primary's last hit (or the primary returned fewer
than ``k``) is one the primary cannot explain: over an exact primary, a faithful target,
however approximate, only ever returns a *subset* of better hits and worse ones, never a
better one the primary lacks. Such a hit means the target holds content the primary does
not: another tenant's document, or a stale version of a document. (Over an approximate
primary a faithful target does return them; a baseline calibrates that.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from shadowswap.clock import Clock, SystemClock
from shadowswap.errors import InvalidInput
from shadowswap.gate.model import Evidence, Histogram
from shadowswap.settings.config import Settings
from shadowswap.shadow.observations import (
    STATE_COUNTERS,
    Observation,
    ReadReport,
    StateRecord,
    parse_iso_utc,
    read_records,
)
from shadowswap.sync.freshness import freshness_of
from shadowswap.sync.reconcile import load_last

#: Relative score tolerance under which two engines' scores of one document count as equal.
SCORE_TOLERANCE = 1e-4


def unexplained_hits(obs: Observation, tolerance: float = SCORE_TOLERANCE) -> int:
    """Shadow hits the primary cannot explain (see the module docstring)."""
    if obs.outcome != "compared" or not obs.shadow_ids:
        return 0
    primary = set(obs.primary_ids)
    full = len(obs.primary_ids) >= obs.k and bool(obs.primary_scores)
    floor = min(obs.primary_scores) if obs.primary_scores else -math.inf
    count = 0
    for doc_id, score in zip(obs.shadow_ids, obs.shadow_scores, strict=False):
        if doc_id in primary:
            continue
        if not full or score > floor + tolerance * max(1.0, abs(floor)):
            count += 1
    return count


def evidence_from_records(
    records: Iterable[Observation],
    *,
    tenants: Sequence[str] | None = None,
    source: str = "observations",
) -> Evidence:
    """Evidence from observation records (pure; `evidence_from_observations` reads a log)."""
    wanted = set(tenants) if tenants else None
    agreement: list[float] = []
    ndcg: list[float] = []
    score_delta: list[float] = []
    latency_delta: list[float] = []
    shadow_latency: list[float] = []
    mismatches = foreign = stale = errors = timeouts = looked_up = 0
    first = last = None
    for obs in records:
        if wanted is not None and obs.tenant not in wanted:
            continue
        first = obs.ts if first is None else min(first, obs.ts)
        last = obs.ts if last is None else max(last, obs.ts)
        if obs.outcome == "error":
            errors += 1
            continue
        if obs.outcome == "timeout":
            timeouts += 1
            continue
        if obs.agreement_at_5 is None or obs.ndcg_at_10 is None:
            continue  # a compared record always has them; skip a malformed one
        agreement.append(obs.agreement_at_5)
        ndcg.append(obs.ndcg_at_10)
        if obs.score_delta is not None:
            score_delta.append(obs.score_delta)
        if obs.latency_delta_s is not None:
            latency_delta.append(obs.latency_delta_s)
        if obs.shadow_latency_s is not None:
            shadow_latency.append(obs.shadow_latency_s)
        mismatches += obs.agreement_at_5 < 1.0
        if obs.looked_up:
            looked_up += 1
            foreign += bool(obs.foreign)
            stale += bool(obs.stale)
        else:  # a record from before the lookups: the score heuristic
            foreign += unexplained_hits(obs) > 0
    return Evidence(
        agreement_at_5=tuple(agreement),
        ndcg_at_10=tuple(ndcg),
        score_delta=tuple(score_delta),
        latency_delta_s=tuple(latency_delta),
        shadow_latency_s=tuple(shadow_latency),
        compared=len(agreement),
        mismatches=mismatches,
        foreign_hits=foreign,
        # stale versions are told apart only by the lookups
        stale_hits=stale if looked_up or not agreement else None,
        shadow_errors=errors,
        drops={"timeout": timeouts},
        window_s=(last - first) if first is not None and last is not None else None,
        sources=(source,),
    )


def evidence_from_states(
    states: Iterable[StateRecord], *, since: float | None = None, until: float | None = None
) -> Evidence:
    """The serving and write side from state records (`shadowswap.shadow.statelog`) of the
    window ``since <= ts < until``: per process, its last totals in the window minus its last
    totals before it (0 when it started inside the window; its first totals in the window when
    it started before and no earlier record was read, which may miss up to one interval).
    Breaker: open when a process's last record in the window says so; outbox: the last record.
    Unknown (None) when no record falls in the window."""
    by_process: dict[str, list[StateRecord]] = {}
    for record in sorted(states, key=lambda r: r.ts):
        by_process.setdefault(record.process, []).append(record)
    totals = dict.fromkeys(STATE_COUNTERS, 0)
    lasts: list[StateRecord] = []
    bases: list[StateRecord | None] = []
    for records in by_process.values():
        inside = [r for r in records if (since is None or r.ts >= since)
                  and (until is None or r.ts < until)]  # fmt: skip
        if not inside:
            continue
        before = [r for r in records if since is not None and r.ts < since]
        if before:
            base: StateRecord | None = before[-1]
        elif since is None or inside[0].started >= since:
            base = None  # started inside the window: from zero
        else:
            base = inside[0]
        last = inside[-1]
        for name in STATE_COUNTERS:
            start = getattr(base, name) if base is not None else 0
            totals[name] += max(0, getattr(last, name) - start)
        lasts.append(last)
        bases.append(base)
    if not lasts:
        return Evidence(sources=("state records",), notes=("no state record in the window",))
    latest = max(lasts, key=lambda r: r.ts)
    dropped: int | None = None
    if latest.outbox_dropped is not None:
        known = [b.outbox_dropped for b in bases if b is not None and b.outbox_dropped is not None]
        started_inside = all(b is None for b in bases)
        earliest = min(lasts, key=lambda r: r.ts)
        start = max(known) if known else (0 if started_inside else earliest.outbox_dropped or 0)
        dropped = max(0, latest.outbox_dropped - start)
    return Evidence(
        reads=totals["reads"],
        read_errors=totals["read_errors"],
        dual_write_errors=totals["dual_write_errors"],
        dual_write_skipped=totals["dual_write_skipped"],
        breaker_open=any(r.breaker == "open" for r in lasts),
        outbox_size=latest.outbox_size,
        outbox_oldest_age_s=latest.outbox_oldest_age_s,
        outbox_dropped=dropped,
        drops={"queue_full": totals["shadow_queue_full"]},
        sources=("state records",),
        notes=(f"state records of {len(lasts)} process(es)",),
    )


#: how far before a window the log is read for each process's totals at its start
_LOOK_BEHIND_S = 60.0


def evidence_from_observations(
    directory: str | Path,
    *,
    since: float | None = None,
    until: float | None = None,
    tenants: Sequence[str] | None = None,
) -> Evidence:
    """Evidence from the observation log in ``directory`` (``RETRIEVAL_OBSERVATIONS_DIR``),
    records with ``since <= ts < until`` (epoch seconds), of ``tenants`` (all when None):
    the comparisons of the shadow reads, and from the state records the serving reads, dual
    writes, breaker, outbox and full-queue drops (those are the process's, whatever
    ``tenants`` says).

    Raises `InvalidInput` when the directory does not exist; an empty log gives evidence with
    no samples (insufficient evidence, never a pass).
    """
    root = Path(directory)
    if not root.is_dir():
        raise InvalidInput(str(directory), "the observation directory does not exist")
    report = ReadReport()
    observations: list[Observation] = []
    states: list[StateRecord] = []
    behind = since - _LOOK_BEHIND_S if since is not None else None
    for record in read_records(root, since=behind, until=until, report=report):
        if isinstance(record, StateRecord):
            states.append(record)
        elif since is None or record.ts >= since:
            observations.append(record)
    where = f"observations:{root}"
    compared = evidence_from_records(observations, tenants=tenants, source=where)
    state = evidence_from_states(states, since=since, until=until)
    notes = [f"{report.files} observation files read"]
    if report.bad_lines:
        notes.append(f"{report.bad_lines} lines skipped (not valid records)")
    if state.reads is None:
        notes.append(
            "no state records in the log (a gateway older than this version, or none running):"
            " serving reads, dual writes, breaker and outbox are unknown"
        )
    elif tenants:
        notes.append("state records count every tenant's reads and writes")
    drops = None
    if state.drops is not None:  # timeouts from the comparisons' log, full queues from state
        drops = {**(compared.drops or {}), "queue_full": state.drops["queue_full"]}
    merged = combine(replace(compared, drops=drops or compared.drops), state)
    return replace(merged, sources=(where,), notes=(*notes, *state.notes))


# -- metric series ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One metric sample: name (with ``_count``, ``_sum``, ``_bucket``, ``_total``), labels,
    value. For Prometheus, counters are their increase over the window, gauges their value."""

    name: str
    labels: Mapping[str, str]
    value: float


_HISTOGRAMS = {
    "agreement_at_5": "retrieval_shadow_agreement_at_5",
    "ndcg_at_10": "retrieval_shadow_ndcg_at_10",
    "score_delta": "retrieval_dual_read_score_delta",
    "latency_delta_s": "retrieval_dual_read_latency_delta_seconds",
    "shadow_latency_s": "retrieval_shadow_latency_seconds",
}


def evidence_from_series(
    series: Iterable[Series],
    *,
    env: str | None = None,
    backend: str | None = None,
    source: str = "metrics",
    window_s: float | None = None,
) -> Evidence:
    """Evidence from metric samples, keeping those whose ``env`` (and, where the metric has
    one, ``backend``) match when given. Counters created lazily by the sink (shadow errors,
    mismatches, reads) count 0 when absent while ``retrieval_build_info`` is present."""
    by_name: dict[str, list[Series]] = {}
    for s in series:
        if env is not None and s.labels.get("env") != env:
            continue
        if backend is not None and "backend" in s.labels and s.labels["backend"] != backend:
            continue
        by_name.setdefault(s.name, []).append(s)
    alive = "retrieval_build_info" in by_name

    def total(name: str, lazy: bool = False, **match: str) -> int | None:
        rows = [
            s for s in by_name.get(name, []) if all(s.labels.get(k) == v for k, v in match.items())
        ]
        if not rows:
            return 0 if lazy and alive else None
        return round(sum(s.value for s in rows))

    def hit_class(name: str) -> int | None:
        rows = [s for s in by_name.get("retrieval_shadow_hit_class_total", [])
                if s.labels.get("class") == name]  # fmt: skip
        return round(sum(s.value for s in rows)) if rows else None

    def gauge(name: str, **match: str) -> float | None:
        rows = [
            s for s in by_name.get(name, []) if all(s.labels.get(k) == v for k, v in match.items())
        ]
        return sum(s.value for s in rows) if rows else None

    def histogram(base: str) -> Histogram | None:
        counts = by_name.get(f"{base}_count")
        if not counts:
            return None
        buckets: dict[float, float] = {}
        for s in by_name.get(f"{base}_bucket", []):
            edge = float(s.labels.get("le", "inf"))
            buckets[edge] = buckets.get(edge, 0.0) + s.value
        return Histogram(
            count=round(sum(s.value for s in counts)),
            total=sum(s.value for s in by_name.get(f"{base}_sum", [])),
            buckets=tuple((edge, round(n)) for edge, n in sorted(buckets.items())),
        )

    hists = {field: histogram(base) for field, base in _HISTOGRAMS.items()}
    agreement = hists["agreement_at_5"]
    # a live gateway whose every shadow read failed has no agreement histogram: 0 compared
    compared = agreement.count if agreement is not None else (0 if alive else None)
    drops: dict[str, int] = {}
    for reason in ("timeout", "queue_full"):
        n = total("retrieval_shadow_dropped_total", reason=reason)
        if n is not None:
            drops[reason] = n
    reads = total("retrieval_total", lazy=True, role="primary")
    read_errors = None
    if reads is not None:
        errs = total("retrieval_total", lazy=True, role="primary", outcome="error") or 0
        tos = total("retrieval_total", lazy=True, role="primary", outcome="timeout") or 0
        read_errors = errs + tos
    breaker = gauge("retrieval_dual_write_breaker_state", state="open")
    drift = gauge("retrieval_reconcile_drift")
    return Evidence(
        agreement_at_5=agreement,
        ndcg_at_10=hists["ndcg_at_10"],
        score_delta=hists["score_delta"],
        latency_delta_s=hists["latency_delta_s"],
        shadow_latency_s=hists["shadow_latency_s"],
        compared=compared,
        mismatches=total("retrieval_dual_read_mismatch_total", lazy=True),
        foreign_hits=hit_class("foreign"),
        stale_hits=hit_class("stale"),
        shadow_errors=total("retrieval_shadow_errors_total", lazy=True),
        drops=drops or None,
        reads=reads,
        read_errors=read_errors,
        dual_write_errors=total("retrieval_dual_write_errors_total"),
        dual_write_skipped=total("retrieval_dual_write_skipped_total", reason="circuit_open"),
        breaker_open=None if breaker is None else breaker >= 1,
        outbox_size=None if (g := gauge("retrieval_dual_write_outbox_size")) is None else round(g),
        outbox_oldest_age_s=gauge("retrieval_dual_write_outbox_oldest_age_seconds"),
        outbox_dropped=total("retrieval_dual_write_outbox_dropped_total"),
        reconcile_drift=None if drift is None else round(drift),
        window_s=window_s,
        sources=(source,),
    )


def registry_series(registry: CollectorRegistry) -> list[Series]:
    """Every sample of an in-process registry (values since the process started)."""
    out: list[Series] = []
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            out.append(Series(sample.name, dict(sample.labels), float(sample.value)))
    return out


def evidence_from_registry(
    registry: CollectorRegistry, *, env: str | None = None, backend: str | None = None
) -> Evidence:
    """Evidence from a `shadowswap.metrics.Metrics`' registry, in process (the
    rehearsal, tests): the same series Prometheus would scrape, since the process started."""
    return evidence_from_series(
        registry_series(registry), env=env, backend=backend, source="registry"
    )


# -- state directory --------------------------------------------------------------------------
def evidence_from_state(
    state_dir: str | Path, *, clock: Clock | None = None, settings: Settings | None = None
) -> Evidence:
    """The last reconcile's drift and age from ``<state_dir>/reconcile_last.json``; the drift
    is unknown (with a note) when there is none, it does not cover every tenant, or it is
    stale for another reason than its age (`shadowswap.sync.freshness`: compared with the
    write plan of ``settings`` when given; the age is the ``reconcile_fresh`` criterion's
    business). Raises `StateError` when the file cannot be read."""
    now = (clock or SystemClock()).now()
    document = load_last(state_dir)
    where = f"state:{state_dir}"
    if document is None:
        return Evidence(sources=(where,), notes=(f"no reconcile result in {state_dir}",))
    drift = document.get("drift")
    if isinstance(drift, bool) or not isinstance(drift, int) or drift < 0:
        return Evidence(sources=(where,), notes=("reconcile_last.json has no whole `drift`",))
    notes: list[str] = []
    if document.get("complete") is False:
        notes.append("the last reconcile did not complete")
        drift_known: int | None = None
    else:
        drift_known = drift
    age = None
    finished = document.get("finished_at")
    if isinstance(finished, str):
        try:
            age = max(0.0, now - parse_iso_utc(finished))
        except ValueError:
            notes.append(f"reconcile_last.json: finished_at {finished!r} is not a time")
    fresh = freshness_of(document, state_dir, settings, now, math.inf)
    if drift_known is not None and not fresh.fresh:
        notes.extend(f"reconcile drift unknown: {reason}" for reason in fresh.reasons)
        drift_known = None
    return Evidence(
        reconcile_drift=drift_known, reconcile_age_s=age, sources=(where,), notes=tuple(notes)
    )


# -- merging ----------------------------------------------------------------------------------
_META = {"sources", "notes", "window_s"}


def combine(*parts: Evidence) -> Evidence:
    """Field by field, the first source that knows a field wins; sources and notes add up.
    ``drops`` is taken whole from the first source that knows both reasons (else the first
    that knows any), so one ratio never mixes two sources' drops."""
    values: dict[str, Any] = {}
    for f in fields(Evidence):
        if f.name in _META:
            continue
        if f.name == "drops":
            complete = [p.drops for p in parts if p.dropped is not None]
            known = [p.drops for p in parts if p.drops is not None]
            values["drops"] = complete[0] if complete else (known[0] if known else None)
            continue
        values[f.name] = next(
            (getattr(p, f.name) for p in parts if getattr(p, f.name) is not None), None
        )
    return Evidence(
        **values,
        window_s=next((p.window_s for p in parts if p.window_s is not None), None),
        sources=tuple(s for p in parts for s in p.sources),
        notes=tuple(n for p in parts for n in p.notes),
    )

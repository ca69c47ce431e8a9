"""The HTML report: one self-contained file (inline CSS and SVG, no script, no network) that a
person opens after the run, with the verdict first, then the plots, then the tables.

Sections (their ids are what the browser test checks): ``summary``, ``ladder`` (a timeline of
the steps and their table), ``quality`` (agreement@5 and nDCG@10 distributions), ``latency``
(primary and shadow latency distributions), ``outage`` (outbox size and breaker state over the
outage), ``cutover`` (which backend served the reads at each step), ``gate`` (the criteria),
``writes`` (acknowledged writes and their check), ``files``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from shadowswap.gate import show
from shadowswap.rehearsal.report import svg
from shadowswap.rehearsal.result import RehearsalResult

_NDCG_BINS = (*(i / 20 for i in range(20)), 1.0001)

_CSS = """
:root { color-scheme: light; --ok: #16a34a; --bad: #dc2626; --hold: #ca8a04; --muted: #6b7280; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #111827; background: #f9fafb; }
main { max-width: 1360px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 0 0 12px; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 16px 20px;
          margin: 16px 0; }
nav a { margin-right: 14px; color: #2563eb; text-decoration: none; }
.muted { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 16px; min-width: 140px;
        background: #fff; }
.card .value { font-size: 26px; font-weight: 650; }
.card .name { color: var(--muted); font-size: 13px; }
.PROMOTE, .good { color: var(--ok); } .ROLLBACK, .bad { color: var(--bad); }
.HOLD, .NONE { color: var(--hold); }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
svg.chart { background: #fff; max-width: 100%; height: auto; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: #111827; }
svg .tick { font-size: 11px; fill: #374151; } svg .label { font-size: 12px; fill: #374151; }
svg .grid { stroke: #e5e7eb; stroke-width: 1; } svg .axis { stroke: #6b7280; stroke-width: 1; }
svg .series { fill: none; stroke-width: 2; } svg .mark { stroke: #111827; stroke-dasharray: 4 3; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #f0f0f0;
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.passed { color: var(--ok); font-weight: 600; } .failed { color: var(--bad); font-weight: 600; }
.notrun { color: var(--muted); }
details summary { cursor: pointer; color: #2563eb; }
pre { background: #f3f4f6; padding: 10px; border-radius: 6px; overflow-x: auto; font-size: 12.5px; }
"""


@dataclass(frozen=True)
class CutoverBar:
    """Reads of one checked step: served per backend, fallbacks, answers like the legacy's."""

    step: str
    served_by: Mapping[str, int]
    fallbacks: int
    identical_share: float | None


@dataclass(frozen=True)
class ReportInputs:
    """Everything the page shows; built by the runner from the run."""

    result: RehearsalResult
    agreement: Sequence[float] = ()
    ndcg: Sequence[float] = ()
    primary_latency_ms: Sequence[float] = ()
    shadow_latency_ms: Sequence[float] = ()
    outbox: Sequence[tuple[float, float]] = ()
    breaker: Sequence[tuple[float, str]] = ()
    marks: Sequence[tuple[float, str]] = ()
    outage_window: tuple[float, float] | None = None
    cutover: Sequence[CutoverBar] = ()
    env_text: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def render(inputs: ReportInputs) -> str:
    """The page, as one string."""
    r = inputs.result
    title = f"shadowswap rehearsal: {r.primary} → {r.target}"
    body = [
        _summary(inputs, title),
        '<nav><a href="#ladder">ladder</a><a href="#quality">answer quality</a>'
        '<a href="#latency">latency</a><a href="#outage">outage</a><a href="#cutover">cutover</a>'
        '<a href="#gate">gate</a><a href="#writes">writes</a><a href="#files">files</a></nav>',
        _ladder(r),
        _quality(inputs),
        _latency(inputs),
        _outage(inputs),
        _cutover(inputs),
        _gate(r),
        _writes(r),
        _files(inputs),
        f'<footer class="muted">shadowswap {escape(r.as_dict()["version"])}, '
        f"{escape(r.started_at)} to {escape(r.finished_at)}</footer>",
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{chr(10).join(body)}\n</main></body></html>\n"
    )


def backend_colours(primary: str, target: str) -> dict[str, str]:
    """One colour per backend kind on every chart: the legacy primary orange, the target blue."""
    return {primary: svg.PALETTE[1], target: svg.PALETTE[0]}


def _card(name: str, value: str, css: str = "") -> str:
    return (
        f'<div class="card"><div class="value {css}">{escape(value)}</div>'
        f'<div class="name">{escape(name)}</div></div>'
    )


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _summary(inputs: ReportInputs, title: str) -> str:
    r = inputs.result
    lost_css = "good" if r.lost_writes == 0 else "bad"
    drift_css = "good" if r.drift == 0 else "bad"
    outcome = (
        "every step passed, no write lost, no drift"
        if r.ok
        else f"failed at: {r.failed_step.name}"
        if r.failed_step
        else "lost writes or drift found"
    )
    data = r.data
    cards = [
        _card("gate verdict", r.verdict, r.verdict),
        _card("lost writes", "—" if r.lost_writes is None else f"{r.lost_writes:,}", lost_css),
        _card("drift (final reconcile)", "—" if r.drift is None else f"{r.drift:,}", drift_css),
        _card("agreement@5 (mean)", _num(r.agreement_at_5)),
        _card("nDCG@10 (mean)", _num(r.ndcg_at_10)),
        _card("duration", f"{r.duration_s:.0f} s"),
    ]
    return (
        f'<section id="summary"><h1>{escape(title)}</h1>'
        f'<div class="{"good" if r.ok else "bad"}"><strong>{escape(outcome)}</strong></div>'
        f'<div class="muted">{escape(str(data.get("source", "")))}: '
        f"{data.get('documents', 0):,} documents in {len(data.get('tenants', []))} tenants, "
        f"{data.get('queries', 0):,} queries, seed {escape(str(data.get('seed', '')))}</div>"
        f'<div class="cards">{"".join(cards)}</div>'
        + "".join(f'<p class="muted">{escape(n)}</p>' for n in r.notes)
        + "</section>"
    )


def _ladder(r: RehearsalResult) -> str:
    rows = [(s.name, s.started_s, s.duration_s, s.status) for s in r.steps if s.status != "not run"]
    chart = svg.gantt("Steps of the ladder over time", rows, x_label="seconds since the start")
    lines = []
    for i, s in enumerate(r.steps, start=1):
        css = s.status.replace(" ", "")
        detail = f"{s.summary}" + (f" — {s.error}" if s.error else "")
        numbers = escape(json.dumps(s.numbers, default=str, ensure_ascii=False))
        lines.append(
            f"<tr><td class=num>{i}</td><td>{escape(s.name)}</td>"
            f'<td class="{css}">{escape(s.status)}</td><td class=num>{s.duration_s:.1f} s</td>'
            f"<td>{escape(detail)}<details><summary>numbers</summary><pre>{numbers}</pre>"
            "</details></td></tr>"
        )
    return (
        '<section id="ladder"><h2>The ladder</h2>'
        f'<div class="charts">{chart}</div>'
        "<table><thead><tr><th>#</th><th>step</th><th>status</th><th>time</th><th>what it did "
        f"and found</th></tr></thead><tbody>{''.join(lines)}</tbody></table></section>"
    )


def _quality(inputs: ReportInputs) -> str:
    levels = [0, 1, 2, 3, 4, 5]
    counts = [float(sum(1 for a in inputs.agreement if round(a * 5) == n)) for n in levels]
    agreement = (
        svg.stacked_bars(
            "Agreement@5 of the shadow reads",
            [f"{n}/5" for n in levels],
            {"shadow reads": counts},
            y_label="shadow reads",
            notes=[f"{c:.0f}" for c in counts],
        )
        if inputs.agreement
        else svg.empty("Agreement@5 of the shadow reads", "no shadow read was compared")
    )
    ndcg = svg.histogram(
        "nDCG@10 of the shadow reads",
        {"nDCG@10": list(inputs.ndcg)},
        bins=_NDCG_BINS,
        x_label="nDCG@10 (the target's ranking graded against the primary's)",
        counts_on_bars=True,
    )
    n = len(inputs.agreement)
    return (
        '<section id="quality"><h2>Answer quality (shadow read)</h2>'
        f'<p class="muted">{n:,} shadow comparisons: the target answered the same queries as '
        "the primary, and its answers were graded against the primary's.</p>"
        f'<div class="charts">{agreement}{ndcg}</div></section>'
    )


def _latency(inputs: ReportInputs) -> str:
    values = [v for v in (*inputs.primary_latency_ms, *inputs.shadow_latency_ms) if v > 0]
    if not values:
        chart = svg.empty("Latency", "no shadow read was compared")
    else:
        lo = 10 ** _floor_log(min(values))
        hi = 10 ** _ceil_log(max(values))
        steps = 24
        bins = [lo * (hi / lo) ** (i / steps) for i in range(steps + 1)]
        chart = svg.histogram(
            "Latency of the same reads: primary and shadow",
            {
                f"primary ({inputs.result.primary})": list(inputs.primary_latency_ms),
                f"shadow ({inputs.result.target})": list(inputs.shadow_latency_ms),
            },
            bins=bins,
            x_label="milliseconds (log scale)",
            log_x=True,
            colours=[svg.PALETTE[1], svg.PALETTE[0]],
        )
    return f'<section id="latency"><h2>Latency</h2><div class="charts">{chart}</div></section>'


def _floor_log(value: float) -> int:
    return math.floor(math.log10(value))


def _ceil_log(value: float) -> int:
    return math.ceil(math.log10(value))


def _outage(inputs: ReportInputs) -> str:
    if inputs.outage_window is None:
        chart = svg.empty("Outbox and breaker during the target outage", "the outage did not run")
    else:
        chart = svg.step_lines(
            "Outbox size and breaker state during the target outage",
            inputs.outbox,
            states=inputs.breaker,
            marks=inputs.marks,
            window=inputs.outage_window,
            x_label="seconds since the start of the rehearsal",
            y_label="outbox items",
        )
    return (
        '<section id="outage"><h2>Target outage</h2>'
        '<p class="muted">The target was made to fail every call while the live writes went on: '
        "the breaker opens, writes go to the outbox (no write fails), the target comes back, "
        "the breaker closes, the replay empties the outbox.</p>"
        f'<div class="charts">{chart}</div></section>'
    )


def _cutover(inputs: ReportInputs) -> str:
    bars = list(inputs.cutover)
    kinds = sorted({k for b in bars for k in b.served_by})
    stacks = {k: [float(b.served_by.get(k, 0)) for b in bars] for k in kinds}
    notes = ["" if b.identical_share is None else f"{b.identical_share:.0%} same" for b in bars]
    palette = backend_colours(inputs.result.primary, inputs.result.target)
    chart = svg.stacked_bars(
        "Which backend served the reads at each step",
        [b.step for b in bars],
        stacks,
        y_label="reads",
        notes=notes,
        colours=[palette.get(k, svg.PALETTE[2]) for k in kinds],
    )
    head = "".join(f"<th>{escape(k)}</th>" for k in kinds)
    rows = "".join(
        f"<tr><td>{escape(b.step)}</td>"
        + "".join(f"<td class=num>{b.served_by.get(k, 0):,}</td>" for k in kinds)
        + f"<td class=num>{b.fallbacks}</td><td class=num>"
        + ("—" if b.identical_share is None else f"{b.identical_share:.1%}")
        + "</td></tr>"
        for b in bars
    )
    return (
        '<section id="cutover"><h2>Cutover</h2>'
        '<p class="muted">Reads sent through the read router at each step; "same" is the share '
        "of answers identical (top 10, in order) to the legacy store's own answer.</p>"
        f'<div class="charts">{chart}</div>'
        f"<table><thead><tr><th>step</th>{head}<th>fallbacks</th><th>same as legacy</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></section>"
    )


def _gate(r: RehearsalResult) -> str:
    gate = r.gate
    if not gate:
        return (
            '<section id="gate"><h2>Gate</h2><p class="muted">The gate did not run.</p></section>'
        )
    rows = []
    for c in gate.get("criteria", []):
        passed = c.get("passed")
        css, word = (
            ("passed", "yes")
            if passed
            else ("notrun", "unknown")
            if passed is None
            else ("failed", "no")
        )
        statistic = str(c.get("statistic", ""))
        rows.append(
            f"<tr><td>{escape(str(c.get('name')))}</td>"
            f"<td class=num>{escape(show.value(statistic, c.get('value')))}</td>"
            f"<td>{escape(show.threshold(statistic, str(c.get('op', '')), c.get('threshold')))}"
            f'</td><td class="{css}">{word}</td>'
            f"<td>{escape(str(c.get('verdict', '')))}</td>"
            f"<td class=num>{escape(show.still_needed(c) or '—')}</td>"
            f"<td class=muted>{escape(str(c.get('detail', '')))}</td></tr>"
        )
    verdict = str(gate.get("verdict", r.verdict))
    return (
        '<section id="gate"><h2>Gate</h2>'
        f'<p>Verdict: <strong class="{escape(verdict)}">{escape(verdict)}</strong> '
        "(from the observation log and the state dir alone, as <code>shadowswap gate</code> "
        "decides with no source flag)</p>"
        "<table><thead><tr><th>criterion</th><th>value</th><th>threshold</th><th>passed</th>"
        "<th>asks for</th><th>still needed</th><th>detail</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _writes(r: RehearsalResult) -> str:
    w = r.writes
    rows = _rows(
        [
            ("write calls acknowledged", w.get("acknowledged_calls")),
            ("documents inserted", w.get("inserted")),
            ("documents updated (re-embedded)", w.get("updated")),
            ("documents deleted", w.get("deleted")),
            ("write calls failed", w.get("failed_calls")),
            ("documents checked in both stores", w.get("documents_checked")),
            ("lost writes", w.get("lost_writes")),
        ]
    )
    stores = w.get("stores", {})
    per_store = "".join(
        f"<tr><td>{escape(kind)}</td><td class=num>{s['missing']}</td><td class=num>"
        f"{s['stale']}</td><td class=num>{s['resurrected']}</td></tr>"
        for kind, s in stores.items()
    )
    return (
        '<section id="writes"><h2>Writes</h2>'
        '<p class="muted">Every write the live writer made and the dual writer acknowledged, '
        "read back by id from both stores at the end.</p>"
        f"<table><tbody>{rows}</tbody></table>"
        "<h3>Per store</h3><table><thead><tr><th>store</th><th>missing</th><th>stale</th>"
        f"<th>deleted but present</th></tr></thead><tbody>{per_store}</tbody></table></section>"
    )


def _rows(pairs: Iterable[tuple[str, Any]]) -> str:
    return "".join(
        f"<tr><td>{escape(name)}</td><td class=num>{escape(_show(value))}</td></tr>"
        for name, value in pairs
    )


def _files(inputs: ReportInputs) -> str:
    files = _rows(inputs.result.files.items())
    return (
        '<section id="files"><h2>Files</h2>'
        f"<table><tbody>{files}</tbody></table>"
        "<h3>The env file at the end</h3>"
        f"<pre>{escape(inputs.env_text)}</pre></section>"
    )

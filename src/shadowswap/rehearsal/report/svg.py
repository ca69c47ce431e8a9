"""Charts as inline SVG, drawn here: the HTML report must open without network or scripts, and
a plotting library (matplotlib: 40 MB, slow to import) would be a heavy dependency for five
kinds of chart. Every chart is a plain string of SVG with a ``<title>`` (what a screen
reader announces) and ``role="img"``; colours come from one palette readable in print.

Charts: `histogram` (one or more series over shared bins, linear or log x axis),
`step_lines` (a value over time with coloured state bands and marked moments), `stacked_bars`
(counts per category), `gantt` (intervals on a time axis).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04")
STATE_COLOURS = {"closed": "#dcfce7", "half_open": "#fef3c7", "open": "#fee2e2"}
STATUS_COLOURS = {"passed": "#16a34a", "failed": "#dc2626", "not run": "#9ca3af"}
_W, _H = 640, 260
_M = {"left": 56, "right": 16, "top": 46, "bottom": 44}


@dataclass(frozen=True)
class Scale:
    """Maps data values onto pixels, linearly or on a log10 axis."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float
    log: bool = False

    def __call__(self, value: float) -> float:
        lo, hi, v = self.lo, self.hi, value
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(max(value, self.lo))
        share = 0.0 if hi == lo else (v - lo) / (hi - lo)
        return self.px_lo + share * (self.px_hi - self.px_lo)

    def ticks(self, count: int = 5) -> list[float]:
        if self.log:
            first, last = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            return [10.0**e for e in range(first, last + 1) if self.lo <= 10.0**e <= self.hi]
        return nice_ticks(self.lo, self.hi, count)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    out = []
    value = first
    while value <= hi + step * 1e-9:
        out.append(round(value, 10))
        value += step
    return out


def fmt(value: float) -> str:
    """A tick label: ``0.25``, ``1k``, ``12``."""
    if value != 0 and abs(value) >= 1000:
        return f"{value / 1000:g}k"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.0e}"
    return f"{value:g}"


def _text(x: float, y: float, text: str, cls: str = "tick", anchor: str = "start") -> str:
    """A text element; ``text`` is escaped here."""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def _open(title: str, width: int = _W, height: int = _H) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_M["left"]}" y="18" class="chart-title">{escape(title)}</text>',
    ]


def _axes(
    x: Scale, y: Scale, x_label: str, y_label: str, *, x_ticks: Sequence[float] | None = None
) -> list[str]:
    out = []
    top, bottom = y.px_hi, y.px_lo
    for t in y.ticks():
        py = y(t)
        out.append(
            f'<line x1="{x.px_lo}" x2="{x.px_hi}" y1="{py:.1f}" y2="{py:.1f}" class="grid"/>'
        )
        out.append(_text(x.px_lo - 6, py + 4, fmt(t), anchor="end"))
    for t in x_ticks if x_ticks is not None else x.ticks():
        px = x(t)
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{bottom}" y2="{bottom + 4}" class="axis"/>'
        )
        out.append(_text(px, bottom + 16, fmt(t), anchor="middle"))
    out.append(f'<line x1="{x.px_lo}" x2="{x.px_hi}" y1="{bottom}" y2="{bottom}" class="axis"/>')
    out.append(f'<line x1="{x.px_lo}" x2="{x.px_lo}" y1="{top}" y2="{bottom}" class="axis"/>')
    mid = (x.px_lo + x.px_hi) / 2
    out.append(_text(mid, bottom + 34, x_label, "label", "middle"))
    cy = (top + bottom) / 2
    out.append(
        f'<text x="14" y="{cy:.1f}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 14 {cy:.1f})">{escape(y_label)}</text>'
    )
    return out


def _legend(names: Sequence[str], colours: Sequence[str], x0: float = _M["left"]) -> list[str]:
    """A row of coloured keys under the title."""
    out = []
    x = x0
    for name, colour in zip(names, colours, strict=True):
        out.append(f'<rect x="{x:.1f}" y="25" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14:.1f}" y="34" class="tick">{escape(name)}</text>')
        x += 24 + 6.5 * len(name)
    return out


def empty(title: str, message: str) -> str:
    """A chart frame saying why there is nothing to draw."""
    parts = _open(title, _W, 80)
    parts.append(f'<text x="{_M["left"]}" y="50" class="label">{escape(message)}</text>')
    return "\n".join([*parts, "</svg>"])


def histogram(
    title: str,
    series: Mapping[str, Sequence[float]],
    *,
    bins: Sequence[float],
    x_label: str,
    y_label: str = "share of samples",
    log_x: bool = False,
    counts_on_bars: bool = False,
    colours: Sequence[str] | None = None,
) -> str:
    """Each series' share of samples per bin (so series of different sizes compare), drawn
    as translucent bars over the same bins; values outside the bins go to the end bins.
    ``counts_on_bars`` prints each bar's count above it (so a thin tail still shows);
    ``colours`` (one per series) default to the palette."""
    if not any(series.values()):
        return empty(title, "no samples")
    shares: dict[str, list[float]] = {}
    for name, values in series.items():
        counts = [0] * (len(bins) - 1)
        for v in values:
            i = _bin(bins, v)
            counts[i] += 1
        total = max(1, len(values))
        shares[name] = [c / total for c in counts]
    top = max(max(s) for s in shares.values()) or 1.0
    x = Scale(bins[0], bins[-1], _M["left"], _W - _M["right"], log=log_x)
    y = Scale(0.0, top * 1.1, _H - _M["bottom"], _M["top"])
    parts = _open(title)
    parts += _axes(x, y, x_label, y_label)
    colours = list(colours or PALETTE[: len(series)])
    for (name, values), colour in zip(shares.items(), colours, strict=True):
        n = len(series[name])
        for i, share in enumerate(values):
            if share <= 0:
                continue
            x0, x1 = x(bins[i]), x(bins[i + 1])
            y0 = y(share)
            count = round(share * n)
            parts.append(
                f'<rect x="{x0 + 0.5:.1f}" y="{y0:.1f}" width="{max(1.0, x1 - x0 - 1):.1f}" '
                f'height="{y.px_lo - y0:.1f}" fill="{colour}" fill-opacity="0.55">'
                f"<title>{escape(name)}: {count} of {n} in [{fmt(bins[i])}, {fmt(bins[i + 1])})"
                "</title></rect>"
            )
            if counts_on_bars:
                parts.append(
                    f'<text x="{(x0 + x1) / 2:.1f}" y="{y0 - 3:.1f}" class="tick" '
                    f'text-anchor="middle">{count}</text>'
                )
    parts += _legend([f"{k} ({len(v):,})" for k, v in series.items()], colours)
    return "\n".join([*parts, "</svg>"])


def _bin(bins: Sequence[float], value: float) -> int:
    for i in range(len(bins) - 1):
        if value < bins[i + 1]:
            return i
    return len(bins) - 2


def step_lines(
    title: str,
    points: Sequence[tuple[float, float]],
    *,
    states: Sequence[tuple[float, str]] = (),
    marks: Sequence[tuple[float, str]] = (),
    window: tuple[float, float],
    x_label: str,
    y_label: str,
) -> str:
    """A value held between its points (a gauge), over coloured state bands and marks."""
    lo, hi = window
    x = Scale(lo, hi, _M["left"], _W - _M["right"])
    top = max([p[1] for p in points] + [1.0])
    y = Scale(0.0, top * 1.15, _H - _M["bottom"], _M["top"])
    parts = _open(title)
    bands = [*states, (hi, "")]
    for (t0, state), (t1, _) in itertools.pairwise(bands):
        colour = STATE_COLOURS.get(state)
        if colour is None or t1 <= lo:
            continue
        a, b = x(max(t0, lo)), x(min(t1, hi))
        parts.append(
            f'<rect x="{a:.1f}" y="{y.px_hi}" width="{max(0.5, b - a):.1f}" '
            f'height="{y.px_lo - y.px_hi}" fill="{colour}"><title>breaker {state}</title></rect>'
        )
    parts += _axes(x, y, x_label, y_label, x_ticks=x.ticks(8))
    if points:
        path = []
        previous: float | None = None
        for t, v in points:
            px, py = x(min(max(t, lo), hi)), y(v)
            if previous is None:
                path.append(f"M{px:.1f},{py:.1f}")
            else:
                path.append(f"H{px:.1f}V{py:.1f}")
            previous = v
        path.append(f"H{x.px_hi:.1f}")
        parts.append(f'<path d="{" ".join(path)}" class="series" stroke="{PALETTE[0]}"/>')
    for t, label in marks:
        if not lo <= t <= hi:
            continue
        px = x(t)
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y.px_hi}" y2="{y.px_lo}" class="mark"/>'
        )
        parts.append(
            f'<text x="{px + 3:.1f}" y="{y.px_hi + 12}" class="tick">{escape(label)}</text>'
        )
    legend = [s for s in ("closed", "half_open", "open") if any(st == s for _, st in states)]
    names = ["outbox items"] + [f"breaker {s}" for s in legend]
    parts += _legend(names, [PALETTE[0]] + [STATE_COLOURS[s] for s in legend])
    return "\n".join([*parts, "</svg>"])


def stacked_bars(
    title: str,
    categories: Sequence[str],
    stacks: Mapping[str, Sequence[float]],
    *,
    y_label: str,
    notes: Sequence[str] = (),
    colours: Sequence[str] | None = None,
) -> str:
    """One bar per category, stacked by series (``stacks[name][i]`` for category ``i``);
    ``notes[i]`` is printed above bar ``i``; ``colours`` as for `histogram`."""
    if not categories:
        return empty(title, "nothing to show")
    totals = [sum(s[i] for s in stacks.values()) for i in range(len(categories))]
    y = Scale(0.0, (max(totals) or 1.0) * 1.15, _H - _M["bottom"], _M["top"])
    left, right = _M["left"], _W - _M["right"]
    slot = (right - left) / len(categories)
    parts = _open(title)
    for t in y.ticks():
        py = y(t)
        parts.append(f'<line x1="{left}" x2="{right}" y1="{py:.1f}" y2="{py:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{left - 6}" y="{py + 4:.1f}" class="tick" text-anchor="end">{fmt(t)}</text>'
        )
    colours = list(colours or PALETTE[: len(stacks)])
    for i, category in enumerate(categories):
        x0 = left + i * slot + slot * 0.2
        width = slot * 0.6
        base = 0.0
        for (name, values), colour in zip(stacks.items(), colours, strict=True):
            value = values[i]
            if value <= 0:
                continue
            y_top, y_base = y(base + value), y(base)
            parts.append(
                f'<rect x="{x0:.1f}" y="{y_top:.1f}" width="{width:.1f}" '
                f'height="{y_base - y_top:.1f}" fill="{colour}">'
                f"<title>{escape(category)}: {escape(name)} {value:g}</title></rect>"
            )
            base += value
        cx = x0 + width / 2
        parts.append(
            f'<text x="{cx:.1f}" y="{y.px_lo + 16}" class="tick" text-anchor="middle">'
            f"{escape(category)}</text>"
        )
        if i < len(notes) and notes[i]:
            parts.append(
                f'<text x="{cx:.1f}" y="{y(base) - 5:.1f}" class="tick" text-anchor="middle">'
                f"{escape(notes[i])}</text>"
            )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{y.px_lo}" y2="{y.px_lo}" class="axis"/>')
    cy = (y.px_hi + y.px_lo) / 2
    parts.append(
        f'<text x="14" y="{cy:.1f}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 14 {cy:.1f})">{escape(y_label)}</text>'
    )
    parts += _legend(list(stacks), colours)
    return "\n".join([*parts, "</svg>"])


def gantt(title: str, rows: Sequence[tuple[str, float, float, str]], *, x_label: str) -> str:
    """One row per ``(label, start, duration, status)`` on a shared time axis."""
    if not rows:
        return empty(title, "nothing ran")
    row_h = 18
    height = _M["top"] + row_h * len(rows) + _M["bottom"]
    left = 150
    end = max(s + d for _, s, d, _ in rows) or 1.0
    x = Scale(0.0, end, left, _W - _M["right"])
    parts = _open(title, _W, height)
    bottom = _M["top"] + row_h * len(rows)
    for t in x.ticks(6):
        px = x(t)
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{_M["top"]}" y2="{bottom}" class="grid"/>'
        )
        parts.append(_text(px, bottom + 16, fmt(t), anchor="middle"))
    for i, (label, start, duration, status) in enumerate(rows):
        y0 = _M["top"] + i * row_h
        colour = STATUS_COLOURS.get(status, PALETTE[0])
        parts.append(_text(left - 6, y0 + 13, label, anchor="end"))
        a = x(start)
        parts.append(
            f'<rect x="{a:.1f}" y="{y0 + 3}" width="{max(1.5, x(start + duration) - a):.1f}" '
            f'height="{row_h - 6}" fill="{colour}"><title>{escape(label)}: '
            f"{duration:.1f} s ({escape(status)})</title></rect>"
        )
    parts.append(
        f'<text x="{(left + _W - _M["right"]) / 2:.1f}" y="{bottom + 34}" class="label" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    return "\n".join([*parts, "</svg>"])

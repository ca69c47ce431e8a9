"""A criterion's numbers as an operator reads them: rates in %, latencies in ms, ages in s,
min or h, the breaker by its state's name, and what evidence is still missing. Used by the
``shadowswap gate`` text output and the rehearsal's report.

>>> value("mismatch_ratio", 0.0123)
'1.23 %'
>>> value("shadow_latency_p95_s", 0.0042)
'4.2 ms'
>>> value("breaker_open", 0.0)
'closed'
>>> still_needed({"needed": 39, "unit": "comparisons", "needed_s": 150.0})
'39 more comparisons (~2 min)'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from shadowswap.gate.evaluate import STATISTICS
from shadowswap.gate.needed import duration_text


def _form(statistic: str) -> str:
    spec = STATISTICS.get(statistic)
    if statistic == "breaker_open":
        return "state"
    if spec is None:
        return "plain"
    if spec.kind == "ratio":
        return "percent"
    if spec.unit == "s":
        return "age" if statistic.endswith("age_s") else "ms"
    return "count" if spec.kind == "value" else "plain"


_FORMS: dict[str, Callable[[float], str]] = {
    "state": lambda x: "open" if x else "closed",
    "percent": lambda x: f"{100 * x:.3g} %",
    "age": duration_text,
    "ms": lambda x: f"{1000 * x:.4g} ms",
    "count": lambda x: f"{x:.0f}" if float(x).is_integer() else f"{x:.4g}",
    "plain": lambda x: f"{x:.4g}",
}


def value(statistic: str, number: float | None) -> str:
    """One value of ``statistic`` with its unit (``—`` when unknown)."""
    if number is None or not math.isfinite(number):
        return "—"
    return str(_FORMS[_form(statistic)](number))


def threshold(statistic: str, op: str, number: float | None) -> str:
    """``op threshold`` with the threshold's unit (``== closed`` for the breaker)."""
    return f"{op} {value(statistic, number)}"


def still_needed(criterion: Mapping[str, Any]) -> str:
    """``39 more comparisons (~2 min)`` from a criterion's ``as_dict``; empty when nothing is
    missing or no count can be said."""
    more = criterion.get("needed")
    if not more:
        return ""
    seconds = criterion.get("needed_s")
    when = f" (~{duration_text(float(seconds))})" if seconds else ""
    return f"{int(more):,} more {criterion.get('unit') or 'samples'}{when}"

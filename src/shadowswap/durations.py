"""Durations written by operators (``30s``, ``10m``, ``1h30m``): the one parser.

Two spellings are in use and both stay as they are: a Prometheus range (`range_seconds`:
a whole number and one unit, ``s m h d w``, as the gate's ``--window`` and the thresholds'
``--range``/``--step`` take it) and a loop interval (`interval_seconds`: ``reconcile
--every``, where ``1h30m``, ``1.5h`` and a bare number of seconds are accepted too). Both
return seconds or None; each caller checks its own limits and words its own error.
"""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RANGE = re.compile(r"(\d+)([smhdw])")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_PARTS = re.compile(rf"(?:{_PART.pattern})+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def range_seconds(text: str) -> int | None:
    """``30s``, ``10m``, ``6h``, ``2d``, ``2w`` -> seconds (exact); None otherwise.

    >>> range_seconds(" 2d "), range_seconds("1h30m")
    (172800, None)
    """
    match = _RANGE.fullmatch(text.strip())
    return int(match.group(1)) * UNITS[match.group(2)] if match else None


def interval_seconds(text: str) -> float | None:
    """``30s``, ``10m``, ``1h30m``, ``1.5h``, ``2d`` or a bare ``90`` (any case) -> seconds;
    None otherwise (weeks are not an interval unit).

    >>> interval_seconds("1h30m"), interval_seconds("90")
    (5400.0, 90.0)
    """
    raw = text.strip().lower()
    if _NUMBER.fullmatch(raw):
        return float(raw)
    if raw and _PARTS.fullmatch(raw):
        return sum(float(n) * UNITS[u] for n, u in _PART.findall(raw))
    return None

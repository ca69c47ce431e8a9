"""Alert thresholds from baselines (runbook 004): median ± 1.5 × IQR over weeks of data.

For a measure where higher is worse (latency, drops, errors, score delta) the threshold is
``median + 1.5 × IQR``; where lower is worse (agreement@5, nDCG@10) it is
``median − 1.5 × IQR`` (ratios are clamped to [0, 1]). Input is a range pull from the
Prometheus HTTP API (``/api/v1/query_range``), live or saved as JSON. With ``--write-rules`` the
numbers on the lines of the rules file marked ``# threshold: NAME[, NAME...]`` are replaced in
place — the k-th comparison (``> x`` / ``< x``) on the line gets the k-th name — and nothing
else in the file changes. Measures with too few samples are reported and left alone.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from shadowswap.durations import range_seconds
from shadowswap.errors import InvalidInput, ShadowswapError
from shadowswap.fileio import atomic_write
from shadowswap.promql import Prometheus, QueryRefused


@dataclass(frozen=True)
class Measure:
    """A baseline measure: its PromQL (``ENV`` is replaced by the env label) and direction."""

    name: str
    query: str
    higher_is_worse: bool
    ratio: bool = False


def _mean(metric: str) -> str:
    sel = '{env="ENV"}[5m]'
    return f"sum by (env) (rate({metric}_sum{sel})) / sum by (env) (rate({metric}_count{sel}))"


MEASURES: tuple[Measure, ...] = (
    Measure(
        "shadow_latency_p95_seconds",
        "histogram_quantile(0.95, sum by (le, env) "
        '(rate(retrieval_shadow_latency_seconds_bucket{env="ENV"}[5m])))',
        True,
    ),
    Measure("shadow_agreement_at_5_mean", _mean("retrieval_shadow_agreement_at_5"), False, True),
    Measure("shadow_ndcg_at_10_mean", _mean("retrieval_shadow_ndcg_at_10"), False, True),
    Measure("dual_read_score_delta_mean", _mean("retrieval_dual_read_score_delta"), True),
    Measure(
        "dual_read_latency_delta_mean_seconds",
        _mean("retrieval_dual_read_latency_delta_seconds"),
        True,
    ),
    Measure(
        "shadow_drops_per_second",
        'sum by (env) (rate(retrieval_shadow_dropped_total{env="ENV"}[5m]))',
        True,
    ),
    Measure(
        "dual_write_errors_per_second",
        'sum by (env) (rate(retrieval_dual_write_errors_total{env="ENV"}[5m]))',
        True,
    ),
    Measure("outbox_size", 'sum by (env) (retrieval_dual_write_outbox_size{env="ENV"})', True),
)
BY_NAME = {m.name: m for m in MEASURES}
MIN_SAMPLES = 30
_ANCHOR = re.compile(r"#\s*threshold:\s*(?P<names>[A-Za-z0-9_, ]+)\s*$")
_COMPARISON = re.compile(r"(?P<op>[<>]=?)\s*(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


@dataclass(frozen=True)
class Threshold:
    """What the baseline says for one measure."""

    name: str
    samples: int
    median: float | None
    q1: float | None
    q3: float | None
    threshold: float | None
    higher_is_worse: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "samples": self.samples,
            "median": self.median,
            "q1": self.q1,
            "q3": self.q3,
            "iqr": None if self.q1 is None or self.q3 is None else self.q3 - self.q1,
            "threshold": self.threshold,
            "direction": "higher_is_worse" if self.higher_is_worse else "lower_is_worse",
            "note": self.note,
        }


def parse_duration(text: str) -> int:
    """``30s``, ``10m``, ``14d`` -> seconds."""
    seconds = range_seconds(text)
    if seconds is None:
        raise InvalidInput("duration", f"{text!r} is not a duration like 30s, 10m, 6h, 14d or 2w")
    return seconds


def pull(
    prometheus: str,
    *,
    range_s: int,
    step_s: int,
    env: str,
    end: float | None = None,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """Pull every measure over the range from the Prometheus HTTP API; a saveable document."""
    end = time.time() if end is None else end
    start = end - range_s
    measures: dict[str, Any] = {}
    with Prometheus(prometheus, client=client, timeout_s=60.0) as api:
        for m in MEASURES:
            query = m.query.replace("ENV", env)
            try:
                result = api.query_range(query, start=start, end=end, step_s=step_s)
            except QueryRefused as exc:
                error = "unexpected answer" if exc.error is None else exc.error
                raise ShadowswapError(
                    f"Prometheus refused the query for {m.name}: {error}"
                ) from None
            measures[m.name] = {"query": query, "result": result}
    return {
        "prometheus": prometheus,
        "env": env,
        "start": start,
        "end": end,
        "step_s": step_s,
        "measures": measures,
    }


def load_pull(path: Path) -> dict[str, Any]:
    """Read a saved pull, with a clear error when the file is missing or not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput("--input", f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput("--input", f"{path} is not a readable JSON pull ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("measures"), dict):
        raise InvalidInput(
            "--input", f"{path} has no 'measures' object; save one with --prometheus URL --save"
        )
    return doc


def compute(document: Mapping[str, Any], min_samples: int = MIN_SAMPLES) -> list[Threshold]:
    """median ± 1.5 × IQR for every measure present in ``document``."""
    out = []
    for m in MEASURES:
        entry = document.get("measures", {}).get(m.name)
        values = _values(entry)
        if len(values) < min_samples:
            out.append(
                Threshold(
                    m.name, len(values), None, None, None, None, m.higher_is_worse,
                    note=f"insufficient data: {len(values)} samples, {min_samples} needed",
                )
            )  # fmt: skip
            continue
        arr = np.asarray(values, dtype=np.float64)
        q1, median, q3 = (float(x) for x in np.percentile(arr, [25, 50, 75]))
        iqr = q3 - q1
        limit = median + 1.5 * iqr if m.higher_is_worse else median - 1.5 * iqr
        if m.ratio:
            limit = min(1.0, max(0.0, limit))
        out.append(Threshold(m.name, len(values), median, q1, q3, limit, m.higher_is_worse))
    return out


def _values(entry: Any) -> list[float]:
    if not isinstance(entry, dict):
        return []
    values: list[float] = []
    for series in entry.get("result", []):
        for _ts, raw in series.get("values", []):
            try:
                v = float(raw)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                values.append(v)
    return values


def write_rules(path: Path, thresholds: list[Threshold]) -> dict[str, float]:
    """Replace anchored thresholds in the rules file; returns what changed (name -> value)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput("--write-rules", f"cannot read {path}: {exc}") from None
    known = {t.name: t.threshold for t in thresholds if t.threshold is not None}
    changed: dict[str, float] = {}
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        anchor = _ANCHOR.search(line)
        if not anchor:
            continue
        names = [n.strip() for n in anchor.group("names").split(",") if n.strip()]
        code = line[: anchor.start()]
        matches = list(_COMPARISON.finditer(code))
        for name, match in reversed(list(zip(names, matches, strict=False))):
            if name not in known:
                continue
            value = round(known[name], 6)
            code = code[: match.start("num")] + _format(value) + code[match.end("num") :]
            changed[name] = value
        lines[i] = code + line[anchor.start() :]
    try:
        atomic_write(path, "".join(lines).encode("utf-8"), like=path)
    except OSError as exc:
        raise InvalidInput("--write-rules", f"cannot write {path}: {exc}") from None
    return changed


def _format(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def promtool_check(path: Path) -> tuple[bool, str]:
    """``promtool check rules`` on the file, when promtool is installed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return True, "promtool not installed: rules not validated"
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

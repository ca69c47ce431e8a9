"""Gate evidence from Prometheus: what happened over a window, through the HTTP API.

Counters and histogram parts are taken as ``increase(...[window])`` summed over every series
of the environment (``env`` label, runbook 004) — histograms keep their buckets (``by (le)``)
so the gate can bound variances and quantiles — and gauges as their last value in the window
(``last_over_time``): the worst replica's (``max``) for the breaker, the outbox and drift.
The answers become `shadowswap.gate.evidence.Series` and go through the same parser as an
in-process registry, so both sources read the metrics the same way.

A query Prometheus refuses, or one that cannot reach it, raises; a series with no data leaves
its field unknown (``None``), which the gate reports as insufficient evidence.
"""

from __future__ import annotations

import math
import re
import time

import httpx

from shadowswap.durations import range_seconds
from shadowswap.errors import InvalidInput
from shadowswap.gate.evidence import _HISTOGRAMS, Series, evidence_from_series
from shadowswap.gate.model import Evidence
from shadowswap.promql import Prometheus

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:\-]*$")


def window_seconds(window: str) -> int:
    """``30m``, ``1h``, ``2d`` -> seconds; raises `InvalidInput` otherwise."""
    seconds = range_seconds(window)
    if not seconds:
        raise InvalidInput("--window", f"{window!r} is not a duration like 30m, 1h, 6h or 2d")
    return seconds


def queries(window: str, env: str | None, backend: str | None) -> list[tuple[str, str, str]]:
    """``(series name, PromQL, label to keep)`` for every series the gate reads."""
    for name, value in (("--env", env), ("--backend", backend)):
        if value is not None and not _LABEL_VALUE.match(value):
            raise InvalidInput(name, f"{value!r} is not a plain label value")
    base = f'env="{env}"' if env else ""
    shadow = ",".join(x for x in (base, f'backend="{backend}"' if backend else "") if x)
    w = f"[{window}]"

    def sel(labels: str, extra: str = "") -> str:
        inner = ",".join(x for x in (labels, extra) if x)
        return "{" + inner + "}"

    out: list[tuple[str, str, str]] = []
    for metric in _HISTOGRAMS.values():
        out.append(
            (f"{metric}_bucket", f"sum by (le) (increase({metric}_bucket{sel(shadow)}{w}))", "le")
        )
        for part in ("count", "sum"):
            out.append((f"{metric}_{part}", f"sum(increase({metric}_{part}{sel(shadow)}{w}))", ""))
    counters = [
        ("retrieval_shadow_dropped_total", base, "reason"),
        ("retrieval_shadow_errors_total", shadow, ""),
        ("retrieval_dual_read_mismatch_total", shadow, ""),
        ("retrieval_shadow_hit_class_total", shadow, "class"),
        ("retrieval_dual_write_errors_total", base, ""),
        ("retrieval_dual_write_skipped_total", base, "reason"),
        ("retrieval_dual_write_outbox_dropped_total", base, ""),
    ]
    for metric, labels, by in counters:
        group = f" by ({by})" if by else ""
        out.append((metric, f"sum{group} (increase({metric}{sel(labels)}{w}))", by))
    out.append(
        (
            "retrieval_total",
            f"sum by (role, outcome) (increase(retrieval_total{sel(base)}{w}))",
            "role,outcome",
        )
    )
    gauges = [
        ("retrieval_dual_write_breaker_state", "state"),
        ("retrieval_dual_write_outbox_size", ""),
        ("retrieval_dual_write_outbox_oldest_age_seconds", ""),
        ("retrieval_reconcile_drift", "kind"),
        ("retrieval_build_info", ""),
    ]
    for metric, by in gauges:
        group = f" by ({by})" if by else ""
        out.append((metric, f"max{group} (last_over_time({metric}{sel(base)}{w}))", by))
    return out


def evidence_from_prometheus(
    url: str,
    *,
    window: str = "1h",
    env: str | None = None,
    backend: str | None = None,
    at: float | None = None,
    client: httpx.Client | None = None,
) -> Evidence:
    """Evidence over the ``window`` ending at ``at`` (now when None) from the Prometheus at
    ``url``, for the ``env`` label (every env when None) and shadow ``backend`` (every one when
    None). Raises `StoreUnavailable` when Prometheus cannot be reached."""
    seconds = window_seconds(window)
    at = time.time() if at is None else at
    series: list[Series] = []
    with Prometheus(url, client=client, timeout_s=30.0) as prometheus:
        for name, query, keep in queries(window, env, backend):
            for labels, value in _instant(prometheus, query, at):
                kept = {k: labels[k] for k in keep.split(",") if k and k in labels}
                series.append(Series(name, kept, value))
    return evidence_from_series(
        series, source=f"prometheus:{url} {window}", window_s=float(seconds)
    )


def _instant(prometheus: Prometheus, query: str, at: float) -> list[tuple[dict[str, str], float]]:
    """Samples of an instant query (`QueryRefused` when Prometheus refuses it)."""
    out: list[tuple[dict[str, str], float]] = []
    for item in prometheus.query(query, at):
        value = float(item["value"][1])
        if math.isnan(value):  # no data in the window
            continue
        out.append((dict(item.get("metric", {})), value))
    return out

"""Offline comparison: a file of queries run against both configured backends, measured with
the same code as the live shadow (`shadowswap.shadow.compare.measure`), summarised as
distributions per tenant and overall. What a team runs before switching anything on.

Queries file: JSON lines, one object per line::

    {"tenant": "acme", "vector": [0.12, -0.03, ...], "filter": {"lang": "en"}, "id": "q-17"}

``tenant`` and ``vector`` are required; ``filter`` (an equality filter, as in a search) and
``id`` (your label for the query) are optional; other keys are refused, so a typo such as
``filters`` is not silently ignored. Blank lines are skipped. Every line is checked before
any search runs; an error names the file and the line. Each tenant gets one untimed search on
each store first, so latency figures do not include loading an index on first use.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shadowswap.clock import Clock
from shadowswap.errors import InvalidInput, StoreError
from shadowswap.shadow.compare import Measures, measure
from shadowswap.stores.base import VectorStore, check_k
from shadowswap.values import (
    MetaValue,
    SearchResult,
    Vector,
    check_metadata,
    check_tenant,
    to_vector,
)

QUERY_KEYS = ("tenant", "vector", "filter", "id")
_MAX_REPORTED = 5


@dataclass(frozen=True)
class Query:
    """One line of the queries file, validated."""

    line: int
    tenant: str
    vector: Vector
    filter: Mapping[str, MetaValue] | None = None
    id: str | None = None


def parse_queries(path: str | Path) -> list[Query]:
    """Read and validate a queries file; `InvalidInput` names the line of each error."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput("--queries", f"{file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput("--queries", f"{file} cannot be read: {exc}") from None
    queries: list[Query] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            queries.append(_parse_line(number, raw))
        except InvalidInput as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        more = len(errors) - _MAX_REPORTED
        shown = "\n  ".join(errors[:_MAX_REPORTED]) + (f"\n  and {more} more" if more > 0 else "")
        noun = "line is" if len(errors) == 1 else "lines are"
        raise InvalidInput(str(file), f"{len(errors)} {noun} not valid queries:\n  {shown}")
    if not queries:
        raise InvalidInput(str(file), "holds no queries (expected one JSON object per line)")
    return queries


def _parse_line(number: int, raw: str) -> Query:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput("json", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise InvalidInput("json", "expected a JSON object with tenant and vector")
    unknown = sorted(set(data) - set(QUERY_KEYS))
    if unknown:
        raise InvalidInput(unknown[0], f"unknown key; a query has only {', '.join(QUERY_KEYS)}")
    for required in ("tenant", "vector"):
        if required not in data:
            raise InvalidInput(required, "missing")
    tenant = check_tenant(data["tenant"])
    vector = to_vector(data["vector"])
    flt = check_metadata(data["filter"], "filter") if data.get("filter") is not None else None
    qid = data.get("id")
    if qid is not None and not isinstance(qid, str | int):
        raise InvalidInput("id", "expected a string or a number")
    return Query(number, tenant, vector, flt or None, None if qid is None else str(qid))


def check_dimensions(queries: Sequence[Query], stores: Iterable[VectorStore]) -> None:
    """Refuse queries whose vector length differs from a store's dimension, by line."""
    for store in stores:
        held = store.dimension
        if held is None:
            continue
        bad = [q for q in queries if q.vector.shape[0] != held]
        if bad:
            first = bad[0]
            raise InvalidInput(
                f"line {first.line}",
                f"vector has {first.vector.shape[0]} dimensions but the {store.kind} store "
                f"holds {held}-dimensional vectors ({len(bad)} such lines)",
            )


@dataclass(frozen=True)
class Distribution:
    """Summary of a list of numbers; every field None when there are none."""

    count: int
    mean: float | None = None
    p5: float | None = None
    p50: float | None = None
    p95: float | None = None
    min: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        if not values:
            return cls(0)
        arr = np.asarray(values, dtype=np.float64)
        p5, p50, p95 = (float(x) for x in np.percentile(arr, [5, 50, 95]))
        return cls(len(values), float(arr.mean()), p5, p50, p95, float(arr.min()), float(arr.max()))

    def as_json(self, digits: int = 6) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {"count": self.count}
        for name in ("mean", "p5", "p50", "p95", "min", "max"):
            value = getattr(self, name)
            out[name] = None if value is None else round(value, digits)
        return out


@dataclass(frozen=True)
class Outcome:
    """One query's result: measures, or which backend failed and why."""

    query: Query
    measures: Measures | None
    primary_latency_s: float | None
    target_latency_s: float | None
    error: str | None = None


@dataclass(frozen=True)
class Summary:
    queries: int
    compared: int
    mismatches: int
    primary_errors: int
    target_errors: int
    agreement_at_5: Distribution
    ndcg_at_10: Distribution
    score_delta: Distribution
    latency_delta_ms: Distribution
    primary_latency_ms: Distribution
    target_latency_ms: Distribution

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> Summary:
        done = [o for o in outcomes if o.measures is not None]
        ms = [o.measures for o in done if o.measures is not None]
        return cls(
            queries=len(outcomes),
            compared=len(done),
            mismatches=sum(m.mismatch for m in ms),
            primary_errors=sum(1 for o in outcomes if o.error and o.primary_latency_s is None),
            target_errors=sum(1 for o in outcomes if o.error and o.primary_latency_s is not None),
            agreement_at_5=Distribution.of([m.agreement_at_5 for m in ms]),
            ndcg_at_10=Distribution.of([m.ndcg_at_10 for m in ms]),
            score_delta=Distribution.of([m.score_delta for m in ms if m.score_delta is not None]),
            latency_delta_ms=Distribution.of([m.latency_delta_s * 1000 for m in ms]),
            primary_latency_ms=Distribution.of(
                [o.primary_latency_s * 1000 for o in done if o.primary_latency_s is not None]
            ),
            target_latency_ms=Distribution.of(
                [o.target_latency_s * 1000 for o in done if o.target_latency_s is not None]
            ),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "compared": self.compared,
            "mismatches": self.mismatches,
            "mismatch_rate": round(self.mismatches / self.compared, 6) if self.compared else None,
            "errors": {"primary": self.primary_errors, "target": self.target_errors},
            "agreement_at_5": self.agreement_at_5.as_json(),
            "ndcg_at_10": self.ndcg_at_10.as_json(),
            "score_delta": self.score_delta.as_json(),
            "latency_delta_ms": self.latency_delta_ms.as_json(3),
            "primary_latency_ms": self.primary_latency_ms.as_json(3),
            "target_latency_ms": self.target_latency_ms.as_json(3),
        }


@dataclass
class Report:
    """Everything ``shadowswap compare`` prints."""

    primary: str
    target: str
    k: int
    outcomes: list[Outcome] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    def overall(self) -> Summary:
        return Summary.of(self.outcomes)

    def tenants(self) -> dict[str, Summary]:
        by: dict[str, list[Outcome]] = {}
        for o in self.outcomes:
            by.setdefault(o.query.tenant, []).append(o)
        return {t: Summary.of(items) for t, items in sorted(by.items())}

    def as_json(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "target": self.target,
            "k": self.k,
            "queries": len(self.outcomes),
            "duration_s": round(self.duration_s, 3),
            "overall": self.overall().as_json(),
            "tenants": {t: s.as_json() for t, s in self.tenants().items()},
            "errors": [
                {"line": o.query.line, "tenant": o.query.tenant, "error": o.error}
                for o in self.errors[:100]
            ],
        }


def run_offline(
    primary: VectorStore,
    target: VectorStore,
    queries: Sequence[Query],
    *,
    k: int,
    clock: Clock,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Each query against the primary, then the target; a backend error is recorded for
    that query and the run goes on. Bad input (`InvalidInput`) stops the run."""
    check_k(k)
    check_dimensions(queries, (primary, target))
    report = Report(primary.kind, target.kind, k)
    _warm_up(primary, target, queries, k)
    started = clock.monotonic()
    for i, query in enumerate(queries, start=1):
        report.outcomes.append(_one(primary, target, query, k, clock))
        if progress is not None:
            progress(i, len(queries))
    report.duration_s = clock.monotonic() - started
    return report


def _warm_up(primary: VectorStore, target: VectorStore, queries: Sequence[Query], k: int) -> None:
    """One untimed search per tenant and store, so that loading an index on first use (FAISS
    builds a tenant's index lazily) does not count as query latency. Errors show in the run."""
    first: dict[str, Query] = {}
    for q in queries:
        first.setdefault(q.tenant, q)
    for q in first.values():
        for store in (primary, target):
            with contextlib.suppress(StoreError):
                store.search(q.tenant, q.vector, k, q.filter)


def _timed(store: VectorStore, q: Query, k: int, clock: Clock) -> tuple[SearchResult, float]:
    t0 = clock.monotonic()
    result = store.search(q.tenant, q.vector, k, q.filter)
    return result, clock.monotonic() - t0


def _one(primary: VectorStore, target: VectorStore, q: Query, k: int, clock: Clock) -> Outcome:
    try:
        try:
            p, p_s = _timed(primary, q, k, clock)
        except StoreError as exc:
            return Outcome(q, None, None, None, f"{primary.kind}: {exc}")
        try:
            t, t_s = _timed(target, q, k, clock)
        except StoreError as exc:
            return Outcome(q, None, p_s, None, f"{target.kind}: {exc}")
    except InvalidInput as exc:
        raise InvalidInput(f"line {q.line}", str(exc)) from None
    m = measure(p.hits, t.hits, primary_latency_s=p_s, shadow_latency_s=t_s)
    return Outcome(q, m, p_s, t_s)


def fmt(value: float | None, digits: int = 4, signed: bool = False) -> str:
    """A number for the text report ("-" when absent)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"

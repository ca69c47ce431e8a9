"""``shadowswap compare``: the offline comparison of the two configured backends on a file of
queries (see `shadowswap.shadow.offline`). Exit codes: 0 every query compared, 1 some query
failed on a backend (the report says which), 2 bad usage, queries file or configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shadowswap.cli.common import AsJson, EnvFile, emit_json, handled
from shadowswap.clock import SystemClock
from shadowswap.errors import ConfigError
from shadowswap.settings.config import load_settings
from shadowswap.shadow.offline import Report, Summary, fmt, parse_queries, run_offline
from shadowswap.stores import open_store

_PROGRESS_EVERY_S = 2.0


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)


@handled
def compare_cmd(
    queries: Annotated[
        Path,
        typer.Option(
            "--queries",
            help="JSON lines: {'tenant': ..., 'vector': [...], 'filter': {...}?, 'id': ...?}",
        ),
    ],
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Results asked of each.")] = 10,
    env_file: EnvFile = None,
    as_json: AsJson = False,
) -> None:
    """Run a file of queries against the primary and the target, and compare the answers.

    Prints the distributions of agreement@5, nDCG@10, score and latency deltas, per tenant
    and overall.
    """
    settings = load_settings(env_file)
    if settings.target_backend is None:
        raise ConfigError(
            "RETRIEVAL_TARGET_BACKEND",
            "",
            "compare needs a target backend to compare with the primary; set it (e.g. chroma)",
        )
    parsed = parse_queries(queries)
    clock = SystemClock()
    primary = open_store(settings.backend, settings)
    try:
        target = open_store(settings.target_backend, settings)
    except BaseException:
        primary.close()
        raise
    last = [clock.monotonic()]

    def progress(done: int, total: int) -> None:
        now = clock.monotonic()
        if now - last[0] >= _PROGRESS_EVERY_S:
            last[0] = now
            typer.echo(f"compare: {done}/{total} queries", err=True)

    try:
        report = run_offline(primary, target, parsed, k=k, clock=clock, progress=progress)
    finally:
        primary.close()
        target.close()
    if as_json:
        emit_json(report.as_json())
    else:
        _print(report)
    if report.errors:
        first = report.errors[0]
        typer.echo(
            f"shadowswap: error: {len(report.errors)} queries failed on a backend; first, "
            f"line {first.query.line}: {first.error}",
            err=True,
        )
        raise typer.Exit(1)


def _print(report: Report) -> None:
    typer.echo(
        f"{len(report.outcomes)} queries, {report.primary} (primary) vs {report.target} "
        f"(target), k={report.k}, {report.duration_s:.1f}s"
    )
    _print_summary("overall", report.overall())
    for tenant, summary in report.tenants().items():
        _print_summary(f"tenant {tenant}", summary)


def _print_summary(title: str, s: Summary) -> None:
    errors = s.primary_errors + s.target_errors
    rate = f" ({s.mismatches / s.compared:.1%})" if s.compared else ""
    typer.echo("")
    typer.echo(
        f"{title}: {s.queries} queries, {s.compared} compared, {s.mismatches} mismatches{rate}, "
        f"{errors} errors"
    )
    typer.echo(f"  {'measure':<20}{'mean':>10}{'p5':>10}{'p50':>10}{'p95':>10}")
    rows = [
        ("agreement@5", s.agreement_at_5, 4, False),
        ("nDCG@10", s.ndcg_at_10, 4, False),
        ("score delta", s.score_delta, 5, False),
        ("latency delta ms", s.latency_delta_ms, 3, True),
        ("primary ms", s.primary_latency_ms, 3, False),
        ("target ms", s.target_latency_ms, 3, False),
    ]
    for name, d, digits, signed in rows:
        cells = "".join(f"{fmt(v, digits, signed):>10}" for v in (d.mean, d.p5, d.p50, d.p95))
        typer.echo(f"  {name:<20}{cells}")

"""``shadowswap gate``: the go/no-go decision (PROMOTE, HOLD, ROLLBACK) from evidence.

Exit codes: 0 PROMOTE, 1 HOLD or ROLLBACK (or evidence that could not be read, e.g.
Prometheus or a --metrics-url unreachable), 2 bad usage (no source, a missing or invalid
criteria file, a missing directory, a malformed URL).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from shadowswap.cli.common import AsJson, EnvFile, emit_json, handled
from shadowswap.errors import InvalidInput
from shadowswap.gate import (
    Criteria,
    Evidence,
    GateResult,
    Verdict,
    combine,
    default_criteria,
    evaluate,
    evidence_from_observations,
    evidence_from_prometheus,
    evidence_from_state,
    load_criteria,
    show,
)
from shadowswap.gate.prometheus import window_seconds
from shadowswap.gate.scrape import evidence_from_metrics_url
from shadowswap.settings.config import load_settings
from shadowswap.shadow.observations import parse_iso_utc


def _time(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_iso_utc(value)
    except ValueError:
        raise InvalidInput(
            option, f"{value!r} is not an ISO-8601 time like 2025-10-21T14:50Z"
        ) from None


def gate_cmd(
    criteria: Annotated[
        Path | None,
        typer.Option(help="Criteria file (gate.yml); default: the built-in runbook criteria."),
    ] = None,
    observations: Annotated[
        Path | None,
        typer.Option(
            help="Shadow observation log directory (default: RETRIEVAL_OBSERVATIONS_DIR when "
            "no other source is given)."
        ),
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus base URL to read the metrics from.")
    ] = None,
    metrics_url: Annotated[
        list[str] | None,
        typer.Option(
            "--metrics-url",
            help="A gateway's own /metrics, in place of Prometheus (repeatable: replicas, "
            "summed); counts since the gateway started.",
        ),
    ] = None,
    window: Annotated[
        str, typer.Option(help="How far back the evidence goes (e.g. 30m, 1h, 1d).")
    ] = "1h",
    since: Annotated[
        str | None, typer.Option(help="Observations from this time (ISO-8601; overrides window).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Observations before this time.")] = None,
    tenant: Annotated[
        list[str] | None, typer.Option(help="Only these tenants' observations (repeatable).")
    ] = None,
    env: Annotated[
        str | None, typer.Option(help="Prometheus `env` label (default: METRIC_ENV).")
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="Prometheus: only this shadow backend's measures.")
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(help="Observation log of the primary compared with itself or a replica."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Where reconcile_last.json is (default: RETRIEVAL_STATE_DIR)."),
    ] = None,
    env_file: EnvFile = None,
    as_json: AsJson = False,
) -> None:
    """Decide PROMOTE, HOLD or ROLLBACK from shadow evidence, on confidence bounds."""
    chosen: Criteria = load_criteria(criteria) if criteria is not None else default_criteria()
    seconds = window_seconds(window)
    settings = load_settings(env_file)
    if observations is None and prometheus is None and not metrics_url:
        if not settings.observations_dir:
            raise InvalidInput(
                "--observations",
                "no source of evidence: set RETRIEVAL_OBSERVATIONS_DIR (the gateway's "
                "observation log, in the env or --env-file) or give --observations DIR, "
                "--metrics-url URL or --prometheus URL",
            )
        observations = Path(settings.observations_dir)
    now = time.time()
    parts: list[Evidence] = []
    if observations is not None:
        start = _time(since, "--since")
        parts.append(
            evidence_from_observations(
                observations,
                since=start if start is not None else now - seconds,
                until=_time(until, "--until"),
                tenants=tenant or None,
            )
        )
    if prometheus is not None:
        parts.append(
            evidence_from_prometheus(
                prometheus, window=window, env=env or settings.metric_env, backend=backend, at=now
            )
        )
    if metrics_url:  # a gateway's exposition is its own env: filtered only when --env is given
        parts.append(evidence_from_metrics_url(metrics_url, env=env, backend=backend))
    parts.append(evidence_from_state(state_dir or Path(settings.state_dir), settings=settings))
    reference = None
    if baseline is not None:
        reference = evidence_from_observations(baseline, tenants=tenant or None)
    result = evaluate(combine(*parts), chosen, reference)
    if as_json:
        emit_json({**result.as_dict(), "criteria_file": chosen.source})
    else:
        _render(result, chosen)
    if result.verdict is not Verdict.PROMOTE:
        raise typer.Exit(1)


_MARK = {True: "pass", False: "FAIL", None: "----"}


def _render(result: GateResult, criteria: Criteria) -> None:
    ev = result.evidence
    typer.echo(f"gate: {result.verdict.value}  (criteria: {criteria.source}, "
               f"confidence {criteria.confidence:.0%})")  # fmt: skip
    typer.echo(f"evidence: {', '.join(ev.get('sources', [])) or '(none)'}; "
               f"{ev.get('compared')} comparisons")  # fmt: skip
    width = max(len(c.name) for c in result.criteria)
    for c in result.criteria:
        mark = _MARK[c.passed] if c.required or c.passed is not None else "skip"
        value = show.value(c.statistic, c.value)
        bound = "" if c.bound is None else f" (bound {show.value(c.statistic, c.bound)})"
        n = "" if c.samples is None else f" n={c.samples}"
        line = f"  {mark} {c.name:<{width}} {value}{bound} "
        line += f"{show.threshold(c.statistic, c.op, c.threshold)}{n}"
        if c.verdict is Verdict.ROLLBACK:
            line += "  -> ROLLBACK"
        needed = show.still_needed(c.as_dict()) if c.passed is None else ""
        if needed:
            line += f"  needs {needed}"
        typer.echo(line)
    for reason in result.reasons:
        typer.echo(f"  - {reason}")
    for note in ev.get("notes", []):
        typer.echo(f"  note: {note}", err=True)


def register(app: typer.Typer) -> None:
    app.command("gate")(handled(gate_cmd))

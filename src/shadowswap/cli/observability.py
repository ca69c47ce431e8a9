"""``shadowswap thresholds``: alert thresholds from a baseline (runbook 004)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shadowswap.cli.common import AsJson, emit_json, handled
from shadowswap.errors import InvalidInput
from shadowswap.observability import thresholds as th


def thresholds_cmd(
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus base URL to pull range data from.")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="A saved pull (JSON) instead of --prometheus.")
    ] = None,
    range_: Annotated[
        str, typer.Option("--range", help="How far back to pull (e.g. 14d).")
    ] = "14d",
    step: Annotated[str, typer.Option(help="Resolution of the pull (e.g. 5m).")] = "5m",
    env: Annotated[str, typer.Option(help="Value of the env label to baseline.")] = "prod",
    save: Annotated[Path | None, typer.Option(help="Also save the pull to this file.")] = None,
    write_rules: Annotated[
        Path | None, typer.Option(help="Update the anchored thresholds in this rules file.")
    ] = None,
    min_samples: Annotated[int, typer.Option(min=1)] = th.MIN_SAMPLES,
    as_json: AsJson = False,
) -> None:
    """Compute median ± 1.5 × IQR thresholds from Prometheus data or a saved pull."""
    if (prometheus is None) == (input_file is None):
        raise InvalidInput("--prometheus/--input", "give exactly one of them")
    if prometheus is not None:
        document = th.pull(
            prometheus, range_s=th.parse_duration(range_), step_s=th.parse_duration(step), env=env
        )
        if save is not None:
            save.parent.mkdir(parents=True, exist_ok=True)
            save.write_text(json.dumps(document, indent=1), encoding="utf-8")
    else:
        assert input_file is not None
        document = th.load_pull(input_file)
    results = th.compute(document, min_samples)
    changed: dict[str, float] = {}
    valid, check = True, ""
    if write_rules is not None:
        changed = th.write_rules(write_rules, results)
        valid, check = th.promtool_check(write_rules)
    if as_json:
        emit_json(
            {
                "env": document.get("env", env),
                "thresholds": [t.as_dict() for t in results],
                "rules_file": str(write_rules) if write_rules else None,
                "changed": changed,
                "rules_valid": valid,
            }
        )
    else:
        for t in results:
            d = t.as_dict()
            if t.threshold is None:
                typer.echo(f"{t.name:<38} {t.note}")
            else:
                word = "alert above" if t.higher_is_worse else "alert below"
                typer.echo(
                    f"{t.name:<38} median {d['median']:.6g}  IQR {d['iqr']:.6g}  "
                    f"{word} {t.threshold:.6g}  ({t.samples} samples)"
                )
        if write_rules is not None:
            typer.echo(f"updated {len(changed)} thresholds in {write_rules}; {check}")
    if not valid:
        typer.echo(f"shadowswap: error: {write_rules} fails promtool check: {check}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("thresholds")(handled(thresholds_cmd))

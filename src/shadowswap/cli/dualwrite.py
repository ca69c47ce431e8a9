"""``shadowswap replay-outbox``: runbook 000's replay, for cron (``scripts/replay_outbox.py``
is the same command).

Exit codes: 0 when every due item was applied (or skipped as already applied or superseded)
or nothing was due; 1 when some item failed (it stays, with its attempt count and last
error) or the outbox cannot be used; 2 on bad usage or configuration. ``--json`` prints
CONTRACT §6's keys ``replayed``, ``failed``, ``skipped_superseded``, ``remaining`` (and the
details); progress goes to stderr.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from shadowswap.cli.common import AsJson, EnvFile, emit_json, handled
from shadowswap.clock import SystemClock
from shadowswap.dualwrite.outbox_url import open_outbox
from shadowswap.dualwrite.replay import DryRun, OpenStores, Replayer, ReplayReport
from shadowswap.metrics import Metrics
from shadowswap.settings.config import load_settings

MaxItems = Annotated[
    int | None,
    typer.Option(
        "--max-items",
        min=1,
        help="Handle at most N outbox items (oldest first; a document's items stay together).",
    ),
]
SleepMs = Annotated[
    int,
    typer.Option(
        "--sleep-ms",
        min=0,
        help="Pause M ms after each document (one document at a time), to spare the backend.",
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Show what would be replayed (counts per tenant and operation, oldest age); "
        "change nothing.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``replay-outbox`` to the ``shadowswap`` command."""
    app.command("replay-outbox")(replay_outbox_cmd)


@handled
def replay_outbox_cmd(
    dry_run: DryRunOpt = False,
    max_items: MaxItems = None,
    sleep_ms: SleepMs = 0,
    env_file: EnvFile = None,
    as_json: AsJson = False,
) -> None:
    """Apply the dual-write outbox to the backends that missed the changes (cron-safe)."""
    settings = load_settings(env_file)
    outbox = open_outbox(settings.outbox_url)
    stores = OpenStores(settings)
    try:
        replayer = Replayer(outbox, stores, settings, Metrics.null(), SystemClock())
        if dry_run:
            _show_dry_run(replayer.dry_run(max_items=max_items), max_items, as_json)
            return
        report = replayer.run(
            max_items=max_items, sleep_ms=sleep_ms, progress=None if as_json else _Progress()
        )
    finally:
        stores.close()
        outbox.close()
    if as_json:
        emit_json({"outbox": outbox.location, **report.as_dict()})
    else:
        _show_report(report)
    if not report.ok:
        raise typer.Exit(1)


class _Progress:
    """A progress line on stderr at most every two seconds."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, report: ReplayReport) -> None:
        now = time.monotonic()
        if now - self._last < 2.0:
            return
        self._last = now
        done = report.replayed + report.skipped_superseded + report.failed + report.in_flight
        typer.echo(
            f"  ... {done} items handled: replayed {report.replayed}, skipped/superseded "
            f"{report.skipped_superseded}, failed {report.failed} ({report.duration_s:.0f} s)",
            err=True,
        )


def _show_report(report: ReplayReport) -> None:
    typer.echo(
        f"replayed {report.replayed}, skipped/superseded {report.skipped_superseded} "
        f"(already applied {report.skipped_unchanged}, superseded {report.superseded}), "
        f"failed {report.failed}, remaining {report.remaining} in {report.duration_s:.1f} s"
    )
    if report.in_flight:
        typer.echo(
            f"{report.in_flight} items left for a later run: their write may still be in "
            "progress (younger than the in-flight grace)"
        )
    if report.expired:
        typer.echo(f"{report.expired} items had expired (older than the TTL): run reconcile")
    if report.stopped:
        typer.echo(f"stopped early: {report.stopped}", err=True)
    if report.failed:
        typer.echo(
            "some items failed; they stay in the outbox with their last error "
            "(shadowswap replay-outbox --dry-run shows how many)",
            err=True,
        )


def _show_dry_run(dry: DryRun, max_items: int | None, as_json: bool) -> None:
    if as_json:
        emit_json(dry.as_dict())
        return
    age = dry.oldest_age_s
    scope = f"the {max_items} oldest" if max_items is not None else "all"
    typer.echo(
        f"outbox {dry.outbox}: {dry.stats.size} items stored; dry run over {scope}: "
        f"{dry.items} items" + ("" if age is None else f", oldest {age:.1f} s old")
    )
    if dry.lines:
        width = max(len("tenant"), *(len(line.tenant) for line in dry.lines))
        typer.echo(f"  {'tenant':<{width}}  op      items  documents  failing")
        for line in dry.lines:
            typer.echo(
                f"  {line.tenant:<{width}}  {line.op:<6}  {line.items:>5}  "
                f"{line.documents:>9}  {line.failing:>7}"
            )
    typer.echo(
        f"dropped since the outbox was created: {dry.stats.dropped_full} full, "
        f"{dry.stats.dropped_ttl} ttl; documents recorded for reconcile: {dry.dropped_documents}"
    )
    sys.stdout.flush()

"""``shadowswap rehearse``: a whole migration rehearsed on real data (`shadowswap.rehearsal`),
with a live progress display on stderr, ``rehearsal.json`` and ``rehearsal.html``.

Exit codes: 0 when the ladder completed with every step passed, ``lost_writes`` 0 and
``drift`` 0, whatever the gate's verdict (printed; a rehearsal goes on past a HOLD to
rehearse the rest, and says so) — with ``--require-promote``, also only when the verdict is
PROMOTE; 1 when a step failed, a write was lost or drift remained; 2 on bad usage or
configuration. While it runs, shadowswap's own log lines go to ``<workdir>/rehearsal.log``
(JSON lines), so they do not break the display.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from shadowswap.cli.common import AsJson, emit_json, handled
from shadowswap.fileio import SHARED_FILE, open_for_append
from shadowswap.logs import configure_logging
from shadowswap.rehearsal import RehearsalOptions, prepare_workspace, run_rehearsal
from shadowswap.rehearsal.display import display_for
from shadowswap.rehearsal.options import (
    DEFAULT_DOCS,
    DEFAULT_QUERIES,
    DEFAULT_SEED,
    DEFAULT_TENANTS,
    DEFAULT_WORKDIR,
)
from shadowswap.rehearsal.runner import summary_lines


def register(app: typer.Typer) -> None:
    """Add ``rehearse`` to the ``shadowswap`` command."""
    app.command("rehearse")(rehearse_cmd)


@handled
def rehearse_cmd(
    primary: Annotated[
        str | None,
        typer.Option(
            help="Primary (legacy) kind; default faiss, or RETRIEVAL_BACKEND of --env-file."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Target (new) kind; default chroma, or RETRIEVAL_TARGET_BACKEND of --env-file."
        ),
    ] = None,
    docs: Annotated[
        int, typer.Option(min=1, help="Documents loaded into the primary (GloVe 6B 50-d).")
    ] = DEFAULT_DOCS,
    queries: Annotated[int, typer.Option(min=1, help="Held-out queries sent as live reads.")] = (
        DEFAULT_QUERIES
    ),
    tenants: Annotated[
        int, typer.Option(min=1, max=100, help="Tenants the data is split into.")
    ] = (DEFAULT_TENANTS),
    seed: Annotated[int, typer.Option(help="Seed of the data split, the writes and sampling.")] = (
        DEFAULT_SEED
    ),
    workdir: Annotated[
        Path, typer.Option(help="Work directory, recreated (only if made by a rehearsal).")
    ] = DEFAULT_WORKDIR,
    report_dir: Annotated[
        Path | None,
        typer.Option(help="Where rehearsal.json and rehearsal.html go (default: workdir)."),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="Rehearse on your own stores: their kinds and locations come from this file "
            "(never edited); their data is the data.",
        ),
    ] = None,
    queries_file: Annotated[
        Path | None,
        typer.Option(
            "--queries-file",
            help="With --env-file: JSON lines {'tenant', 'vector'} as for `shadowswap compare`.",
        ),
    ] = None,
    require_promote: Annotated[
        bool, typer.Option("--require-promote", help="Exit 1 unless the gate says PROMOTE.")
    ] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress display on stderr.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Rehearse a whole migration on real data, with a JSON and an HTML report.

    Load, dual write with live writes, backfill, target outage and replay, shadow read,
    reconcile, gate, cutover 10/50/100 %, swap, rollback drill, final reconcile, lost-write
    check.
    """
    options = RehearsalOptions(
        primary=primary.lower() if primary else None,
        target=target.lower() if target else None,
        docs=docs,
        queries=queries,
        tenants=tenants,
        seed=seed,
        workdir=workdir,
        report_dir=report_dir,
        env_file=env_file,
        queries_file=queries_file,
    )
    ws = prepare_workspace(options)
    display = display_for(sys.stderr, enabled=not no_progress)
    with _logs_to(ws.log_file):
        result = run_rehearsal(options, ws, display=display)
    lines = summary_lines(result)
    if as_json:
        emit_json(result.as_dict())
        for line in lines:
            typer.echo(line, err=True)
    else:
        for line in lines:
            typer.echo(line)
    if not result.ok:
        raise typer.Exit(1)
    if require_promote and result.verdict != "PROMOTE":
        typer.echo(f"shadowswap: the gate said {result.verdict} (--require-promote)", err=True)
        raise typer.Exit(1)


@contextlib.contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """shadowswap's log lines go to ``path`` for the run, then back where they were."""
    root = logging.getLogger("shadowswap")
    saved = (root.handlers[:], root.level, root.propagate)
    with os.fdopen(open_for_append(path, SHARED_FILE), "a", encoding="utf-8") as stream:
        configure_logging(stream=stream)
        try:
            yield
        finally:
            root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]

"""``shadowswap backfill`` and ``shadowswap reconcile``: thin shells over `shadowswap.sync`.

They parse, open the configured stores, call the library and render. Progress goes to
stderr (a bar on a terminal, plain lines otherwise); ``--json`` prints one JSON document on
stdout (with ``--every``, one compact document per run, one per line). SIGTERM and Ctrl-C
stop a run at the next safe point (after the current batch); a second Ctrl-C aborts at once,
which is safe too: checkpoints and state files are written atomically.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from shadowswap.cli.common import AsJson, EnvFile, emit_json, handled
from shadowswap.clock import SystemClock
from shadowswap.errors import ConfigError, InvalidInput
from shadowswap.metrics import new_registry, serve_metrics
from shadowswap.policy import Role, plan
from shadowswap.runtime import metrics_for
from shadowswap.settings import names
from shadowswap.settings.config import KINDS, Settings, load_settings
from shadowswap.stores import BaseStore, open_store
from shadowswap.sync.backfill import DEFAULT_BATCH as BACKFILL_BATCH
from shadowswap.sync.backfill import Backfill, BackfillReport
from shadowswap.sync.checkpoint import FileCheckpoints
from shadowswap.sync.continuous import parse_duration, run_every
from shadowswap.sync.progress import format_seconds, progress_for
from shadowswap.sync.reconcile import DEFAULT_BATCH as RECONCILE_BATCH
from shadowswap.sync.reconcile import Reconcile, ReconcileReport, SourceChoice, save_last

Tenants = Annotated[
    list[str] | None,
    typer.Option(
        "--tenant", help="Only this tenant (repeat the option for several). Default: all."
    ),
]
ShowProgress = Annotated[
    bool,
    typer.Option(
        "--progress/--no-progress", help="Progress on stderr: a bar on a terminal, else lines."
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``backfill`` and ``reconcile`` to the ``shadowswap`` command."""
    app.command("backfill")(backfill_cmd)
    app.command("reconcile")(reconcile_cmd)


# -- backfill -----------------------------------------------------------------------------
@handled
def backfill_cmd(
    *,
    from_kind: Annotated[
        str | None,
        typer.Option("--from", help="Source backend kind. Default: RETRIEVAL_BACKEND."),
    ] = None,
    to_kind: Annotated[
        str | None,
        typer.Option("--to", help="Destination backend kind. Default: RETRIEVAL_TARGET_BACKEND."),
    ] = None,
    tenant: Tenants = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Documents per read, write and checkpoint.")
    ] = BACKFILL_BATCH,
    max_rate: Annotated[
        float | None,
        typer.Option("--max-rate", help="At most this many documents per second (average)."),
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore checkpoints: start a new pass.")
    ] = False,
    show_progress: ShowProgress = True,
    env_file: EnvFile = None,
    as_json: AsJson = False,
) -> None:
    """Copy every document from one store to another: idempotent, resumable, throttled.

    Resumes from its checkpoint (under RETRIEVAL_STATE_DIR) after a kill; documents the
    destination already holds unchanged are not rewritten. Exit 0 when every document was
    copied, 1 when some failed or the run was stopped, 2 on bad usage or configuration.
    """
    settings = load_settings(env_file)
    source_kind = _kind("--from", from_kind or settings.backend)
    if to_kind is None and settings.target_backend is None:
        raise ConfigError(
            "RETRIEVAL_TARGET_BACKEND", "", "no destination: set it or pass --to KIND"
        )
    dest_kind = _kind("--to", to_kind or settings.target_backend or "")
    if dest_kind == source_kind:
        raise InvalidInput("--to", f"source and destination are both {source_kind!r}")
    if max_rate is not None and not max_rate > 0:
        raise InvalidInput("--max-rate", "must be a positive number of documents per second")
    with _stores(settings, source_kind, dest_kind) as (source, destination), _stop_signal() as stop:
        checkpoints = FileCheckpoints(
            settings.state_dir,
            (source.kind, source.location),
            (destination.kind, destination.location),
        )
        progress = progress_for(sys.stderr, verb="backfill", enabled=show_progress)
        try:
            report = Backfill(
                source,
                destination,
                tenants=tenant or None,
                batch_size=batch_size,
                max_rate=max_rate,
                checkpoints=checkpoints,
                restart=restart,
                progress=progress,
                stop=stop,
            ).run()
        finally:
            _close_progress(progress)
    if as_json:
        emit_json(report.as_dict())
    else:
        _print_backfill(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_backfill(report: BackfillReport) -> None:
    typer.echo(
        f"backfill {report.source[0]} -> {report.destination[0]}: "
        f"{len(report.tenants)} tenant(s), batch {report.batch_size}"
        + (f", at most {report.max_rate:g} docs/s" if report.max_rate else "")
    )
    width = max([len(t.tenant) for t in report.tenants] + [6])
    for t in report.tenants:
        if t.done_earlier:
            typer.echo(f"  {t.tenant:<{width}}  done by an earlier run of this pass")
            continue
        resumed = f" (resumed after {t.resumed_after_docs:,})" if t.resumed_after_docs else ""
        state = "" if t.complete else " - stopped"
        typer.echo(
            f"  {t.tenant:<{width}}  {t.written:>9,} copied  {t.unchanged:>9,} skipped  "
            f"{t.failed:>6,} failed{resumed}{state}"
        )
        if t.failed_ids:
            typer.echo(f"  {'':<{width}}  failed ids: {', '.join(t.failed_ids[:10])}")
    typer.echo(
        f"copied {report.copied:,}, skipped {report.skipped:,}, failed {report.failed:,} "
        f"in {format_seconds(report.duration_s)} ({report.rate:,.0f} docs/s)"
    )
    if not report.complete:
        typer.echo("stopped before the end: run the same command again to resume", err=True)
    elif report.failed_in_pass:
        typer.echo(
            f"{report.failed_in_pass:,} document(s) of this pass were not copied: see the "
            "failed ids above; 'shadowswap reconcile' lists every difference",
            err=True,
        )


# -- reconcile ----------------------------------------------------------------------------
@handled
def reconcile_cmd(
    *,
    tenant: Tenants = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Make the other store equal to the source of truth (copy missing and stale "
            "documents, delete extra ones).",
        ),
    ] = False,
    purge_delta: Annotated[
        bool,
        typer.Option(
            "--purge-delta", help="Delete what the other store has and the source does not."
        ),
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Source of truth for every tenant: primary or target. Default: the backend "
            "serving each tenant's reads.",
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Run continuously at this interval: 30s, 10m, 1h."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="With --every: serve the drift metrics at http://127.0.0.1:PORT/metrics.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Ids per page read and per repair batch.")
    ] = RECONCILE_BATCH,
    deep: Annotated[
        bool,
        typer.Option("--deep", help="Recompute every content hash from the stored content."),
    ] = False,
    show_progress: ShowProgress = True,
    env_file: EnvFile = None,
    as_json: AsJson = False,
) -> None:
    """Compare the primary and the target document by document (missing, extra, stale).

    Exit 0 when there is no drift (or none left after --repair), 1 when drift remains, 2 on
    bad usage or configuration. The result is also written to
    RETRIEVAL_STATE_DIR/reconcile_last.json.
    """
    settings = load_settings(env_file)
    if settings.target_backend is None:
        raise ConfigError(
            "RETRIEVAL_TARGET_BACKEND",
            "",
            "reconcile compares the primary with the target; set RETRIEVAL_TARGET_BACKEND",
        )
    if source not in (None, "primary", "target"):
        raise InvalidInput("--source", f"{source!r} is not accepted; use primary or target")
    interval = parse_duration(every) if every is not None else None
    if metrics_port is not None and interval is None:
        raise InvalidInput("--metrics-port", "only makes sense with --every")
    stores = _stores(settings, settings.backend, settings.target_backend)
    with stores as (primary, target), _stop_signal() as stop:
        progress = progress_for(
            sys.stderr, verb="reconcile", enabled=show_progress and interval is None
        )

        def once() -> ReconcileReport:
            # The settings in force when this run starts: they pick each tenant's source of
            # truth and are recorded in the result (the write plan, dual write per tenant).
            now = settings if interval is None else _same_stores(settings, env_file)
            report = Reconcile(
                primary,
                target,
                tenants=tenant or None,
                source=_choice(source, now),
                repair=repair,
                purge=purge_delta,
                batch_size=batch_size,
                deep=deep,
                progress=progress,
                stop=stop,
                settings=now,
            ).run()
            # Only a complete run over every tenant may speak for the stores: gates read it.
            if report.complete and report.scope is None:
                save_last(report, settings.state_dir)
            return report

        if interval is None:
            try:
                report = once()
            finally:
                _close_progress(progress)
            if as_json:
                emit_json(report.as_dict())
            else:
                _print_reconcile(report)
            if not report.ok:
                raise typer.Exit(1)
            return
        _continuous(
            settings,
            interval=interval,
            once=once,
            stop=stop,
            metrics_port=metrics_port,
            as_json=as_json,
        )


def _choice(source: str | None, settings: Settings) -> SourceChoice:
    """``--source``, or the backend serving each tenant's reads under ``settings``."""
    if source == "primary":
        return "primary"
    if source == "target":
        return "target"

    def serving(name: str) -> Role:
        return plan(settings, name).read

    return serving


def _same_stores(started: Settings, env_file: Path | None) -> Settings:
    """The settings now, for one run of ``--every``: a phase move between runs is picked up,
    but the loop's stores stay the ones it opened, so the backends must not have changed."""
    now = load_settings(env_file)
    if (now.backend, now.target_backend) != (started.backend, started.target_backend):
        raise ConfigError(
            names.RETRIEVAL_BACKEND,
            f"{now.backend} (target {now.target_backend})",
            f"this reconcile loop compares {started.backend} with {started.target_backend}; "
            "restart `shadowswap reconcile --every` after a swap",
        )
    return now


def _continuous(
    settings: Settings,
    *,
    interval: float,
    once: Callable[[], ReconcileReport],
    stop: threading.Event,
    metrics_port: int | None,
    as_json: bool,
) -> None:
    registry = new_registry()
    metrics = metrics_for(settings, registry)
    stop_server = None
    if metrics_port is not None:
        try:
            stop_server = serve_metrics(registry, metrics_port)
        except OSError as exc:
            raise InvalidInput(
                "--metrics-port", f"cannot listen on 127.0.0.1:{metrics_port} ({exc})"
            ) from exc
        typer.echo(f"metrics at http://127.0.0.1:{metrics_port}/metrics", err=True)
    typer.echo(f"reconcile every {format_seconds(interval)}; SIGTERM or Ctrl-C stops", err=True)

    def render(report: ReconcileReport) -> None:
        if as_json:
            sys.stdout.write(_compact(report.as_dict()) + "\n")
            sys.stdout.flush()
        else:
            typer.echo(_one_line(report))

    try:
        run_every(interval, once, clock=SystemClock(), stop=stop, metrics=metrics, on_report=render)
    finally:
        if stop_server is not None:
            stop_server()


def _print_reconcile(report: ReconcileReport) -> None:
    who = {
        "serving": "the backend serving each tenant's reads",
        "primary": f"the primary ({report.primary})",
        "target": f"the target ({report.target})",
    }[report.source]
    typer.echo(
        f"reconcile {report.primary} (primary) and {report.target} (target); source of truth: {who}"
    )
    drifted = [t for t in report.tenants if t.found.total or t.drift]
    if drifted:
        width = max([len(t.tenant) for t in drifted] + [6])
        typer.echo(
            f"  {'tenant':<{width}}  {'source -> replica':<20} {'missing':>9} {'extra':>9} "
            f"{'stale':>9}"
        )
        for t in drifted:
            pair = f"{t.source} -> {t.replica}"
            found = t.found
            typer.echo(
                f"  {t.tenant:<{width}}  {pair:<20} {found.missing:>9,} {found.extra:>9,} "
                f"{found.stale:>9,}"
            )
            for kind, ids in t.examples.items():
                if ids:
                    typer.echo(f"  {'':<{width}}    {kind}: {', '.join(ids)}")
    clean = len(report.tenants) - len(drifted)
    compared = sum(t.source_docs for t in report.tenants)
    found = report.found
    typer.echo(
        f"{'found' if report.repair or report.purge else 'drift'} {found.total:,} (missing "
        f"{found.missing:,}, extra {found.extra:,}, stale {found.stale:,}) in "
        f"{len(report.tenants)} tenant(s) ({clean} without drift), {compared:,} source "
        f"documents compared in {format_seconds(report.duration_s)}"
    )
    if report.repair or report.purge:
        written = sum(t.written for t in report.tenants)
        deleted = sum(t.deleted for t in report.tenants)
        verified = sum(t.verified for t in report.tenants)
        still = sum(t.left_after_repair for t in report.tenants)
        typer.echo(
            f"{'repaired' if report.repair else 'purged'}: {written:,} written, "
            f"{deleted:,} deleted; read back {verified:,}, {still:,} still different; drift "
            f"left {report.drift:,} (missing {report.missing:,}, extra {report.extra:,}, "
            f"stale {report.stale:,})"
        )
    if not report.complete:
        typer.echo("stopped before the end: the result covers the tenants above only", err=True)


def _one_line(report: ReconcileReport) -> str:
    data = report.as_dict()
    found = report.found
    return (
        f"{data['finished_at']} found {found.total} (missing {found.missing}, extra "
        f"{found.extra}, stale {found.stale}), drift left {report.drift}, in "
        f"{len(report.tenants)} tenant(s), {format_seconds(report.duration_s)}"
        + ("" if report.complete else " (stopped)")
    )


def _compact(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str)


# -- shared -------------------------------------------------------------------------------
def _kind(option: str, value: str) -> str:
    kind = value.strip().lower()
    if kind not in KINDS:
        raise ConfigError(option, value, "expected one of " + ", ".join(KINDS))
    return kind


@contextlib.contextmanager
def _stores(settings: Settings, first: str, second: str) -> Iterator[tuple[BaseStore, BaseStore]]:
    a = open_store(first, settings)
    try:
        b = open_store(second, settings)
        try:
            yield a, b
        finally:
            with contextlib.suppress(Exception):
                b.close()
    finally:
        with contextlib.suppress(Exception):
            a.close()


@contextlib.contextmanager
def _stop_signal() -> Iterator[threading.Event]:
    """An event set by SIGTERM or the first Ctrl-C; a second Ctrl-C aborts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        name = signal.Signals(signum).name
        typer.echo(f"{name}: stopping after the current batch", err=True)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _close_progress(progress: object) -> None:
    close = getattr(progress, "close", None)
    if callable(close):
        close()

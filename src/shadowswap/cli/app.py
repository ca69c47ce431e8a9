"""``shadowswap`` subcommands. Exit codes: 0 success, 1 the operation ran and failed (or a gate
said no), 2 bad usage or configuration. ``--json`` prints one JSON document on stdout and
nothing else there; messages go to stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shadowswap import __version__
from shadowswap.check import check_backend, resolve_backends
from shadowswap.cli import compare, dualwrite, observability
from shadowswap.cli import gate as gate_commands
from shadowswap.cli import rehearse as rehearse_commands
from shadowswap.cli import rollout as rollout_commands
from shadowswap.cli import service as service_commands
from shadowswap.cli import sync as sync_commands
from shadowswap.cli.common import AsJson, EnvFile, emit_json, handled
from shadowswap.demo import run_demo
from shadowswap.logs import configure_logging
from shadowswap.settings.config import gather, load_settings

app = typer.Typer(
    name="shadowswap",
    help="Move a retrieval backend to another vector store, in production, with proof.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("config")
@handled
def config_cmd(env_file: EnvFile = None, as_json: AsJson = False) -> None:
    """Print the effective configuration (secrets masked) and where each value comes from."""
    settings = load_settings(env_file)
    values = settings.as_env(mask=True)
    if as_json:
        emit_json(values)
        return
    _, sources = gather(env_file)
    width = max(len(k) for k in values)
    for key, value in values.items():
        shown = "(none)" if value is None else value if value != "" else '""'
        typer.echo(f"{key:<{width}}  {shown:<28}  {sources.get(key, 'default')}")


@app.command("check")
@handled
def check_cmd(
    backend: Annotated[
        str | None,
        typer.Option(help="primary, target, or a backend kind; default: primary and target."),
    ] = None,
    env_file: EnvFile = None,
    as_json: AsJson = False,
) -> None:
    """Check that backends are reachable: kind, location, documents, round-trip time."""
    settings = load_settings(env_file)
    results = [
        check_backend(settings, role, kind) for role, kind in resolve_backends(settings, backend)
    ]
    ok = all(r.reachable for r in results)
    if as_json:
        emit_json({"ok": ok, "backends": [r.as_dict() for r in results]})
    else:
        for r in results:
            state = "reachable" if r.reachable else "NOT REACHABLE"
            typer.echo(f"{r.role:<8} {r.kind:<9} {r.location}: {state} in {r.round_trip_ms:.1f} ms")
            if r.reachable:
                typer.echo(
                    f"         documents={r.documents} tenants={r.tenants} "
                    f"dimension={r.dimension} metric={r.metric}"
                )
            else:
                typer.echo(f"         {r.detail}")
    if not ok:
        raise typer.Exit(1)


@app.command("demo")
@handled
def demo_cmd(
    workdir: Annotated[Path, typer.Option(help="Where the demo's stores are created.")] = Path(
        "./data/demo"
    ),
    docs: Annotated[int, typer.Option(min=10, help="Documents per tenant.")] = 2000,
    tenants: Annotated[int, typer.Option(min=1, max=50)] = 3,
    as_json: AsJson = False,
) -> None:
    """A short real end-to-end on embedded stores: FAISS primary, Chroma target."""
    say = (lambda _m: None) if as_json else (lambda m: typer.echo(f"  {m}", err=True))
    if not as_json:
        typer.echo(f"shadowswap demo: FAISS -> Chroma in {workdir}", err=True)
    report = run_demo(workdir, tenants=tenants, docs_per_tenant=docs, say=say)
    document = {
        "ok": report.ok,
        "primary": report.primary,
        "target": report.target,
        "tenants": report.tenants,
        "documents": report.documents,
        "queries": report.queries,
        "drift": report.drift,
        "agreement_at_5": round(report.agreement_at_5, 4),
        "ndcg_at_10": round(report.ndcg_at_10, 4),
        "duration_s": report.duration_s,
        "steps": [vars(s) for s in report.steps],
    }
    if as_json:
        emit_json(document)
    else:
        verdict = "OK" if report.ok else "FAILED"
        typer.echo(
            f"{verdict}: drift {report.drift}, agreement@5 {report.agreement_at_5:.4f}, "
            f"nDCG@10 {report.ndcg_at_10:.4f}, {report.duration_s:.1f}s"
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("version")
def version_cmd() -> None:
    """Print shadowswap's version."""
    typer.echo(__version__)


# Subcommands of later issues live in their own modules and register here, one line each.
observability.register(app)
rollout_commands.register(app)
compare.register(app)
sync_commands.register(app)
dualwrite.register(app)
gate_commands.register(app)
service_commands.register(app)
rehearse_commands.register(app)


def main() -> None:
    """Console entry point."""
    configure_logging()
    app()

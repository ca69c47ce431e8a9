"""``shadowswap serve`` (the HTTP gateway) and ``shadowswap keys`` (its API keys file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shadowswap.cli.common import AsJson, EnvFile, emit_json, handled
from shadowswap.errors import ConfigError
from shadowswap.service.keys import ALL_TENANTS, add_key, read_entries, revoke_key
from shadowswap.settings.config import load_settings

KeysFile = Annotated[
    Path | None,
    typer.Option(
        "--file",
        help="The keys file; default: RETRIEVAL_API_KEYS_FILE (from the environment or "
        "--env-file).",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    keys = typer.Typer(help="API keys of the HTTP gateway (RETRIEVAL_API_KEYS_FILE).")
    keys.command("add")(keys_add_cmd)
    keys.command("list")(keys_list_cmd)
    keys.command("revoke")(keys_revoke_cmd)
    app.add_typer(keys, name="keys")


@handled
def serve_cmd(
    host: Annotated[
        str, typer.Option(help="Address to listen on; loopback by default.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
    env_file: EnvFile = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes; embedded engines that one process must own refuse N > 1.",
        ),
    ] = 1,
) -> None:
    """Run the HTTP gateway: search, upsert, delete, status, health, metrics (docs/service.md).

    Exit 2 on a bad configuration (settings, keys file, workers); 0 after SIGTERM/SIGINT.
    """
    # FastAPI and uvicorn load only for this command, not for every CLI call
    from shadowswap.service.server import ServeOptions, serve  # noqa: PLC0415

    serve(ServeOptions(host=host, port=port, env_file=env_file, workers=workers))


def _keys_file(file: Path | None, env_file: Path | None) -> Path:
    if file is not None:
        return file
    configured = load_settings(env_file).api_keys_file
    if not configured:
        raise ConfigError(
            "--file", "", "give --file, or set RETRIEVAL_API_KEYS_FILE (environment or --env-file)"
        )
    return Path(configured)


@handled
def keys_add_cmd(
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="A tenant the key may use (repeatable).")
    ] = None,
    all_tenants: Annotated[
        bool, typer.Option("--all-tenants", help="The key may use every tenant.")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="The key may read /internal/retrieval/status.")
    ] = False,
    note: Annotated[str, typer.Option(help="Who uses the key (no personal data).")] = "",
    file: KeysFile = None,
    env_file: EnvFile = None,
    as_json: AsJson = False,
) -> None:
    """Make a new API key, store its SHA-256 in the keys file, print the key once."""
    tenants = [*(tenant or []), *([ALL_TENANTS] if all_tenants else [])]
    path = _keys_file(file, env_file)
    key, entry = add_key(path, tenants, status=status, note=note)
    if as_json:
        emit_json({"key": key, "file": str(path), **entry.public()})
        return
    typer.echo(key)
    typer.echo(
        f"key {entry.id} added to {path} for tenants {','.join(sorted(entry.tenants))}"
        f"{' with status access' if entry.status else ''}. The key is shown once: only its "
        "hash is stored.",
        err=True,
    )


@handled
def keys_list_cmd(file: KeysFile = None, env_file: EnvFile = None, as_json: AsJson = False) -> None:
    """List the keys of the keys file (ids, tenants, permissions; never hashes)."""
    path = _keys_file(file, env_file)
    entries = [e.public() for e in read_entries(path)]
    if as_json:
        emit_json({"file": str(path), "keys": entries})
        return
    for e in entries:
        flags = " status" if e["status"] else ""
        typer.echo(
            f"{e['id']:<10} {','.join(e['tenants']):<40}{flags}  {e['created']}  {e['note']}"
        )


@handled
def keys_revoke_cmd(
    key_id: Annotated[str, typer.Argument(help="The id of the key (see `keys list`).")],
    file: KeysFile = None,
    env_file: EnvFile = None,
    as_json: AsJson = False,
) -> None:
    """Remove a key; a running service stops accepting it within a second."""
    path = _keys_file(file, env_file)
    entry = revoke_key(path, key_id)
    if as_json:
        emit_json({"revoked": entry.id, "file": str(path)})
    else:
        typer.echo(f"key {entry.id} revoked from {path}", err=True)

"""What every subcommand shares: option types, error handling, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from shadowswap.errors import ConfigError, InvalidInput, MissingDependency, ShadowswapError

P = ParamSpec("P")
R = TypeVar("R")

EnvFile = Annotated[
    Path | None,
    typer.Option("--env-file", help="Env file to read (the process environment wins over it)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def fail(exc: BaseException) -> NoReturn:
    """Print a one-line error (no traceback) and exit with the contract's code:
    2 for bad usage or configuration, 1 for an operation that ran and failed."""
    usage = isinstance(exc, ConfigError | InvalidInput | MissingDependency)
    typer.echo(f"shadowswap: error: {exc}", err=True)
    if isinstance(exc, ConfigError):
        # not "run shadowswap config": that command stops on the same bad value
        typer.echo(
            "  (fix the value where it is set; the process environment wins over the env file)",
            err=True,
        )
    raise typer.Exit(2 if usage else 1)


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn shadowswap's errors into messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ShadowswapError as exc:
            fail(exc)

    return wrapper


def emit_json(document: Any) -> None:
    """The one JSON document a ``--json`` command prints on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")

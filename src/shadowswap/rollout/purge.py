"""The purge step of a rollback (runbook 002, step 2): delete the target's inconsistent delta.

The work is done by ``shadowswap.sync.reconcile.purge_delta(source, target, tenants=None)``
(the sync subsystem): ``source`` is the store the rollback returns to (authoritative), ``target``
the store being left. It is imported only when a purge is asked for, so a build without the
sync subsystem still rolls back; asking for a purge there is refused before anything changes.
`Purge` is the boundary, so tests inject their own step.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from shadowswap.errors import Refused
from shadowswap.settings.config import Settings
from shadowswap.stores import open_store  # vendor SDKs load only when a store is opened

MODULE = "shadowswap.sync.reconcile"


class Purge(Protocol):
    """Deletes from ``target_kind`` what ``source_kind`` does not hold; returns a summary."""

    def check(self) -> None:
        """Raise `Refused` when the purge cannot run at all (before any change is made)."""

    def run(self, source_kind: str, target_kind: str) -> str: ...


class ReconcilePurge:
    """The real purge: opens both stores and calls the sync subsystem's ``purge_delta``."""

    def __init__(self, settings: Callable[[], Settings], module: str = MODULE) -> None:
        self._settings = settings
        self._module = module

    def _function(self) -> Callable[..., Any]:
        try:
            module = importlib.import_module(self._module)
        except ModuleNotFoundError as exc:
            raise Refused(
                "--purge-delta",
                [
                    f"{self._module} is not part of this build ({exc.name} is missing), so "
                    "the delta cannot be purged; run again without --purge-delta and purge "
                    "later with `shadowswap reconcile`"
                ],
            ) from exc
        function = getattr(module, "purge_delta", None)
        if not callable(function):
            raise Refused("--purge-delta", [f"{self._module} has no purge_delta function"])
        return function  # type: ignore[no-any-return]

    def check(self) -> None:
        self._function()

    def run(self, source_kind: str, target_kind: str) -> str:
        purge_delta = self._function()
        settings = self._settings()
        source = open_store(source_kind, settings)
        try:
            target = open_store(target_kind, settings)
            try:
                return summarize(purge_delta(source, target, tenants=None))
            finally:
                target.close()
        finally:
            source.close()


def summarize(result: object) -> str:
    """One line for the journal, from whatever ``purge_delta`` returned."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    if isinstance(result, Mapping):
        return json.dumps(dict(result), default=str, separators=(",", ":"))[:300]
    return "done" if result is None else str(result)[:300]

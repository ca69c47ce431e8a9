"""Backfill checkpoints: how far each tenant's copy got, so a killed backfill resumes there.

A checkpoint belongs to one (source store, destination store, tenant) and says: every
document with a doc id up to and including ``after`` has been written to the destination
*and verified* (see `shadowswap.sync.converge`). It is saved after each batch, atomically
(`shadowswap.sync.statefile`), so after a SIGKILL at any instant the file holds the last
batch that was completely done. Resuming scans from ``after``: finished batches are not even
read again, and the batch that was in flight is re-read and found unchanged by the
destination's idempotent upsert (nothing is rewritten, nothing is skipped).

Layout under ``RETRIEVAL_STATE_DIR``::

    backfill/<source kind>-to-<destination kind>-<12 hex of both locations>/
        .lock                       held by the running backfill (flock)
        pass.json                   the pass in progress (see Passes below)
        <tenant>-<8 hex>.json       one checkpoint per tenant (the hex keeps tenants that
                                    differ only by case apart on case-insensitive disks)

Passes: a backfill pass covers every selected tenant once. ``pass.json`` records the pass
in progress (its id and tenant selection); each tenant's checkpoint carries the pass id. A
run that finds an unfinished pass for the same selection resumes it: tenants finished in it
are not read again, the interrupted one resumes at its checkpoint, the others start. Once
every tenant is done the pass is marked complete, and the next run starts a new pass from
the beginning (cheap: unchanged documents are not rewritten). ``--restart`` starts a new
pass at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from shadowswap.errors import StateError
from shadowswap.settings.masking import mask_secrets
from shadowswap.sync.statefile import exclusive_lock, read_json, write_json_atomic

FORMAT = 1
MAX_FAILED_IDS = 100


@dataclass(frozen=True)
class Checkpoint:
    """Progress of one tenant's copy; counters are cumulative over the runs of one pass."""

    tenant: str
    pass_id: str = ""
    after: str | None = None
    processed: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    failed_ids: tuple[str, ...] = field(default_factory=tuple)
    complete: bool = False
    updated_at: float = 0.0

    def advanced(
        self,
        after: str,
        *,
        processed: int,
        written: int,
        unchanged: int,
        deleted: int,
        failed_ids: tuple[str, ...],
        now: float,
    ) -> Checkpoint:
        """This checkpoint moved past one more batch."""
        return replace(
            self,
            after=after,
            processed=self.processed + processed,
            written=self.written + written,
            unchanged=self.unchanged + unchanged,
            deleted=self.deleted + deleted,
            failed=self.failed + len(failed_ids),
            failed_ids=(self.failed_ids + failed_ids)[:MAX_FAILED_IDS],
            updated_at=now,
        )


@dataclass(frozen=True)
class Pass:
    """One pass over the selected tenants (``scope`` None: every tenant of the source)."""

    id: str
    scope: tuple[str, ...] | None
    started_at: float
    complete: bool = False


class Checkpoints(Protocol):
    """Where checkpoints of one (source, destination) pair are kept."""

    def load_pass(self) -> Pass | None: ...

    def save_pass(self, current: Pass) -> None: ...

    def load(self, tenant: str) -> Checkpoint | None: ...

    def save(self, checkpoint: Checkpoint) -> None: ...

    def clear(self, tenant: str) -> None: ...

    def locked(self) -> AbstractContextManager[None]:
        """Held for the whole run, so two backfills never drive the same checkpoints."""


class MemoryCheckpoints:
    """Checkpoints in a dict: for tests and for callers that do not need to resume."""

    def __init__(self) -> None:
        self.saved: dict[str, Checkpoint] = {}
        self.saves = 0
        self.current: Pass | None = None

    def load_pass(self) -> Pass | None:
        return self.current

    def save_pass(self, current: Pass) -> None:
        self.current = current

    def load(self, tenant: str) -> Checkpoint | None:
        return self.saved.get(tenant)

    def save(self, checkpoint: Checkpoint) -> None:
        self.saved[checkpoint.tenant] = checkpoint
        self.saves += 1

    def clear(self, tenant: str) -> None:
        self.saved.pop(tenant, None)

    def locked(self) -> AbstractContextManager[None]:
        return nullcontext()


class FileCheckpoints:
    """Checkpoints as JSON files under the state directory (layout in the module docstring).

    >>> import tempfile
    >>> cps = FileCheckpoints(tempfile.mkdtemp(), ("faiss", "./f"), ("chroma", "./c"))
    >>> cps.save(Checkpoint("acme", "pass-1", after="doc-9", processed=10))
    >>> cps.load("acme").after
    'doc-9'
    """

    def __init__(
        self, state_dir: str | Path, source: tuple[str, str], destination: tuple[str, str]
    ) -> None:
        self.source = source
        self.destination = destination
        key = "\0".join((*source, *destination)).encode("utf-8")
        pair = f"{source[0]}-to-{destination[0]}-{hashlib.sha256(key).hexdigest()[:12]}"
        self.directory = Path(state_dir) / "backfill" / pair

    def path(self, tenant: str) -> Path:
        suffix = hashlib.sha256(tenant.encode("utf-8")).hexdigest()[:8]
        return self.directory / f"{tenant}-{suffix}.json"

    def load_pass(self) -> Pass | None:
        path = self.directory / "pass.json"
        document = read_json(path)
        if document is None:
            return None
        try:
            scope = document["scope"]
            return Pass(
                id=str(document["id"]),
                scope=None if scope is None else tuple(str(t) for t in scope),
                started_at=float(document["started_at"]),
                complete=bool(document["complete"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(
                str(path), f"not a pass record this version reads ({exc}); delete it"
            ) from exc

    def save_pass(self, current: Pass) -> None:
        document = asdict(current)
        document["format"] = FORMAT
        document["scope"] = None if current.scope is None else list(current.scope)
        write_json_atomic(self.directory / "pass.json", document)

    def load(self, tenant: str) -> Checkpoint | None:
        path = self.path(tenant)
        document = read_json(path)
        if document is None:
            return None
        try:
            if document.get("format") != FORMAT or document.get("tenant") != tenant:
                raise ValueError("format or tenant does not match")
            return Checkpoint(
                tenant=tenant,
                pass_id=str(document.get("pass_id", "")),
                after=_optional_str(document["after"]),
                processed=int(document["processed"]),
                written=int(document["written"]),
                unchanged=int(document["unchanged"]),
                deleted=int(document["deleted"]),
                failed=int(document["failed"]),
                failed_ids=tuple(str(i) for i in document.get("failed_ids", ())),
                complete=bool(document["complete"]),
                updated_at=float(document["updated_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(
                str(path),
                f"not a checkpoint this version reads ({exc}); delete it or run backfill "
                "with --restart",
            ) from exc

    def save(self, checkpoint: Checkpoint) -> None:
        document: dict[str, Any] = {
            "format": FORMAT,
            "source": {"kind": self.source[0], "location": mask_secrets(self.source[1])},
            "destination": {
                "kind": self.destination[0],
                "location": mask_secrets(self.destination[1]),
            },
            **asdict(checkpoint),
        }
        document["failed_ids"] = list(checkpoint.failed_ids)
        write_json_atomic(self.path(checkpoint.tenant), document)

    def clear(self, tenant: str) -> None:
        try:
            self.path(tenant).unlink(missing_ok=True)
        except OSError as exc:
            raise StateError(str(self.path(tenant)), f"cannot delete ({exc})") from exc

    def locked(self) -> AbstractContextManager[None]:
        return exclusive_lock(self.directory / ".lock", "backfill between these stores")

    def tenants(self) -> Iterator[str]:
        """Tenants with a checkpoint file (for operators' tooling)."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*-*.json")):
            document = read_json(path)
            if document is not None and isinstance(document.get("tenant"), str):
                yield document["tenant"]


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("after must be a string or null")
    return value

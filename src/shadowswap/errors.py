"""The error tree of shadowswap: one root, shallow, every error carrying fields.

    ShadowswapError                 root: catch this to catch everything we raise
    ├── ConfigError                 a bad configuration value (variable, value, accepted)
    ├── InvalidInput                bad input from a caller (field, reason)
    │   ├── DimensionMismatch       a vector of the wrong length for the store
    │   └── BatchTooLarge           a dual write with more changes than may wait in the outbox
    ├── MissingDependency           a backend's extra is not installed (kind, extra)
    ├── WriteError                  a file could not be written (path); what was there is kept
    ├── Refused                     a rollout move was refused by a safety check (reasons)
    ├── StateError                  a state file (checkpoint, last result) cannot be used (path)
    └── StoreError                  a store operation failed (store, op, tenant)
        ├── StoreUnavailable        the store cannot be reached or refused service
        ├── StoreTimeout            the store did not answer in time
        ├── IncompatibleStore       the store exists but was built differently (metric, dimension)
        └── CorruptStore            a file of the store cannot be read (path)

Vendor exceptions never cross an adapter's edge: each adapter maps them to a `StoreError`
subclass with ``raise ... from exc``. Messages say what is wrong and how to fix it, and never
contain vectors, document text or metadata values.
"""

from __future__ import annotations


class ShadowswapError(Exception):
    """Root of every error shadowswap raises on purpose."""


class ConfigError(ShadowswapError):
    """A configuration value is not accepted. The CLI exits with code 2."""

    def __init__(self, variable: str, value: str, accepted: str, source: str = "") -> None:
        self.variable = variable
        self.value = value
        self.accepted = accepted
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"{variable}={value!r}{where} is not accepted: {accepted}")


class ConfigErrors(ConfigError):
    """Several configuration values are wrong at once; all of them are reported."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.variable, first.value, first.accepted, first.source)
        self.errors = errors
        Exception.__init__(self, "\n".join(str(e) for e in errors))


class InvalidInput(ShadowswapError):
    """Input from a caller is not acceptable; ``field`` names the part that is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class DimensionMismatch(InvalidInput):
    """A vector's length differs from the dimension the store holds."""

    def __init__(self, field: str, expected: int, got: int, store: str = "") -> None:
        self.expected = expected
        self.got = got
        held = f"store {store!r} holds" if store else "the store holds"
        super().__init__(
            field,
            f"vector has {got} dimensions but {held} {expected}-dimensional vectors; "
            "embed with the same model as the stored documents",
        )


class BatchTooLarge(InvalidInput):
    """A dual write has more changes than one tenant may ever hold in the outbox
    (``RETRIEVAL_DUAL_WRITE_OUTBOX_MAX`` minus one tenant share): refused whole, before
    anything was written. The limit depends on the settings only, so the same batch is
    refused again: split it."""

    def __init__(self, field: str, changes: int, limit: int, capacity: int, share: int) -> None:
        self.changes = changes
        self.limit = limit
        self.capacity = capacity
        self.share = share
        super().__init__(
            field,
            f"{changes} changes in one dual write, but at most {limit} may wait in the outbox "
            f"for one tenant (RETRIEVAL_DUAL_WRITE_OUTBOX_MAX={capacity} minus one tenant "
            f"share of {share}); nothing was written: send them in batches of at most "
            f"{limit}, or raise RETRIEVAL_DUAL_WRITE_OUTBOX_MAX",
        )


class MissingDependency(ShadowswapError):
    """A backend was chosen whose client library is not installed."""

    def __init__(self, kind: str, extra: str, module: str) -> None:
        self.kind = kind
        self.extra = extra
        self.module = module
        super().__init__(
            f"backend {kind!r} needs the Python module {module!r}, which is not installed; "
            f"install it with: pip install 'shadowswap[{extra}]'"
        )


class StoreError(ShadowswapError):
    """A store operation failed. ``store`` is the kind, ``op`` the operation."""

    def __init__(self, store: str, op: str, detail: str, tenant: str | None = None) -> None:
        self.store = store
        self.op = op
        self.tenant = tenant
        self.detail = detail
        who = f" for tenant {tenant!r}" if tenant else ""
        super().__init__(f"{store} {op}{who} failed: {detail}")


class StoreUnavailable(StoreError):
    """The store cannot be reached (connection refused, server down, auth refused)."""


class StoreTimeout(StoreError):
    """The store did not answer within its deadline."""


class IncompatibleStore(StoreError):
    """The store exists but was created with other settings (metric, dimension, format)."""


class CorruptStore(StoreError):
    """A file that belongs to the store cannot be read."""

    def __init__(self, store: str, op: str, path: str, detail: str) -> None:
        self.path = path
        super().__init__(store, op, f"{path}: {detail}")


class WriteError(ShadowswapError):
    """A file shadowswap writes (an env file, its backup, the journal) could not be written;
    whatever was there before is left as it was. The CLI exits with code 1."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"cannot write {path}: {detail}")


class Refused(ShadowswapError):
    """A rollout move was refused by a safety check; ``reasons`` say why and what to do."""

    def __init__(self, action: str, reasons: list[str]) -> None:
        self.action = action
        self.reasons = reasons
        super().__init__(f"{action} refused: " + "; ".join(reasons))


class StateError(ShadowswapError):
    """A state file under ``RETRIEVAL_STATE_DIR`` (checkpoint, last reconcile result, lock)
    cannot be read, written or taken. The CLI exits with code 1."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {detail}")

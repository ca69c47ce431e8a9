"""Log fields of the write path that are safe to log: errors named without content.

Our errors' messages never hold document content (they name stores, operations, tenants);
anything else (a vendor's exception) may, so it is named by its type only.
"""

from __future__ import annotations

from shadowswap.errors import ShadowswapError


def describe(exc: BaseException) -> str:
    """One line for an error: its message when it is ours, else its type only."""
    return (
        f"{type(exc).__name__}: {exc}" if isinstance(exc, ShadowswapError) else type(exc).__name__
    )


def error_fields(exc: BaseException) -> dict[str, object]:
    """``error`` (the type) and ``detail`` (our message, else empty) for a log line."""
    detail = str(exc)[:300] if isinstance(exc, ShadowswapError) else ""
    return {"error": type(exc).__name__, "detail": detail}

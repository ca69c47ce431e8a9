"""Every error the service answers is one JSON shape, with a message that says what is wrong:

    {"error": "invalid_input", "detail": "vector: component 3 is not a finite number ...",
     "field": "vector", "trace_id": "4bf92f35...", "errors": [{"field": ..., "message": ...}]}

``detail`` holds the message (the name FastAPI and the rollback smoke test read), ``error`` a
stable code for programs, ``field`` the part of the request at fault when there is one,
``errors`` every problem found when pydantic found several. Nothing of the request's content
is echoed (no vector, text, metadata value): only field names and rules.

Mapping (docs/service.md has the table):

=====  ======================  ====================================================
400    invalid_json            the body is not JSON
401    unauthorized            no key, an unknown key, a malformed header
403    forbidden               the key may not use that tenant / read the status
404    not_found               no such endpoint
405    method_not_allowed      wrong method
413    body_too_large          body over RETRIEVAL_MAX_BODY_BYTES
413    batch_too_large         a dual write with more changes than may wait in the
                               outbox for one tenant (split it; no ``Retry-After``:
                               the limit is static, the same batch is refused again)
415    unsupported_media_type  the body is not ``application/json``
422    invalid_input           a field breaks a rule; dimension_mismatch for vectors
503    backend_unavailable     the backend that must answer failed or missed its
                               deadline (``Retry-After``); misconfigured when the
                               settings ask for a store this process did not open
500    internal_error          a bug: logged with the trace id, never expected
=====  ======================  ====================================================
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from shadowswap.errors import (
    BatchTooLarge,
    ConfigError,
    DimensionMismatch,
    InvalidInput,
    ShadowswapError,
    StoreError,
)
from shadowswap.service.auth import AuthError
from shadowswap.values import MAX_DIMENSION

log = logging.getLogger("shadowswap.service")

RETRY_AFTER_S = 1
_TENANT_RULE = "expected 1 to 64 characters from A-Z a-z 0-9 _ -"
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class JsonResponse(Response):
    """A JSON response rendered with the standard library, compact, strict about NaN."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


def error_body(
    code: str,
    detail: str,
    trace_id: str | None,
    field: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = list(errors)
    body["trace_id"] = trace_id
    return body


def error_response(
    status: int,
    code: str,
    detail: str,
    trace_id: str | None,
    *,
    field: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JsonResponse:
    return JsonResponse(
        error_body(code, detail, trace_id, field, errors), status_code=status, headers=headers
    )


def _trace_id(request: Request) -> str | None:
    return getattr(request.state, "trace_id", None)


# -- the handlers ---------------------------------------------------------------------------
def on_auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    headers: dict[str, str] | None = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="shadowswap"'}
    elif exc.status == 503:  # the keys file is not trusted (auth.KeyRing)
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    return error_response(exc.status, exc.code, exc.detail, _trace_id(request), headers=headers)


def on_shadowswap_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ShadowswapError)
    status, code, headers = classify(exc)
    field = exc.field if isinstance(exc, InvalidInput) else None
    if status >= 500:
        log.warning(
            "request failed: backend unavailable" if code != "misconfigured" else str(exc),
            extra={"error": type(exc).__name__, "status": status, "detail": _safe(exc)},
        )
    return error_response(status, code, str(exc), _trace_id(request), field=field, headers=headers)


def classify(exc: ShadowswapError) -> tuple[int, str, dict[str, str] | None]:
    """Status, code and headers for one of shadowswap's errors."""
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    if isinstance(exc, DimensionMismatch):
        return 422, "dimension_mismatch", None
    if isinstance(exc, BatchTooLarge):
        return 413, "batch_too_large", None
    if isinstance(exc, InvalidInput):
        return 422, "invalid_input", None
    if isinstance(exc, StoreError):
        return 503, "backend_unavailable", retry
    if isinstance(exc, ConfigError):
        return 503, "misconfigured", retry
    return 503, "unavailable", retry


def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    status, code, problems = describe_validation(exc.errors())
    first = problems[0]
    extra = len(problems) - 1
    more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
    return error_response(
        status,
        code,
        first["message"] + more,
        _trace_id(request),
        field=first["field"] or None,
        errors=problems if len(problems) > 1 else None,
    )


def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    if exc.status_code == 404:
        detail = f"no endpoint {request.method} {request.url.path}; the API is described at /docs"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    else:
        detail = str(exc.detail)
    return error_response(
        exc.status_code, code, detail, _trace_id(request), headers=dict(exc.headers or {})
    )


# -- pydantic's errors, made readable --------------------------------------------------------
def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "documents", 0, "vector", 3)`` -> ``documents[0].vector[3]``."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe_validation(errors: Sequence[Any]) -> tuple[int, str, list[dict[str, str]]]:
    """(status, code, [{"field", "message"}]) for FastAPI's validation errors."""
    problems: list[dict[str, str]] = []
    status, code = 422, "invalid_input"
    for err in errors:
        kind = str(err.get("type", ""))
        loc = tuple(err.get("loc", ()))
        path = field_path(loc)
        if kind == "json_invalid":
            ctx = err.get("ctx") or {}
            reason = str(ctx.get("error", "invalid JSON"))
            return 400, "invalid_json", [{"field": "", "message": f"the body is not valid JSON: "
                                          f"{reason} (at character {loc[-1]})"}]  # fmt: skip
        problems.append({"field": path, "message": _message(kind, path, err)})
    return status, code, problems or [{"field": "", "message": "the request is not valid"}]


def _message(kind: str, path: str, err: Mapping[str, Any]) -> str:  # noqa: PLR0911 - one return per rule
    msg = str(err.get("msg", "is not valid"))
    ctx = err.get("ctx") or {}
    name = path or "body"
    if path == "" and kind in ("missing", "model_attributes_type", "dict_type"):
        return "the body must be a JSON object (Content-Type: application/json)"
    if kind == "missing":
        return f"{name}: this field is required"
    if kind == "extra_forbidden":
        return f"{name}: unknown field (check its spelling; see /docs for the request schema)"
    if kind == "finite_number":
        return f"{name}: must be a finite number (NaN and Infinity are not accepted)"
    if kind == "string_pattern_mismatch" and path.rsplit(".", 1)[-1] == "tenant":
        return f"{name}: {_TENANT_RULE}"
    if path == "k" and kind in ("int_type", "greater_than_equal", "less_than_equal", "int_parsing"):
        return f"k: expected an integer from 1 to {ctx.get('le', 1000)}"
    if kind in ("too_short", "too_long") and path.endswith("vector"):
        return f"{name}: expected 1 to {MAX_DIMENSION} numbers"
    return f"{name}: {msg[0].lower() + msg[1:] if msg else 'is not valid'}"


# -- the unexpected ---------------------------------------------------------------------------
def where(exc: BaseException) -> str:
    """``module.py:123`` of the innermost frame: enough to find a bug, no values."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


def _safe(exc: ShadowswapError) -> str:
    # our messages never carry content (errors.py's rule); kept short for the log line
    text = str(exc)
    return text if len(text) <= 300 else text[:297] + "..."

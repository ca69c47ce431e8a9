"""The HTTP gateway's application: CONTRACT §4's endpoints over one `Runtime`.

`create_app` holds no module-level state: everything a request needs (router, dual writer,
stores, metrics registry, key ring) is passed in and captured by the routes, so a test can
build as many apps as it likes, each over its own stores.

Handlers are plain ``def`` (STYLE 9): the core is synchronous, Starlette runs each handler on
its thread pool, and the router bounds every read by ``RETRIEVAL_READ_TIMEOUT_MS`` on its own
bulkheads. ``/healthz`` alone is ``async``: liveness must answer even when every pool thread
is busy, and it touches nothing that blocks.

Writes have no deadline of their own: a write abandoned at a deadline could still land after
a later write of the same document and undo it. They are bounded by the adapters' own
timeouts (10 s for a Chroma server), and run in fair write slots (`shadowswap.fairness`):
at most ``RETRIEVAL_WRITE_SLOTS`` at once, so a hung primary cannot take every thread and
starve reads, and at most ``RETRIEVAL_WRITE_SLOTS_PER_TENANT`` of one tenant, whose excess
waits in its own queue; only a write that waits past ``RETRIEVAL_WRITE_QUEUE_TIMEOUT_MS`` (or
finds its tenant's queue full) gets 503, so one tenant's flood never costs another its writes.

>>> from shadowswap.settings.config import StaticSettings, load_settings
>>> from shadowswap.runtime import build_runtime
>>> from shadowswap.service.auth import OPEN
>>> rt = build_runtime(StaticSettings(load_settings(environ={"RETRIEVAL_BACKEND": "memory",
...     names.RETRIEVAL_DUAL_WRITE_OUTBOX_URL: ":memory:"})))  # doctest: +SKIP
>>> app = create_app(rt, auth=OPEN)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException
from starlette.responses import Response

from shadowswap import __version__
from shadowswap.dualwrite.writer import WriteResult
from shadowswap.errors import InvalidInput, ShadowswapError, StoreUnavailable
from shadowswap.fairness import FairSlots, SlotBusy
from shadowswap.runtime import Runtime
from shadowswap.service import errors as handlers
from shadowswap.service.auth import (
    Authenticator,
    AuthError,
    Principal,
    require_status,
    require_tenant,
)
from shadowswap.service.errors import JsonResponse, error_response
from shadowswap.service.middleware import GatewayMiddleware
from shadowswap.service.models import (
    DeleteRequest,
    DeleteResponse,
    DocumentIn,
    ErrorResponse,
    Health,
    SearchRequest,
    SearchResponse,
    UpsertRequest,
    UpsertResponse,
)
from shadowswap.service.routing import JsonBodyRoute
from shadowswap.service.status import StatusReporter
from shadowswap.settings.live import EnvFileSettings
from shadowswap.values import Document, Query, to_vector

log = logging.getLogger("shadowswap.service")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "The body is not valid JSON."),
        (401, "No API key, or an unknown one."),
        (403, "The API key may not use this tenant."),
        (413, "The body is larger than RETRIEVAL_MAX_BODY_BYTES."),
        (415, "The body is not application/json."),
        (422, "A field breaks a rule; `detail` says which and how."),
        (503, "The backend that must answer is unavailable; retry after `Retry-After`."),
    )
}
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def create_app(
    runtime: Runtime,
    *,
    auth: Authenticator,
    max_body_bytes: int | None = None,
    env_source: EnvFileSettings | None = None,
    registry_for_metrics: Callable[[], CollectorRegistry] | None = None,
    close_runtime: bool = False,
) -> FastAPI:
    """The gateway over ``runtime``.

    ``auth`` checks API keys (`shadowswap.service.auth.KeyRing`, or ``OPEN`` with
    ``RETRIEVAL_AUTH=OFF``). ``max_body_bytes`` defaults to ``RETRIEVAL_MAX_BODY_BYTES``.
    ``env_source`` is the live settings source when there is one (shown on the status page).
    ``registry_for_metrics`` gives the registry ``/metrics`` exposes (default: the runtime's;
    several workers pass one that gathers every worker's values). With ``close_runtime`` the
    app closes the runtime when it shuts down (uvicorn workers, which build their own).
    """
    reporter = StatusReporter(runtime, auth_enabled=auth.enabled)
    writes = write_slots(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        reporter.close()
        if close_runtime:
            runtime.close()
            if env_source is not None:
                env_source.close()

    app = FastAPI(
        title="shadowswap retrieval gateway",
        version=__version__,
        description="Search, upsert and delete over the configured vector stores, with shadow "
        "reads, dual writes and cutover decided by the rollout flags (docs/service.md).",
        lifespan=lifespan,
    )
    app.router.route_class = JsonBodyRoute
    app.state.write_slots = writes  # for tests and benchmarks: `FairSlots.snapshot`
    limit = max_body_bytes or runtime.settings.current().max_body_bytes
    app.add_middleware(GatewayMiddleware, auth=auth, max_body_bytes=limit)
    app.add_exception_handler(AuthError, handlers.on_auth_error)
    app.add_exception_handler(ShadowswapError, handlers.on_shadowswap_error)
    app.add_exception_handler(RequestValidationError, handlers.on_validation_error)
    app.add_exception_handler(HTTPException, handlers.on_http_error)

    # -- data endpoints ----------------------------------------------------------------------
    @app.post(
        "/internal/retrieval/search",
        response_model=None,
        responses={200: {"model": SearchResponse}, **_ERRORS},
        openapi_extra={"security": _SECURITY},
        summary="Search a tenant's documents (served by the backend the flags choose).",
    )
    def search(body: SearchRequest, request: Request) -> Response:
        principal = _enter(request, body.tenant)
        require_tenant(principal, body.tenant)
        # the shape was checked by pydantic, the rules are checked here, once (an empty
        # filter is no filter, as in `Router.search`)
        query = Query(body.tenant, body.vector, body.k, body.filter or None)
        result = runtime.router.search_query(query, trace_id=request.state.trace_id)
        hits = [
            {"doc_id": h.doc_id, "score": float(h.score), "metadata": dict(h.metadata)}
            for h in result.hits
        ]
        return JsonResponse(
            {
                "hits": hits,
                "backend": result.backend,
                "trace_id": result.trace_id,
                "fallback": result.fallback,
            }
        )

    @app.post(
        "/internal/retrieval/upsert",
        response_model=None,
        responses={200: {"model": UpsertResponse}, **_ERRORS},
        openapi_extra={"security": _SECURITY},
        summary="Insert or replace documents; dual write carries them to the other backend.",
    )
    def upsert(body: UpsertRequest, request: Request) -> Response:
        principal = _enter(request, body.tenant)
        require_tenant(principal, body.tenant)
        documents = [_document(body.tenant, i, d) for i, d in enumerate(body.documents)]
        result = _bounded(
            writes,
            body.tenant,
            lambda: runtime.writer.upsert(body.tenant, documents, request.state.trace_id),
        )
        return JsonResponse(
            {
                "tenant": result.tenant,
                "backend": result.sync,
                "written": result.written,
                "unchanged": result.unchanged,
                "dual_write": _dual(result),
                "trace_id": request.state.trace_id,
            }
        )

    @app.post(
        "/internal/retrieval/delete",
        response_model=None,
        responses={200: {"model": DeleteResponse}, **_ERRORS},
        openapi_extra={"security": _SECURITY},
        summary="Delete documents by id; deletes travel to the other backend like upserts.",
    )
    def delete(body: DeleteRequest, request: Request) -> Response:
        principal = _enter(request, body.tenant)
        require_tenant(principal, body.tenant)
        result = _bounded(
            writes,
            body.tenant,
            lambda: runtime.writer.delete(body.tenant, body.doc_ids, request.state.trace_id),
        )
        return JsonResponse(
            {
                "tenant": result.tenant,
                "backend": result.sync,
                "deleted": result.written,
                "dual_write": _dual(result),
                "trace_id": request.state.trace_id,
            }
        )

    # -- operations ----------------------------------------------------------------------------
    @app.get(
        "/internal/retrieval/status",
        response_model=None,
        responses={
            200: {"description": "Phase, flags, backends, breaker, outbox, reconcile."},
            401: _ERRORS[401],
            403: _ERRORS[403],
        },
        openapi_extra={"security": _SECURITY},
        summary="Where the migration stands (needs a key with status permission).",
    )
    def status(request: Request) -> Response:
        require_status(_principal(request))
        document = reporter.document(env_source)
        document["trace_id"] = request.state.trace_id
        return JsonResponse(document)

    @app.get("/healthz", response_model=Health, summary="Liveness: the process answers.")
    async def healthz() -> Response:
        return JsonResponse({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=None,
        responses={200: {"model": Health}, 503: {"model": ErrorResponse}},
        summary="Readiness: the primary backend answers within the read deadline.",
    )
    def readyz(request: Request) -> Response:
        ok, kind, detail = reporter.ready()
        if ok:
            return JsonResponse({"status": "ready", "detail": f"{kind}: {detail}"})
        return error_response(
            503,
            "not_ready",
            f"primary {kind} is not reachable: {detail}",
            request.state.trace_id,
            headers={"Retry-After": str(handlers.RETRY_AFTER_S)},
        )

    @app.get(
        "/metrics",
        response_model=None,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition."}},
        summary="Prometheus exposition of the CONTRACT §2 metrics.",
    )
    def metrics() -> Response:
        registry = registry_for_metrics() if registry_for_metrics else runtime.registry
        body = generate_latest(registry) if registry is not None else b""
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    _document_security(app)
    return app


# -- helpers ------------------------------------------------------------------------------------
def _principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):  # the middleware always sets it on these paths
        raise AuthError(401, "unauthorized", "an API key is required")
    return principal


def _enter(request: Request, tenant: str) -> Principal:
    """Record the tenant for the access log, then return the caller."""
    request.state.tenant = tenant
    return _principal(request)


def _document(tenant: str, index: int, doc: DocumentIn) -> Document:
    try:
        vector = to_vector(doc.vector)
        return Document(tenant, doc.doc_id, vector, doc.metadata or {}, doc.text)
    except InvalidInput as exc:
        raise InvalidInput(f"documents[{index}].{exc.field}", exc.reason) from None


def write_slots(runtime: Runtime) -> FairSlots:
    """The app's write slots, from the settings at start (a change needs a restart)."""
    settings = runtime.settings.current()
    return FairSlots(
        total=settings.write_slots,
        per_tenant=settings.write_slots_per_tenant,
        max_waiting=settings.write_queue_max,
        wait_s=settings.write_queue_timeout_ms / 1000,
    )


def _bounded(writes: FairSlots, tenant: str, call: Callable[[], WriteResult]) -> WriteResult:
    try:
        writes.acquire(tenant)
    except SlotBusy as busy:
        log.warning(
            "write refused: no write slot for this tenant in time",
            extra={"event": "write_slot_busy", "tenant": tenant},
        )
        raise StoreUnavailable(
            "service",
            "write",
            f"tenant {tenant} has too many writes in flight ({busy.reason}; see "
            "RETRIEVAL_WRITE_SLOTS_PER_TENANT, RETRIEVAL_WRITE_QUEUE_TIMEOUT_MS); retry later",
        ) from None
    try:
        return call()
    finally:
        writes.release(tenant)


def _dual(result: WriteResult) -> dict[str, Any] | None:
    if result.deferred is None:
        return None
    return {
        "backend": result.deferred,
        "outcome": result.outcome,
        "queued": result.queued,
        "dropped": result.dropped,
    }


def _document_security(app: FastAPI) -> None:
    """Declare the two ways to send a key in the OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

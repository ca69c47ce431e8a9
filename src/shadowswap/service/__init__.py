"""The HTTP gateway (``shadowswap serve``, CONTRACT §4): search, upsert and delete over the
runtime's router and dual writer, with API keys bound to tenants, W3C trace ids, JSON access
logs, a status page and Prometheus metrics. See docs/service.md.

Layout: `app` (the endpoints, `create_app`), `models` (request/response bodies), `auth` and
`keys` (API keys and the keys file), `middleware` (trace id, key check, body limit, access
log), `errors` (one JSON error shape), `tracing` (traceparent, log context), `status`
(status page, readiness), `server` (start-up, uvicorn, workers).

The package imports nothing eagerly, so the CLI loads FastAPI only for ``serve``; build an
app with ``shadowswap.service.app.create_app``.

May import the runtime, the control plane (`shadowswap.rollout`: the phase on the status
page), `shadowswap.sync` (the last reconcile), stores, settings and the foundation; only the
CLI imports it.
"""

"""A small client for the Prometheus HTTP API: the one place shadowswap queries Prometheus.

The gate reads evidence with instant queries (``/api/v1/query``) and the thresholds command
pulls baselines with range queries (``/api/v1/query_range``). Both go through `Prometheus`,
which maps the transport's failures at this edge: a server that cannot be reached raises
`StoreUnavailable` (``prometheus``, the operation), an answer that is not a success raises
`QueryRefused` carrying Prometheus's own error text, which each caller words for its command.

>>> with Prometheus("http://prometheus:9090") as prom:  # doctest: +SKIP
...     prom.query("up", at=time.time())
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from shadowswap.errors import ShadowswapError, StoreUnavailable


class QueryRefused(ShadowswapError):
    """Prometheus answered, but not with a success. ``error`` is its error text (or the HTTP
    status when it gave none; ``None`` when the answer was JSON but not an object)."""

    def __init__(self, url: str, query: str, status_code: int, error: object) -> None:
        shown = status_code if error is None else error
        super().__init__(f"Prometheus at {url} refused {query!r}: {shown}")
        self.query = query
        self.status_code = status_code
        self.error = error


class Prometheus:
    """The HTTP API of one Prometheus server. Pass ``client`` to share (or mock) a transport;
    without one, the instance makes its own with ``timeout_s`` and closes it on `close`."""

    def __init__(
        self, url: str, *, client: httpx.Client | None = None, timeout_s: float = 30.0
    ) -> None:
        self.url = url
        self._owned = client is None
        self._http = client or httpx.Client(timeout=timeout_s)

    def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        """The ``result`` list of an instant query evaluated at ``at`` (epoch seconds)."""
        return self._get("/api/v1/query", "query", {"query": promql, "time": at})

    def query_range(
        self, promql: str, *, start: float, end: float, step_s: float
    ) -> list[dict[str, Any]]:
        """The ``result`` list (matrix) of a range query."""
        params = {"query": promql, "start": start, "end": end, "step": step_s}
        return self._get("/api/v1/query_range", "query_range", params)

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _get(self, path: str, op: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            resp = self._http.get(self.url.rstrip("/") + path, params=params)
        except httpx.HTTPError as exc:
            raise StoreUnavailable("prometheus", op, f"{self.url}: {exc}") from exc
        try:
            body = resp.json()
        except ValueError:
            body = {"error": f"HTTP {resp.status_code}, not JSON"}
        if not isinstance(body, dict):
            raise QueryRefused(self.url, params["query"], resp.status_code, None)
        if resp.status_code != 200 or body.get("status") != "success":
            error = body.get("error", resp.status_code)
            raise QueryRefused(self.url, params["query"], resp.status_code, error)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

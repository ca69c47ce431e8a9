"""The smoke test a rollback ends with (runbook 002, step 5): is the service answering, and
from which backend?

Against the service's contract (CONTRACT §4): ``GET /healthz`` must answer 200, then one
``POST /internal/retrieval/search`` with ``{"tenant", "vector", "k": 1}`` must answer 200 with
a ``hits`` list and the ``backend`` that served it. After ``--apply`` the search is repeated
(every 0.5 s, up to ``wait_s``) until ``backend`` is the one the rollback chose, since a service
that follows its env file switches within a few seconds; if it never does, the service does not
follow the file and must be restarted, which the result says. The query is a unit vector of
``dimension`` components (use your embeddings' dimension) for a tenant that may hold nothing:
what is checked is the answer's shape and backend, not its hits.

With ``RETRIEVAL_AUTH=ON`` the service wants an API key: pass a file holding it
(``--smoke-api-key-file``); it is sent as ``Authorization: Bearer <key>`` and never logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from shadowswap.clock import Clock, SystemClock


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke test saw; ``detail`` is one line for the journal."""

    ok: bool
    detail: str
    healthz_status: int | None = None
    search_status: int | None = None
    backend: str | None = None
    hits: int | None = None
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "healthz_status": self.healthz_status,
            "search_status": self.search_status,
            "backend": self.backend,
            "hits": self.hits,
            "duration_s": self.duration_s,
        }


class SmokeTest(Protocol):
    """Checks a running service; ``expect_backend`` (or None) is the backend reads must come
    from, waited for up to the test's patience."""

    def run(self, expect_backend: str | None) -> SmokeResult: ...


class HttpSmokeTest:
    """The smoke test over HTTP with httpx (module doc)."""

    def __init__(
        self,
        url: str,
        *,
        tenant: str = "smoke",
        dimension: int = 384,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        wait_s: float = 10.0,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._tenant = tenant
        self._dimension = dimension
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_s
        self._wait = wait_s
        self._clock = clock or SystemClock()
        self._transport = transport

    def run(self, expect_backend: str | None) -> SmokeResult:
        start = time.perf_counter()
        try:
            with httpx.Client(
                base_url=self._url,
                timeout=self._timeout,
                headers=self._headers,
                transport=self._transport,
            ) as client:
                result = self._check(client, expect_backend)
        except httpx.HTTPError as exc:
            result = SmokeResult(False, f"{self._url} unreachable ({type(exc).__name__}: {exc})")
        return SmokeResult(
            result.ok,
            result.detail,
            result.healthz_status,
            result.search_status,
            result.backend,
            result.hits,
            round(time.perf_counter() - start, 3),
        )

    def _check(self, client: httpx.Client, expect: str | None) -> SmokeResult:
        health = client.get("/healthz")
        if health.status_code != 200:
            return SmokeResult(
                False, f"GET /healthz answered {health.status_code}", health.status_code
            )
        deadline = self._clock.monotonic() + (self._wait if expect else 0.0)
        vector = [1.0] + [0.0] * (self._dimension - 1)
        body = {"tenant": self._tenant, "vector": vector, "k": 1}
        while True:
            response = client.post("/internal/retrieval/search", json=body)
            status = response.status_code
            if status != 200:
                return SmokeResult(
                    False,
                    f"POST /internal/retrieval/search answered {status}: {_message(response)}",
                    200,
                    status,
                )
            document = _json(response)
            hits, backend = document.get("hits"), document.get("backend")
            if not isinstance(hits, list) or not isinstance(backend, str):
                return SmokeResult(
                    False, "search answer lacks `hits` (list) or `backend` (text)", 200, status
                )
            if expect is None or backend == expect:
                return SmokeResult(
                    True,
                    f"healthz 200, search 200 from {backend} ({len(hits)} hits)",
                    200,
                    status,
                    backend,
                    len(hits),
                )
            if self._clock.monotonic() >= deadline:
                return SmokeResult(
                    False,
                    f"search still served by {backend}, not {expect}, after {self._wait:g} s: "
                    "the service does not follow the env file; restart it",
                    200,
                    status,
                    backend,
                    len(hits),
                )
            self._clock.sleep(0.5)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _message(response: httpx.Response) -> str:
    document = _json(response)
    detail = document.get("detail") or document.get("error") or response.text[:200]
    return str(detail).replace("\n", " ")

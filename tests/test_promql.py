"""The one Prometheus client: results, and failures mapped at the edge."""

from __future__ import annotations

import httpx
import pytest

from shadowswap.errors import ShadowswapError, StoreUnavailable
from shadowswap.promql import Prometheus, QueryRefused

RESULT = [{"metric": {"le": "0.1"}, "value": [1.0, "3"]}]


def _client(handler: object) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_instant_and_range_queries_send_the_api_parameters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "success", "data": {"result": RESULT}})

    with Prometheus("http://prom:9090/", client=_client(handler)) as prom:
        assert prom.query("up", at=12.5) == RESULT
        assert prom.query_range("up", start=1.0, end=2.0, step_s=60) == RESULT
    assert seen[0].url.path == "/api/v1/query"
    assert dict(seen[0].url.params) == {"query": "up", "time": "12.5"}
    assert seen[1].url.path == "/api/v1/query_range"
    assert dict(seen[1].url.params) == {"query": "up", "start": "1.0", "end": "2.0", "step": "60"}


@pytest.mark.parametrize(
    ("response", "error", "shown"),
    [
        (httpx.Response(400, json={"status": "error", "error": "parse error"}), "parse error",
         "parse error"),
        (httpx.Response(503, text="down"), "HTTP 503, not JSON", "HTTP 503, not JSON"),
        (httpx.Response(500, json={"status": "error"}), 500, "500"),
        (httpx.Response(200, json=["odd"]), None, "200"),
    ],
)  # fmt: skip
def test_refusals_carry_prometheus_error(
    response: httpx.Response, error: object, shown: str
) -> None:
    prom = Prometheus("http://prom:9090", client=_client(lambda _r: response))
    with pytest.raises(QueryRefused) as refused:
        prom.query("up", at=0)
    assert refused.value.error == error and isinstance(refused.value, ShadowswapError)
    assert str(refused.value) == f"Prometheus at http://prom:9090 refused 'up': {shown}"


def test_an_unreachable_server_is_store_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    prom = Prometheus("http://prom:9090", client=_client(handler))
    with pytest.raises(StoreUnavailable, match="http://prom:9090"):
        prom.query_range("up", start=0, end=1, step_s=1)


def test_a_given_client_is_not_closed() -> None:
    client = _client(lambda _r: httpx.Response(200, json={}))
    Prometheus("http://prom", client=client).close()
    assert not client.is_closed

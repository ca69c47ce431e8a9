"""W3C traceparent: valid headers are honoured, invalid ones replaced by a fresh id; the id is
in the body, in both response headers and in every log line written for the request."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from shadowswap.service.tracing import (
    RequestContextFilter,
    install_context_filter,
    parse_traceparent,
    trace_id_var,
)
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing.faults import FailingStore
from tests.service.conftest import Gateway

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
VALID = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("header", "trace"),
    [
        (VALID, TRACE),
        (f"  {VALID} ", TRACE),
        (f"00-{TRACE}-00f067aa0ba902b7-00", TRACE),
        (f"01-{TRACE}-00f067aa0ba902b7-01-later-fields", TRACE),  # a future version
        (f"00-{TRACE}-00f067aa0ba902b7-01-extra", None),  # version 00 has exactly 4 fields
        (f"ff-{TRACE}-00f067aa0ba902b7-01", None),
        (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", None),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE[:-1]}-00f067aa0ba902b7-01", None),
        (f"00_{TRACE}_00f067aa0ba902b7_01", None),
        ("", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_parse_traceparent(header: str | None, trace: str | None) -> None:
    parsed = parse_traceparent(header)
    assert (parsed.trace_id if parsed else None) == trace


def test_the_trace_id_is_honoured_and_returned(gateway: Gateway) -> None:
    r = gateway.post("search", {"tenant": "tenant-a", "vector": [1, 0], "k": 1},
                     headers={"traceparent": VALID})  # fmt: skip
    assert r.status_code == 200
    assert r.json()["trace_id"] == TRACE == r.headers["x-trace-id"]
    version, trace, span, flags = r.headers["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01")
    assert span != "00f067aa0ba902b7" and len(span) == 16  # the service's own span


def test_an_invalid_traceparent_gets_a_fresh_id_not_an_error(gateway: Gateway) -> None:
    r = gateway.post("search", {"tenant": "tenant-a", "vector": [1, 0], "k": 1},
                     headers={"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"})  # fmt: skip
    assert r.status_code == 200
    fresh = r.json()["trace_id"]
    assert len(fresh) == 32 and fresh != "0" * 32 and fresh == r.headers["x-trace-id"]
    other = gateway.post("search", {"tenant": "tenant-a", "vector": [1, 0], "k": 1}).json()
    assert other["trace_id"] != fresh


def test_errors_carry_the_trace_id_too(gateway: Gateway) -> None:
    r = gateway.post("search", {"tenant": "tenant-a", "vector": [], "k": 1},
                     headers={"traceparent": VALID})  # fmt: skip
    assert r.status_code == 422 and r.json()["trace_id"] == TRACE == r.headers["x-trace-id"]
    unauthorized = gateway.post("search", {}, key=None, headers={"traceparent": VALID})
    assert unauthorized.status_code == 401 and unauthorized.json()["trace_id"] == TRACE


def test_every_log_line_of_a_request_carries_its_trace_id_and_tenant(
    gateway_factory: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    inner = FaissStore(str(tmp_path / "down"))
    gw = gateway_factory(primary=FailingStore(inner))
    root = logging.getLogger()
    with caplog.at_level(logging.DEBUG, logger="shadowswap"):
        install_context_filter(root)
        r = gw.post("search", {"tenant": "tenant-a", "vector": [1, 0], "k": 1},
                    headers={"traceparent": VALID})  # fmt: skip
    assert r.status_code == 503
    lines = [rec for rec in caplog.records if rec.name.startswith("shadowswap")]
    names = {rec.name for rec in lines}
    assert {"shadowswap.router", "shadowswap.service", "shadowswap.service.access"} <= names
    for rec in lines:
        assert getattr(rec, "trace_id", None) == TRACE, (rec.name, rec.getMessage())
    access = [rec for rec in lines if rec.name == "shadowswap.service.access"]
    assert [getattr(rec, "tenant", None) for rec in access] == ["tenant-a"]
    assert [getattr(rec, "status", None) for rec in access] == [503]
    for handler in root.handlers:
        handler.filters[:] = [f for f in handler.filters if not isinstance(f, RequestContextFilter)]
    inner.close()


def test_the_filter_keeps_a_records_own_ids() -> None:
    record = logging.LogRecord("shadowswap.x", logging.INFO, "", 0, "m", (), None)
    record.trace_id = "own"
    token = trace_id_var.set("context")
    try:
        RequestContextFilter().filter(record)
        bare = logging.LogRecord("shadowswap.x", logging.INFO, "", 0, "m", (), None)
        RequestContextFilter().filter(bare)
    finally:
        trace_id_var.reset(token)
    assert record.trace_id == "own" and bare.trace_id == "context"  # type: ignore[attr-defined]

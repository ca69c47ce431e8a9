"""The one home of trace ids: W3C shapes for fresh ids, the caller's ids checked."""

from __future__ import annotations

import re

import pytest

from shadowswap import traceids
from shadowswap.errors import InvalidInput
from shadowswap.read.router import new_trace_id as router_new_trace_id


def test_fresh_ids_have_the_w3c_shape() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", traceids.new_trace_id())
    assert re.fullmatch(r"[0-9a-f]{16}", traceids.new_span_id())
    assert traceids.new_trace_id() != traceids.new_trace_id()


def test_all_zero_ids_are_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([bytes(16), b"\x01" * 16, bytes(8), b"\x02" * 8])
    monkeypatch.setattr(traceids.os, "urandom", lambda n: next(draws))
    assert traceids.new_trace_id() == "01" * 16
    assert traceids.new_span_id() == "02" * 8


def test_the_router_still_exports_the_generator() -> None:
    assert router_new_trace_id is traceids.new_trace_id


@pytest.mark.parametrize("good", ["a", "req-42", "x" * 128, "4bf92f3577b34da6a3ce929d0e0e4736"])
def test_caller_ids_are_kept(good: str) -> None:
    assert traceids.check_trace_id(good) == good


@pytest.mark.parametrize("bad", ["", "x" * 129, "a b", "a\nb", "a\x00", 42, None])
def test_caller_ids_refused(bad: object) -> None:
    with pytest.raises(InvalidInput, match="1 to 128 printable characters without spaces"):
        traceids.check_trace_id(bad)

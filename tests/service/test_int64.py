"""Integers outside int64 over HTTP: refused with 422 and the library's message, in metadata
and in filters, at both ends (issue 16, finding 6).

The body goes as raw text, so the number reaches the gateway exactly as a client wrote it
(orjson, the gateway's parser, reads an integer below -2**63 as a float)."""

from __future__ import annotations

import json

import pytest

from shadowswap import values
from shadowswap.errors import InvalidInput
from tests.service.conftest import Gateway

BEYOND = [str(values.INT64_MIN - 1), str(values.INT64_MAX + 1), str(-(2**64)), str(2**64)]
EDGES = [str(values.INT64_MIN), str(values.INT64_MAX)]


def library_reason(number: int) -> str:
    with pytest.raises(InvalidInput) as caught:
        values.check_meta_value("k", number, "metadata")
    return caught.value.reason


def post_raw(gw: Gateway, path: str, body: str) -> object:
    headers = {**gw.headers("a"), "content-type": "application/json"}
    return gw.client.post(f"/internal/retrieval/{path}", content=body, headers=headers)


@pytest.mark.parametrize("number", BEYOND)
def test_metadata_integer_outside_int64_is_422_as_in_the_library(
    gateway: Gateway, number: str
) -> None:
    body = (
        '{"tenant": "tenant-a", "documents": [{"doc_id": "x", "vector": [1, 0, 0, 0], '
        f'"metadata": {{"k": {number}}}}}]}}'
    )
    r = post_raw(gateway, "upsert", body)
    assert r.status_code == 422, r.text  # type: ignore[attr-defined]
    got = r.json()  # type: ignore[attr-defined]
    assert got["field"] == "documents[0].metadata.k", got
    assert library_reason(int(number)) in got["detail"], got
    assert gateway.runtime.primary.count("tenant-a") == 0


@pytest.mark.parametrize("number", BEYOND)
def test_filter_integer_outside_int64_is_422_as_in_the_library(
    gateway: Gateway, number: str
) -> None:
    body = f'{{"tenant": "tenant-a", "vector": [1, 0, 0, 0], "k": 5, "filter": {{"k": {number}}}}}'
    r = post_raw(gateway, "search", body)
    assert r.status_code == 422, r.text  # type: ignore[attr-defined]
    got = r.json()  # type: ignore[attr-defined]
    assert got["field"] == "filter.k", got
    assert library_reason(int(number)) in got["detail"], got


@pytest.mark.parametrize("number", EDGES)
def test_the_int64_edges_are_stored_exactly_and_filter_exactly(
    gateway: Gateway, number: str
) -> None:
    docs = [
        {"doc_id": "edge", "vector": [1, 0, 0, 0], "metadata": {"k": int(number)}},
        {"doc_id": "near", "vector": [1, 0, 0, 0], "metadata": {"k": int(number) - 1
                                                                if int(number) > 0
                                                                else int(number) + 1}},
    ]  # fmt: skip
    r = post_raw(gateway, "upsert", json.dumps({"tenant": "tenant-a", "documents": docs}))
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    body = f'{{"tenant": "tenant-a", "vector": [1, 0, 0, 0], "k": 5, "filter": {{"k": {number}}}}}'
    r = post_raw(gateway, "search", body)
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    hits = r.json()["hits"]  # type: ignore[attr-defined]
    assert [(h["doc_id"], h["metadata"]["k"]) for h in hits] == [("edge", int(number))]

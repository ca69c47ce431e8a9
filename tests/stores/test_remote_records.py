"""The rules the hosted-store adapters share (`shadowswap.stores.remote`): exact record
encodings, score conversions, locations and credentials, error mapping.

These carry the correctness of four adapters whose engines cannot run here, so they are
checked as properties and against the engines' documented score formulas. The filter tokens
these adapters also use are checked in ``test_tokens.py``.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowswap.errors import ConfigError, StoreError, StoreTimeout, StoreUnavailable
from shadowswap.settings.masking import mask_secrets
from shadowswap.stores.remote import (
    error_for_status,
    metadata_from_json,
    metadata_to_json,
    parse_endpoint,
    similarity_from_half_shift,
    similarity_from_inverse_square,
    similarity_from_mip,
    sized_chunks,
    vector_from_b64,
    vector_to_b64,
    vector_to_floats,
)
from shadowswap.stores.searchengine import decode_tenant, encode_tenant
from shadowswap.values import TENANT_RE


@given(
    st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=64)
)
def test_vectors_survive_base64_and_json_bit_for_bit(components: list[float]) -> None:
    vec = np.asarray(components, dtype=np.float32)
    assert vector_from_b64(vector_to_b64(vec)).tobytes() == vec.tobytes()
    assert np.asarray(vector_to_floats(vec), dtype=np.float32).tobytes() == vec.tobytes()
    assert (
        vector_to_b64(vec)
        == __import__("base64").b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
    )


def test_metadata_json_keeps_types_and_large_integers() -> None:
    meta = {"i": 7, "f": 7.0, "big": 2**63 - 1, "neg": -(2**63), "b": False, "s": "é"}
    back = metadata_from_json(metadata_to_json(meta))
    assert back == meta and [type(back[k]) for k in meta] == [type(v) for v in meta.values()]
    with pytest.raises(Exception, match="stored metadata"):
        metadata_from_json('{"nested": {"x": 1}}')


@pytest.mark.parametrize("x", [-1.0, -0.7, -1e-4, 0.0, 1e-4, 0.3, 0.999, 1.0])
def test_half_shift_scores_invert_within_float32(x: float) -> None:
    es_score = float(np.float32((1.0 + x) / 2.0))  # engines answer float32 scores
    assert similarity_from_half_shift(es_score) == pytest.approx(x, abs=2.5e-7)


@pytest.mark.parametrize("d2", [0.0, 1e-6, 0.5, 2.0, 17.0, 4096.0])
def test_inverse_square_scores_invert(d2: float) -> None:
    es_score = float(np.float32(1.0 / (1.0 + d2)))
    assert similarity_from_inverse_square(es_score) == pytest.approx(-d2, rel=3e-7, abs=3e-7)


@pytest.mark.parametrize("x", [-50.0, -2.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 3.0, 250.0])
def test_max_inner_product_scores_invert_on_both_branches(x: float) -> None:
    mip = x + 1.0 if x >= 0 else 1.0 / (1.0 - x)
    assert similarity_from_mip(float(np.float32(mip))) == pytest.approx(x, rel=3e-7, abs=3e-7)
    assert similarity_from_mip(0.0) == -math.inf


@given(st.from_regex(TENANT_RE, fullmatch=True))
def test_tenant_index_names_are_lower_case_and_one_to_one(tenant: str) -> None:
    encoded = encode_tenant(tenant)
    assert encoded == encoded.lower() and decode_tenant(encoded) == tenant
    assert all(c.isalnum() or c in "_-" for c in encoded)


def test_distinct_tenants_never_share_an_index() -> None:
    names = ["a_b", "aB", "a__b", "A_b", "ab", "a-b", "_", "__", "A"]
    assert len({encode_tenant(n) for n in names}) == len(names)
    assert decode_tenant("_") is None and decode_tenant("a_1") is None


def test_endpoints_split_secrets_out_of_everything_printed() -> None:
    raw = "https://ops:p%40ss@es.example:9243/base?api_key=K3Y&index_prefix=prod"
    ep = parse_endpoint("elastic", raw, {"index_prefix": "prefix"})
    assert (ep.username, ep.password, ep.api_key) == ("ops", "p@ss", "K3Y")
    assert ep.base_url == ep.shown == "https://es.example:9243/base"
    assert ep.options == {"index_prefix": "prod"}
    for text in (repr(ep), ep.shown, mask_secrets(raw)):
        assert "p%40ss" not in text and "p@ss" not in text and "K3Y" not in text
    with pytest.raises(ConfigError, match="unknown parameter 'prefix'") as info:
        parse_endpoint("elastic", "http://h:1?prefix=x&api_key=K3Y", {"index_prefix": "p"})
    assert "K3Y" not in str(info.value)
    with pytest.raises(ConfigError, match="RETRIEVAL_PINECONE_URL"):
        parse_endpoint("pinecone", "my-index", {})


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (401, StoreUnavailable, "refused the credentials"),
        (403, StoreUnavailable, "denied this operation"),
        (429, StoreUnavailable, "rate limiting"),
        (408, StoreTimeout, "timed out"),
        (504, StoreTimeout, "timed out"),
        (500, StoreUnavailable, "retry later"),
        (503, StoreUnavailable, "retry later"),
        (400, StoreError, "refused the request"),
        (404, StoreError, "refused the request"),
    ],
)
def test_http_statuses_map_to_the_error_tree(
    status: int, error: type[StoreError], words: str
) -> None:
    ep = parse_endpoint("opensearch", "https://u:pw@h:9200", {})
    exc = error_for_status("opensearch", "search", "acme", status=status, reason="why", endpoint=ep)
    assert type(exc) is error and words in str(exc) and f"HTTP {status}" in str(exc)
    assert "pw" not in str(exc) and exc.tenant == "acme"


def test_sized_chunks_respect_both_limits() -> None:
    items = list(range(10))
    sizes = [5, 5, 5, 50, 5, 5, 5, 5, 5, 5]
    chunks = [list(c) for c in sized_chunks(items, sizes, max_items=4, max_bytes=20)]
    assert chunks == [[0, 1, 2], [3], [4, 5, 6, 7], [8, 9]]
    assert [list(c) for c in sized_chunks([], [], 3, 10)] == []

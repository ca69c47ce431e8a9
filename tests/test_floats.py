"""Metadata floats as every store keeps them (`shadowswap.floats`): the model of the engines'
JSON number parser checked bit for bit against the real engines, and the normalisation's
rules (nearest stable double, idempotent, ``-0.0`` to ``0.0``, filters alike)."""

from __future__ import annotations

import math
import random
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowswap.errors import InvalidInput
from shadowswap.floats import MAX_ULPS, engine_read, is_stable, stable_float
from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.qdrant import QdrantStore
from shadowswap.values import Document, Query, check_metadata


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def ulps(a: float, b: float) -> int:
    return abs(struct.unpack("<q", bits(a))[0] - struct.unpack("<q", bits(b))[0])


def sample_floats(n: int, seed: int = 7) -> list[float]:
    """Random bit patterns, random decimals of 1 to 17 digits at every exponent, and
    computed floats: the shapes a user's metadata has."""
    rng = random.Random(seed)
    out: list[float] = []
    while len(out) < n:
        pick = len(out) % 3
        if pick == 0:
            v = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        elif pick == 1:
            v = float(f"{rng.randrange(1, 10 ** rng.randint(1, 17))}e{rng.randint(-330, 290)}")
        else:
            v = rng.random() * 10 ** rng.randint(-25, 25)
        if math.isfinite(v):
            out.append(v)
    return out


def raw_metadata(store: BaseStore, doc_id: str) -> dict[str, float]:
    """The metadata as the engine gives it back, before shadowswap's checks normalise it."""
    if isinstance(store, ChromaStore):
        got = store._collection("acme", create=False).get(ids=[doc_id], include=["metadatas"])
        return dict(got["metadatas"][0])
    assert isinstance(store, QdrantStore)
    ((payload, _),) = list(store._records("acme", [doc_id], False))
    return dict(payload)


@pytest.mark.parametrize("kind", ["chroma", "qdrant-edge"])
def test_the_model_of_the_engine_parser_matches_the_engine_bit_for_bit(
    tmp_path: Path, kind: str
) -> None:
    """The values are sent raw (under `_trusted`, as no user can): what the engine gives back
    is exactly what `engine_read` predicts, changed or not."""
    store: BaseStore = (
        ChromaStore(str(tmp_path / "c"), Metric.COSINE)
        if kind == "chroma"
        else QdrantStore(str(tmp_path / "q"), Metric.COSINE)
    )
    values = [*sample_floats(640), 5e-324, 1e-320, 2.2250738585072014e-308, 1.7976931348623155e308]
    changed = 0
    try:
        for start in range(0, len(values), 64):
            meta = {f"k{j}": v for j, v in enumerate(values[start : start + 64])}
            doc = Document._trusted(
                "acme", f"d{start}", Document("acme", "x", [1.0, 0.0]).vector, meta, None
            )
            store.upsert("acme", [doc])
            back = raw_metadata(store, doc.doc_id)
            for key, sent in meta.items():
                assert bits(back[key]) == bits(engine_read(sent)), (key, sent, back[key])
                changed += back[key] != sent
    finally:
        store.close()
    assert changed > 50  # the engines do change a good share of these values


def test_stable_floats_are_kept_and_unstable_ones_move_to_the_nearest_stable_neighbour() -> None:
    for v in sample_floats(3000, seed=3):
        z = stable_float(v)
        assert is_stable(z) and engine_read(z) == z
        assert stable_float(z) == z  # idempotent
        if is_stable(v):
            assert bits(z) == bits(v)
        else:
            distance = ulps(v, z)
            assert 1 <= distance <= 64
            # nothing stable lies closer on either side
            down, up = v, v
            for _ in range(distance - 1):
                down, up = math.nextafter(down, 0.0), math.nextafter(up, math.copysign(math.inf, v))
                assert not is_stable(down) and not (math.isfinite(up) and is_stable(up))


def test_exact_reference_values() -> None:
    assert engine_read(4.32849e-21) == 4.3284899999999996e-21  # what Chroma gives back
    assert stable_float(4.32849e-21) != 4.32849e-21
    assert stable_float(1.7976931348623155e308) == 1.7976931348623153e308
    for kept in (0.1, 0.30000000000000004, 1.5, 123456.789, 1e22, 5e-324, 1.7976931348623157e308):
        assert stable_float(kept) == kept and stable_float(-kept) == -kept


def test_negative_zero_becomes_zero() -> None:
    assert not is_stable(-0.0) and is_stable(0.0)
    z = stable_float(-0.0)
    assert z == 0.0 and math.copysign(1.0, z) == 1.0
    meta = check_metadata({"a": -0.0, "b": 0})
    assert math.copysign(1.0, meta["a"]) == 1.0 and meta["b"] == 0 and type(meta["b"]) is int
    assert (
        Document("t", "d", [1.0], {"a": -0.0}).content_hash
        == Document("t", "d", [1.0], {"a": 0.0}).content_hash
    )


def test_only_floats_change_other_values_are_kept_exactly() -> None:
    meta = {"i": 2**63 - 1, "f": 1.0, "b": True, "s": "e\u0301\x00", "e": ""}
    assert dict(check_metadata(meta)) == meta
    assert type(check_metadata({"f": 1.0})["f"]) is float
    assert check_metadata({"s": "\u00e9"})["s"] != check_metadata({"s": "e\u0301"})["s"]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_has_a_stable_neighbour(value: float) -> None:
    z = stable_float(value)
    assert is_stable(z) and stable_float(z) == z
    assert ulps(value, z) <= MAX_ULPS if value != 0.0 else bits(z) == bits(0.0)


def test_a_filter_on_the_value_written_finds_the_document_in_every_store(tmp_path: Path) -> None:
    """The filter is normalised as the metadata was, so it matches what the store holds."""
    value = 4.32849e-21
    for store in (
        FaissStore(tmp_path / "f", Metric.COSINE),
        ChromaStore(str(tmp_path / "c"), Metric.COSINE),
        QdrantStore(str(tmp_path / "q"), Metric.COSINE),
    ):
        try:
            store.upsert("acme", [Document("acme", "d", [1.0, 0.0], {"score": value})])
            hits = store.search_query(Query("acme", [1.0, 0.0], 5, {"score": value})).hits
            assert [h.doc_id for h in hits] == ["d"], store.kind
        finally:
            store.close()


def test_no_stable_neighbour_in_reach_is_refused_with_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shadowswap.floats.MAX_ULPS", 0)
    with pytest.raises(InvalidInput, match=r"metadata\.score"):
        check_metadata({"score": 4.32849e-21})

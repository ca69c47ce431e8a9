"""Values: id rules, metadata rules, and a content hash that never changes."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from shadowswap.errors import InvalidInput
from shadowswap.similarity import Metric, canonical_vector
from shadowswap.values import Document, Hit, check_doc_id, check_tenant

# Pinned: if this changes, every stored hash in every deployment changes. Bump the version
# in the hash's magic bytes instead.
GOLDEN = Document(
    "acme", "faq-1", [0.25, -0.5, 1.0], {"lang": "fr", "n": 3, "ok": True, "w": 0.5}, "Bonjour"
)
GOLDEN_HASH = "1bfbe39311b1703dd6adfd9d7bf9dba2c517b5a241fa5005998ac7949529fce1"


def test_content_hash_is_pinned() -> None:
    assert GOLDEN.content_hash == GOLDEN_HASH


def test_content_hash_follows_its_written_definition() -> None:
    """Recompute from the docstring's recipe with nothing but hashlib, struct and json."""
    h = hashlib.sha256(b"shadowswap/content/v1\0")
    h.update(struct.pack("<Q", 3) + struct.pack("<3f", 0.25, -0.5, 1.0))
    meta = json.dumps(
        {"w": 0.5, "lang": "fr", "ok": True, "n": 3}, sort_keys=True, separators=(",", ":")
    ).encode()
    h.update(struct.pack("<Q", len(meta)) + meta)
    h.update(b"\1" + struct.pack("<Q", 7) + b"Bonjour")
    assert h.hexdigest() == GOLDEN.content_hash


def test_content_hash_is_identical_in_another_process() -> None:
    code = (
        "from shadowswap.values import Document;"
        "print(Document('acme','faq-1',[0.25,-0.5,1.0],{'w':0.5,'ok':True,'n':3,'lang':'fr'},'Bonjour').content_hash)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == GOLDEN.content_hash


def test_content_hash_covers_what_it_says() -> None:
    base = Document("t", "d", [1.0, 2.0], {"a": 1}, "x")
    assert Document("other", "d2", [1.0, 2.0], {"a": 1}, "x").content_hash == base.content_hash
    for changed in (
        Document("t", "d", [1.0, 2.0000002], {"a": 1}, "x"),
        Document("t", "d", [1.0, 2.0], {"a": 1.0}, "x"),  # int and float differ
        Document("t", "d", [1.0, 2.0], {"a": True}, "x"),
        Document("t", "d", [1.0, 2.0], {"a": 1}, None),
        Document("t", "d", [1.0, 2.0], {"a": 1}, ""),
        Document("t", "d", [1.0, 2.0, 0.0], {"a": 1}, "x"),
    ):
        assert changed.content_hash != base.content_hash
    assert (
        Document("t", "d", [-0.0, 2.0], {"a": 1}, "x").content_hash
        == Document("t", "d", [0.0, 2.0], {"a": 1}, "x").content_hash
    )
    assert Document("t", "d", np.array([1, 2], dtype=np.int64), {"a": 1}, "x") == base


def test_cosine_normalisation_is_idempotent() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        v = Document("t", "d", rng.normal(size=384) * rng.uniform(0.01, 100)).vector
        once = canonical_vector(v, Metric.COSINE)
        twice = canonical_vector(Document("t", "d", once).vector, Metric.COSINE)
        assert once.tobytes() == twice.tobytes()


@pytest.mark.parametrize("tenant", ["a", "tenant_A-1", "x" * 64])
def test_good_tenants(tenant: str) -> None:
    assert check_tenant(tenant) == tenant


@pytest.mark.parametrize("tenant", ["", "x" * 65, "a b", "a/b", "é", "a.b", None, 5])
def test_bad_tenants(tenant: object) -> None:
    with pytest.raises(InvalidInput, match="A-Z a-z 0-9 _ -"):
        check_tenant(tenant)


@pytest.mark.parametrize("doc_id", ["a", "é", "中文", "🚀", "a b/c", "x" * 512])
def test_good_doc_ids(doc_id: str) -> None:
    assert check_doc_id(doc_id) == doc_id


@pytest.mark.parametrize(
    ("doc_id", "why"),
    [
        ("", "non-empty"),
        ("a\nb", "control"),
        ("a\x00", "control"),
        ("é" * 257, "bytes"),
        ("\ud800", "surrogate"),
        (3, "non-empty"),
    ],
)
def test_bad_doc_ids(doc_id: object, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_doc_id(doc_id)


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ({"_x": 1}, "key '_x' is not allowed"),
        ({"a.b": 1}, "not allowed"),
        ({"a": None}, "null is not a supported value"),
        ({"a": {"b": 1}}, "flatten nested"),
        ({"a": [1, 2]}, "list is not a supported value"),
        ({"a": float("nan")}, "finite"),
        ({"a": 2**63}, "64-bit"),
        ({"a": "x" * 9000}, "longer than"),
        ({f"k{i}": i for i in range(65)}, "at most 64"),
    ],
)
def test_bad_metadata(metadata: dict[str, object], why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        Document("t", "d", [1.0], metadata)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("vector", "why"),
    [
        ([], "non-empty"),
        ([[1.0, 2.0]], "not a number"),
        (["1.0"], "not a number"),
        ([True, 1.0], "not a number"),
        ("12", "list of numbers"),
        (np.zeros(16001), "at most 16000"),
        (np.array(["a"]), "expected numbers"),
    ],
)
def test_bad_vectors(vector: object, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        Document("t", "d", vector)  # type: ignore[arg-type]


def test_documents_are_immutable_and_never_print_content() -> None:
    doc = Document("t", "d", [1.0, 2.0], {"secret": "value"}, "private text")
    with pytest.raises(AttributeError):
        doc.doc_id = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        doc.metadata["secret"] = "changed"  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        doc.vector[0] = 5.0
    shown = repr(doc)
    assert "private" not in shown and "value" not in shown and "1.0" not in shown


def test_hits_print_their_doc_id_and_score_never_metadata_values() -> None:
    hit = Hit("faq-1", 0.75, {"secret": "value", "n": 123456})
    assert repr(hit) == "Hit(doc_id='faq-1', score=0.75)"
    assert repr((hit,)) == "(Hit(doc_id='faq-1', score=0.75),)"
    assert hit == Hit("faq-1", 0.75, {"secret": "value", "n": 123456})  # still compared whole
    assert hit != Hit("faq-1", 0.75, {"secret": "other", "n": 123456})

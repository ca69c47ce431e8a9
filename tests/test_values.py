"""Values: id rules, metadata rules, and a content hash that never changes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from shadowswap.errors import InvalidInput
from shadowswap.similarity import Metric, canonical_vector
from shadowswap.values import (
    MAX_K,
    Document,
    Hit,
    Query,
    check_doc_id,
    check_k,
    check_metadata,
    check_tenant,
    to_vector,
)

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


# -- the query: checked once, where a search enters ------------------------------------------
@pytest.mark.parametrize(
    ("args", "field", "why"),
    [
        (("no spaces", [1.0], 1, None), "tenant", "is not a valid tenant id"),
        (("", [1.0], 1, None), "tenant", "A-Z a-z 0-9 _ -"),
        (("acme", "text", 1, None), "vector", "expected a list of numbers"),
        (("acme", [], 1, None), "vector", "non-empty flat list"),
        (("acme", [1.0, float("nan")], 1, None), "vector", "component 1 is not a finite"),
        (("acme", [1e39], 1, None), "vector", "beyond float32 range"),
        (("acme", [1.0], 0, None), "k", "use an integer from 1 to 1000"),
        (("acme", [1.0], MAX_K + 1, None), "k", "1001 is not accepted"),
        (("acme", [1.0], True, None), "k", "True is not accepted"),
        (("acme", [1.0], 2.0, None), "k", "2.0 is not accepted"),
        (("acme", [1.0], 1, [1]), "filter", "expected an object"),
        (("acme", [1.0], 1, {"1x": "y"}), "filter", "is not allowed"),
        (("acme", [1.0], 1, {"a": None}), "filter.a", "null is not a supported value"),
        (("acme", [1.0], 1, {"a": {"b": 1}}), "filter.a", "dict is not a supported value"),
        # several faults: the first in the order tenant, vector, k, filter is reported
        (("no spaces", "text", 0, [1]), "tenant", "is not a valid tenant id"),
        (("acme", "text", 0, [1]), "vector", "expected a list of numbers"),
        (("acme", [1.0], 0, [1]), "k", "is not accepted"),
    ],
)
def test_a_bad_query_is_refused_with_the_rule_of_its_field(
    args: tuple[object, object, object, object], field: str, why: str
) -> None:
    with pytest.raises(InvalidInput, match=why) as caught:
        Query(*args)  # type: ignore[arg-type]
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("tenant", "vector", "k", "flt"),
    [
        ("bad tenant", [1.0], 1, None),
        ("acme", [1.0, float("inf")], 1, None),
        ("acme", [1.0], 1001, None),
        ("acme", [1.0], 1, {"k": 2**70}),
    ],
)
def test_a_query_refuses_exactly_what_each_rule_refuses_with_the_same_message(
    tenant: str, vector: list[float], k: int, flt: dict[str, object] | None
) -> None:
    """One constructor, the same errors as the checks it is made of (so the router, the
    HTTP service and a store called directly say the same thing)."""
    with pytest.raises(InvalidInput) as by_query:
        Query(tenant, vector, k, flt)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as by_rule:
        check_tenant(tenant)
        to_vector(vector)
        check_k(k)
        check_metadata(flt, "filter")
    assert (by_query.value.field, str(by_query.value)) == (
        by_rule.value.field,
        str(by_rule.value),
    )


def test_a_query_holds_read_only_copies_and_never_prints_content() -> None:
    buffer = np.array([0.5, -0.0, 2.0], dtype=np.float64)
    flt = {"lang": "secret-value"}
    q = Query("acme", buffer, 7, flt)
    buffer[0], flt["lang"] = 9.0, "changed"
    assert q.vector.dtype == np.float32 and list(q.vector) == [0.5, 0.0, 2.0]
    assert np.signbit(q.vector).tolist() == [False, False, False]  # -0.0 made 0.0
    assert dict(q.filter) == {"lang": "secret-value"} and (q.k, q.dimension) == (7, 3)
    with pytest.raises(ValueError, match="read-only"):
        q.vector[0] = 1.0
    with pytest.raises(TypeError):
        q.filter["lang"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        q.k = 3  # type: ignore[misc]
    assert "secret" not in repr(q) and "0.5" not in repr(q)
    assert repr(q) == "Query(tenant='acme', dimension=3, k=7, filter_keys=['lang'])"


def test_no_filter_is_an_empty_read_only_filter() -> None:
    for q in (Query("acme", [1.0], 1), Query("acme", [1.0], 1, None), Query("acme", [1.0], 1, {})):
        assert dict(q.filter) == {} and not q.filter


def test_a_query_changed_with_replace_is_checked_again() -> None:
    q = Query("acme", [1.0, 2.0], 3)
    assert dataclasses.replace(q, tenant="globex").tenant == "globex"
    with pytest.raises(InvalidInput, match="k"):
        dataclasses.replace(q, k=0)

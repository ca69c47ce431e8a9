"""Filter tokens: equal tokens exactly when the filter rule says the values match."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowswap.stores.base import matches
from shadowswap.stores.tokens import MAX_TOKEN_LENGTH, canonical_number, token, tokens

VALUES: list[object] = [
    True,
    False,
    0,
    1,
    -1,
    0.0,
    -0.0,
    1.0,
    1.5,
    0.1,
    2**62,
    2**62 + 1,
    float(2**62),
    2**63 - 1,
    -(2**63),
    float(2**63),
    1e300,
    5e-324,
    "1",
    "true",
    "",
    "fr",
    "with space",
    "quote'\"\\",
    "x" * 65,
    "é",
    "nul\0char",
]


@pytest.mark.parametrize(
    ("a", "b"), list(itertools.combinations_with_replacement(VALUES, 2)), ids=repr
)
def test_tokens_equal_exactly_when_values_match(a: object, b: object) -> None:
    same = matches({"k": a}, {"k": b})  # type: ignore[dict-item]
    assert (token("k", a) == token("k", b)) is same  # type: ignore[arg-type]


@given(
    st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False))
)
def test_numbers_have_one_spelling_per_value(value: float) -> None:
    as_float = float(value)
    if as_float == value:
        assert canonical_number(value) == canonical_number(as_float)
    assert token("k", value) != token("k", str(value))


@given(st.text(max_size=300))
def test_tokens_are_short_and_need_no_escaping(text: str) -> None:
    got = token("a" * 64, text)
    assert len(got) <= MAX_TOKEN_LENGTH
    assert not set(got) & set("'\"\\ \0,[]()%")


def test_document_tokens_are_sorted_and_keyed() -> None:
    assert tokens({"lang": "fr", "cluster": 3.0, "even": True}) == [
        "cluster:n:3",
        "even:b:true",
        "lang:s:fr",
    ]
    assert token("lang", "fr") != token("lang2", "fr")

"""Filter tokens (`shadowswap.stores.tokens`): equal tokens exactly when the filter rule says
the values match, and a filter matches exactly when the record holds all its tokens.

Every adapter that filters by tokens (eight engines, four of which cannot run here) relies on
these properties, so they are checked against the reference rule
(`shadowswap.stores.base.matches`): on every pair of awkward values, and with Hypothesis.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowswap.stores.base import matches
from shadowswap.stores.tokens import MAX_TOKEN_LENGTH, canonical_number, token, tokens
from shadowswap.values import INT64_MAX, INT64_MIN

AWKWARD: list[object] = [
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
    2**53 + 1,
    2.0**53,
    2**62,
    2**62 + 1,
    float(2**62),
    2**63 - 1,
    -(2**63),
    float(2**63),
    -(2.0**63),
    1e300,
    5e-324,
    "1",
    "1.0",
    "true",
    "",
    "fr",
    " a",
    "a ",
    "a\tb",
    "=",
    ":",
    "a#b",
    "with space",
    "quote'\"\\",
    "x" * 64,
    "x" * 65,
    "x" * 250,
    "é",
    "é" * 70,
    "nul\0char",
]

values = st.one_of(
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(AWKWARD),
    st.text(max_size=80),
)


def test_awkward_values_share_a_token_exactly_when_the_filter_rule_matches_them() -> None:
    wrong = [
        (a, b)
        for a, b in itertools.combinations_with_replacement(AWKWARD, 2)
        if (token("k", a) == token("k", b))  # type: ignore[arg-type]
        is not matches({"k": a}, {"k": b})  # type: ignore[dict-item]
    ]
    assert wrong == []


@given(values, values)
def test_two_values_share_a_token_exactly_when_the_filter_rule_matches_them(
    a: object, b: object
) -> None:
    assert (token("k", a) == token("k", b)) is matches({"k": a}, {"k": b})  # type: ignore[arg-type, dict-item]


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), values),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), values),
)
def test_a_filter_matches_when_the_record_holds_all_its_tokens(meta: dict, flt: dict) -> None:  # type: ignore[type-arg]
    assert (set(tokens(flt)) <= set(tokens(meta))) is matches(meta, flt)


@given(
    st.one_of(st.integers(INT64_MIN, INT64_MAX), st.floats(allow_nan=False, allow_infinity=False))
)
def test_numbers_have_one_spelling_per_value(value: float) -> None:
    as_float = float(value)
    if as_float == value:
        assert canonical_number(value) == canonical_number(as_float)
    assert token("k", value) != token("k", str(value))


@given(st.text(max_size=300) | values)
def test_tokens_are_short_and_need_no_escaping(value: object) -> None:
    got = token("a" * 64, value)  # type: ignore[arg-type]
    assert len(got) <= MAX_TOKEN_LENGTH
    assert not set(got) & set("'\"\\ \t\n\r\0,[]()%=")


def test_token_spelling() -> None:
    assert token("lang", "en") == "lang:s:en"
    assert token("n", 7) == token("n", 7.0) == "n:n:7"
    assert token("n", True) == "n:b:true" != token("n", 1)
    assert token("big", 2**62) == "big:n:4611686018427387904"
    assert token("f", 2.0**63) == "f:n:9.223372036854776e+18" != token("f", 2**63 - 1)
    long = token("s", "é" * 8192)
    assert long.startswith("s:s#") and len(long) == 4 + 32
    assert token("s", "a ").startswith("s:s#")  # Weaviate trims field tokens: never a space
    assert token("lang", "fr") != token("lang2", "fr")
    assert tokens({"lang": "fr", "cluster": 3.0, "even": True}) == [
        "cluster:n:3",
        "even:b:true",
        "lang:s:fr",
    ]
    assert tokens({}) == []


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_have_no_token(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        token("k", bad)

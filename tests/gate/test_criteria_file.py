"""The criteria file's pydantic models: every mistake keeps its one-line message, in the
order the file's fields are listed; ``null`` on an optional key means "not given"."""

from __future__ import annotations

import pytest

from shadowswap.errors import InvalidInput
from shadowswap.gate.criteria import parse_criteria
from shadowswap.gate.model import Verdict

BASE = {"name": "a", "statistic": "drop_ratio", "op": "<=", "threshold": 0.05}


def _reason(document: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_criteria(document, "g.yml")
    return caught.value.reason


def test_mistakes_of_one_criterion_in_field_order() -> None:
    entry = {"name": None, "op": None, "threshold": "h", "margin": -2, "x": 1, "a": 2}
    assert _reason({"criteria": [entry]}) == (
        "criteria[0]: `statistic` is missing; criteria[0]: unknown keys ['a', 'x']; "
        "criteria[0]: name is empty; criteria[0]: op is empty; "
        "criteria[0]: threshold 'h' must be a number; criteria[0]: margin -2 must be a number >= 0"
    )


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("threshold", True, "threshold True must be a number"),
        ("threshold", float("inf"), "threshold inf must be a number"),
        ("min_samples", 2.0, "min_samples 2.0 must be a whole number >= 2"),
        ("range", [1, 0], "range [1, 0] must be [low, high] with low < high"),
        ("range", (0, 1), "range (0, 1) must be [low, high] with low < high"),
        ("required", "yes", "required 'yes' must be true or false"),
        ("description", 5, "description 5 must be text"),
        ("name", "  ", "name '  ' must be a non-empty string"),
    ],
)
def test_each_wrong_value(key: str, value: object, why: str) -> None:
    entry = {**BASE, key: value}
    label = f"criteria[0] ({entry['name']})"
    assert _reason({"criteria": [entry]}) == f"{label}: {why}"


def test_top_level_mistakes_come_first() -> None:
    document = {"confidence": None, "min_samples": 1, "zz": 1, "criteria": [{**BASE, "op": "=>"}]}
    assert _reason(document) == (
        "unknown keys ['zz'] (use confidence, min_samples, criteria); "
        "confidence None must be a number in [0.5, 1); min_samples 1 must be a whole number >= 2; "
        "criteria[0] (a): op '=>' is not one of <, <=, >, >=, =="
    )
    assert _reason({"criteria": {}}) == "`criteria` must be a non-empty list"


def test_null_optional_keys_are_not_given() -> None:
    entry = {**BASE, "on_fail": None, "margin": None, "rollback_threshold": None, "range": None}
    (c,) = parse_criteria({"criteria": [entry]}).criteria
    assert (c.on_fail, c.margin, c.rollback_threshold, c.value_range) == (
        Verdict.HOLD, 0.0, None, None,
    )  # fmt: skip
    (c,) = parse_criteria({"criteria": [{**BASE, "required": None}]}).criteria
    assert c.required is False  # as before: null is false for a switch

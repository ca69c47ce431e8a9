"""The keys file's model: each mistake is the same one line as before pydantic read it, and
the first wrong field (in the file's field order) is the one reported."""

from __future__ import annotations

import pytest

from shadowswap.errors import ConfigError
from shadowswap.service.keys import parse_document

H = "a" * 64
PREFIX = "RETRIEVAL_API_KEYS_FILE='k.json' is not accepted: "
SHAPE = 'expected a JSON object {"format": 1, "keys": [...]}; see docs/service.md'


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (7, "keys[0]: expected an object with sha256 and tenants"),
        ({"sha256": H.upper(), "tenants": ["a"]},
         "keys[0].sha256: expected 64 lowercase hex digits (the key's SHA-256)"),
        ({"sha256": "abc", "tenants": [], "status": 3},
         "keys[0].sha256: expected 64 lowercase hex digits (the key's SHA-256)"),
        ({"sha256": H, "id": "bad id", "tenants": []},
         "keys[0].id: expected 1 to 64 characters from A-Z a-z 0-9 _ . -"),
        ({"sha256": H, "id": None, "tenants": ["a"]},
         "keys[0].id: expected 1 to 64 characters from A-Z a-z 0-9 _ . -"),
        ({"sha256": H, "tenants": "a"},
         'keys[0].tenants: expected a non-empty list of tenant ids, or ["*"]'),
        ({"sha256": H, "tenants": ["ok", "a b", "c d"]},
         "keys[0].tenants: 'a b' is not a tenant id (1 to 64 of A-Z a-z 0-9 _ -)"),
        ({"sha256": H, "tenants": [5]},
         "keys[0].tenants: 5 is not a tenant id (1 to 64 of A-Z a-z 0-9 _ -)"),
        ({"sha256": H, "tenants": ["a"], "status": 1}, "keys[0].status: expected true or false"),
        ({"sha256": H, "tenants": ["a"], "note": None},
         "keys[0]: created and note must be strings"),
    ],
)  # fmt: skip
def test_one_line_per_mistake(entry: object, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_document({"keys": [entry]}, "k.json")
    assert str(caught.value) == PREFIX + reason


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], SHAPE),
        ({"keys": None}, SHAPE),
        ({"format": None, "keys": []}, "format None is not supported; this release reads 1"),
        ({"format": "1", "keys": []}, "format '1' is not supported; this release reads 1"),
    ],
)  # fmt: skip
def test_document_shape(document: object, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_document(document, "k.json")
    assert str(caught.value) == PREFIX + reason


def test_defaults_and_unknown_fields() -> None:
    (entry,) = parse_document(
        {"format": 1, "keys": [{"sha256": H, "tenants": ["*"], "later": 1}], "x": 2}, "k.json"
    )
    assert (entry.id, entry.all_tenants, entry.status, entry.created, entry.note) == (
        H[:8], True, False, "", "",
    )  # fmt: skip

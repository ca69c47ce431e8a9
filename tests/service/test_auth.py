"""API keys at the HTTP level: 401 without a valid key, 403 for another tenant's data (and the
same 403 whether that tenant exists or not), no read, write or delete across tenants, the
status page for operators only, probes and metrics open, keys reloaded without a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shadowswap.clock import FakeClock
from shadowswap.errors import ConfigError
from shadowswap.service.auth import KeyRing, presented_key
from shadowswap.service.keys import add_key, hash_key, read_entries, revoke_key
from tests.service.conftest import Gateway

VEC = [1.0, 0.0, 0.0]


def upsert(gw: Gateway, key: str, tenant: str, *ids: str) -> Any:
    docs = [{"doc_id": i, "vector": VEC, "text": f"{tenant} secret"} for i in ids]
    return gw.post("upsert", {"tenant": tenant, "documents": docs}, key=key)


def search(gw: Gateway, key: str | None, tenant: str, **headers: str) -> Any:
    return gw.post("search", {"tenant": tenant, "vector": VEC, "k": 10}, key=key, headers=headers)


def body_without_trace(r: Any) -> dict[str, Any]:
    body = dict(r.json())
    body.pop("trace_id")
    return body


@pytest.fixture
def two_tenants(gateway: Gateway) -> Gateway:
    assert upsert(gateway, "a", "tenant-a", "a1", "a2").status_code == 200
    assert upsert(gateway, "b", "tenant-b", "b1", "shared-id").status_code == 200
    return gateway


def test_a_key_reads_only_its_tenant(two_tenants: Gateway) -> None:
    gw = two_tenants
    mine = search(gw, "a", "tenant-a")
    assert mine.status_code == 200
    assert {h["doc_id"] for h in mine.json()["hits"]} == {"a1", "a2"}  # never b's documents
    theirs = search(gw, "a", "tenant-b")
    assert theirs.status_code == 403
    body = body_without_trace(theirs)  # the trace id is random hex and may contain "b1"
    assert body == {"error": "forbidden", "detail": "this API key may not use tenant 'tenant-b'"}
    assert "b1" not in json.dumps(body) and "shared-id" not in theirs.text


def test_forbidden_looks_the_same_whether_the_tenant_exists_or_not(two_tenants: Gateway) -> None:
    existing = search(two_tenants, "a", "tenant-b")
    missing = search(two_tenants, "a", "tenant-c")  # holds nothing, never written
    assert existing.status_code == missing.status_code == 403
    assert body_without_trace(existing) == {
        "error": "forbidden",
        "detail": "this API key may not use tenant 'tenant-b'",
    }
    assert body_without_trace(missing) == {
        "error": "forbidden", "detail": "this API key may not use tenant 'tenant-c'"}  # fmt: skip


def test_a_key_cannot_write_or_delete_another_tenants_data(two_tenants: Gateway) -> None:
    gw = two_tenants
    assert upsert(gw, "a", "tenant-b", "b1", "evil").status_code == 403
    deleted = gw.post("delete", {"tenant": "tenant-b", "doc_ids": ["b1", "shared-id"]}, key="a")
    assert deleted.status_code == 403
    held = gw.runtime.primary.get("tenant-b", ["b1", "shared-id", "evil"])
    assert set(held) == {"b1", "shared-id"} and held["b1"].text == "tenant-b secret"
    # a's own write of the same doc id lands in a's tenant only
    assert upsert(gw, "a", "tenant-a", "shared-id").status_code == 200
    assert gw.runtime.primary.get("tenant-b", ["shared-id"])["shared-id"].text == "tenant-b secret"
    assert (
        gw.post("delete", {"tenant": "tenant-a", "doc_ids": ["shared-id"]}, key="a").json()[
            "deleted"
        ]
        == 1
    )
    assert gw.runtime.primary.count("tenant-b") == 2


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "an API key is required"),
        ({"Authorization": "Bearer ssk_00000000_not-a-key"}, "not recognised"),
        ({"X-API-Key": "wrong"}, "not recognised"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "Bearer <API key>"),
        ({"Authorization": "Bearer"}, "Bearer <API key>"),
        ({"Authorization": "Bearer " + "x" * 5000}, "not recognised"),
    ],
)
def test_no_valid_key_is_401_for_every_data_endpoint(
    two_tenants: Gateway, headers: dict[str, str], words: str
) -> None:
    gw = two_tenants
    bodies = {
        "search": {"tenant": "tenant-a", "vector": VEC, "k": 1},
        "upsert": {"tenant": "tenant-a", "documents": [{"doc_id": "x", "vector": VEC}]},
        "delete": {"tenant": "tenant-a", "doc_ids": ["a1"]},
    }
    for path, body in bodies.items():
        r = gw.post(path, body, key=None, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"] == "unauthorized" and words in r.json()["detail"]
    assert gw.runtime.primary.count("tenant-a") == 2  # nothing written, nothing deleted
    status = gw.client.get("/internal/retrieval/status", headers=headers)
    assert status.status_code == 401


def test_401_comes_before_the_body_is_looked_at(gateway: Gateway) -> None:
    r = gateway.client.post(
        "/internal/retrieval/search",
        content="{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 401  # not 400: a caller without a key learns nothing


def test_x_api_key_works_and_two_different_keys_are_refused(two_tenants: Gateway) -> None:
    gw = two_tenants
    assert search(gw, None, "tenant-a", **{"X-API-Key": gw.keys["a"]}).status_code == 200
    both = search(gw, None, "tenant-a", Authorization=f"Bearer {gw.keys['a']}",
                  **{"X-API-Key": gw.keys["b"]})  # fmt: skip
    assert both.status_code == 401 and "different keys" in both.json()["detail"]


def test_a_key_for_every_tenant(two_tenants: Gateway) -> None:
    gw = two_tenants
    assert {h["doc_id"] for h in search(gw, "all", "tenant-b").json()["hits"]} == {
        "b1", "shared-id"}  # fmt: skip
    assert gw.client.get("/internal/retrieval/status", headers=gw.headers("all")).status_code == 403


def test_status_needs_the_status_permission(two_tenants: Gateway) -> None:
    gw = two_tenants
    forbidden = gw.client.get("/internal/retrieval/status", headers=gw.headers("a"))
    assert forbidden.status_code == 403 and "status" in forbidden.json()["detail"]
    assert "flags" not in forbidden.json()
    ok = gw.client.get("/internal/retrieval/status", headers=gw.headers("admin"))
    assert ok.status_code == 200 and "flags" in ok.json()


def test_probes_metrics_and_docs_are_open(gateway: Gateway) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert gateway.client.get(path).status_code == 200, path


def test_metrics_carry_no_tenant_ids(two_tenants: Gateway) -> None:
    search(two_tenants, "a", "tenant-a")
    text = two_tenants.client.get("/metrics").text
    assert "tenant-a" not in text and "tenant-b" not in text


def test_keys_added_and_revoked_apply_without_restart(gateway: Gateway) -> None:
    clock = FakeClock()
    ring = KeyRing(gateway.keys_file, clock=clock, poll_interval_s=1.0)
    new_key, entry = add_key(gateway.keys_file, ["tenant-c"])
    with pytest.raises(Exception, match="not recognised"):
        ring.authenticate({"authorization": f"Bearer {new_key}"})  # not looked at yet
    clock.advance(1.0)
    assert ring.authenticate({"authorization": f"Bearer {new_key}"}).allows("tenant-c")
    revoke_key(gateway.keys_file, entry.id)
    clock.advance(1.0)
    with pytest.raises(Exception, match="not recognised"):
        ring.authenticate({"authorization": f"Bearer {new_key}"})


def test_a_broken_keys_file_keeps_the_last_good_keys(gateway: Gateway) -> None:
    clock = FakeClock()
    ring = KeyRing(gateway.keys_file, clock=clock)
    gateway.keys_file.write_text("{ half written")
    clock.advance(2.0)
    assert ring.authenticate({"x-api-key": gateway.keys["a"]}).allows("tenant-a")


def test_the_keys_file_holds_only_hashes(gateway: Gateway) -> None:
    text = gateway.keys_file.read_text()
    for key in gateway.keys.values():
        assert key not in text and hash_key(key) in text
    assert gateway.keys_file.stat().st_mode & 0o777 == 0o600
    assert {e.note for e in read_entries(gateway.keys_file)} >= {"tenant a", "operators"}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not json", "not valid JSON"),
        ('{"keys": {}}', "expected a JSON object"),
        ('{"keys": [{"sha256": "abc", "tenants": ["a"]}]}', "64 lowercase hex"),
        ('{"keys": [{"sha256": "' + "a" * 64 + '", "tenants": []}]}', "non-empty list"),
        ('{"keys": [{"sha256": "' + "a" * 64 + '", "tenants": ["a b"]}]}', "not a tenant id"),
        ('{"format": 2, "keys": []}', "format 2"),
    ],
)
def test_a_corrupt_keys_file_is_a_config_error(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="RETRIEVAL_API_KEYS_FILE") as info:
        KeyRing(path)
    assert words in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        KeyRing(tmp_path / "missing.json")


def test_a_hand_written_entry_works(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"sha256": hash_key("my own key"), "tenants": ["t"]}]}))
    principal = KeyRing(path).authenticate({"authorization": "Bearer my own key"})
    assert principal.allows("t") and not principal.allows("u") and not principal.status


def test_presented_key_reads_either_header() -> None:
    assert presented_key({"authorization": "bearer  abc "}) == "abc"
    assert presented_key({"x-api-key": "abc"}) == "abc"
    assert presented_key({"authorization": "Bearer abc", "x-api-key": "abc"}) == "abc"

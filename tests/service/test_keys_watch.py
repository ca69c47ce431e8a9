"""The keys file while serving (issue 16, finding 7): deleted, or made writable by others,
it is no longer trusted (every key refused with 503, logged at error once) until it is back;
at start a file others may write stops ``serve`` and one others may read is a warning.
docs/service.md, "The keys file while serving", says why."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shadowswap.clock import FakeClock
from shadowswap.errors import ConfigError
from shadowswap.runtime import build_runtime
from shadowswap.service.app import create_app
from shadowswap.service.auth import AuthError, KeyRing
from shadowswap.service.keys import add_key, mode_problem
from shadowswap.settings.config import StaticSettings, load_settings
from tests.service.conftest import environment

AUTH_LOG = "shadowswap.service.auth"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "keys.json"
    key, _ = add_key(path, ["tenant-a"])
    return path, key


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == AUTH_LOG and r.levelno == logging.ERROR]


def test_a_deleted_keys_file_refuses_every_key_until_it_is_restored(
    keys: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    path, key = keys
    caplog.set_level(logging.INFO, logger=AUTH_LOG)
    clock = FakeClock()
    ring = KeyRing(path, clock=clock)
    saved = path.read_bytes()
    path.unlink()
    clock.advance(1.0)
    for _ in range(3):
        with pytest.raises(AuthError) as refused:
            ring.authenticate(bearer(key))
        assert refused.value.status == 503 and refused.value.code == "auth_unavailable"
        assert "deleted while serving" in refused.value.detail
        assert str(path) in refused.value.detail
        clock.advance(1.0)
    logged = errors(caplog)
    assert len(logged) == 1 and logged[0].__dict__["event"] == "keys_file_deleted"
    path.write_bytes(saved)
    path.chmod(0o600)
    clock.advance(1.0)
    assert ring.authenticate(bearer(key)).allows("tenant-a")
    assert ring.refusal is None
    assert any("trusted again" in r.getMessage() for r in caplog.records if r.name == AUTH_LOG)


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_keys_file_made_writable_by_others_refuses_every_key_until_fixed(
    keys: tuple[Path, str], caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    path, key = keys
    clock = FakeClock()
    ring = KeyRing(path, clock=clock)
    path.chmod(mode)  # only the mode changes: same content, size, mtime
    clock.advance(1.0)
    with pytest.raises(AuthError) as refused:
        ring.authenticate(bearer(key))
    assert refused.value.status == 503
    assert f"mode {mode:04o}" in refused.value.detail and "chmod 600" in refused.value.detail
    clock.advance(1.0)
    with pytest.raises(AuthError):
        ring.authenticate(bearer(key))
    assert [r.__dict__["event"] for r in errors(caplog)] == ["keys_file_loose_mode"]
    path.chmod(0o600)
    clock.advance(1.0)
    assert ring.authenticate(bearer(key)).allows("tenant-a")


def test_a_missing_key_is_still_401_while_the_file_is_refused(keys: tuple[Path, str]) -> None:
    path, _ = keys
    clock = FakeClock()
    ring = KeyRing(path, clock=clock)
    path.unlink()
    clock.advance(1.0)
    with pytest.raises(AuthError) as refused:
        ring.authenticate({})
    assert refused.value.status == 401


def test_a_keys_file_writable_by_others_stops_the_start(keys: tuple[Path, str]) -> None:
    path, _ = keys
    path.chmod(0o666)
    with pytest.raises(ConfigError, match="RETRIEVAL_API_KEYS_FILE") as info:
        KeyRing(path)
    assert "0666" in str(info.value) and f"chmod 600 {path}" in str(info.value)


def test_a_keys_file_readable_by_others_is_a_warning_at_start(
    keys: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    path, key = keys
    path.chmod(0o644)
    ring = KeyRing(path)
    assert ring.authenticate(bearer(key)).allows("tenant-a")
    warned = [r for r in caplog.records if r.name == AUTH_LOG and r.levelno == logging.WARNING]
    assert len(warned) == 1 and "readable by other users" in warned[0].getMessage()


@pytest.mark.parametrize(
    ("mode", "bad"),
    [(0o600, False), (0o640, False), (0o644, False), (0o660, True), (0o606, True), (0o777, True)],
)
def test_mode_problem_pins_the_write_bits(mode: int, bad: bool) -> None:
    assert (mode_problem("k.json", mode) is not None) is bad


def test_over_http_a_deleted_keys_file_is_503_with_retry_after(
    tmp_path: Path, keys: tuple[Path, str]
) -> None:
    path, key = keys
    clock = FakeClock()
    runtime = build_runtime(StaticSettings(load_settings(environ=environment(tmp_path))))
    app = create_app(runtime, auth=KeyRing(path, clock=clock))
    body: dict[str, Any] = {"tenant": "tenant-a", "vector": [1.0, 0.0], "k": 1}
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            url = "/internal/retrieval/search"
            assert client.post(url, json=body, headers=bearer(key)).status_code == 200
            shutil.move(path, tmp_path / "elsewhere.json")
            clock.advance(1.0)
            r = client.post(url, json=body, headers=bearer(key))
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "auth_unavailable"
            assert r.headers["retry-after"] == "1"
            assert "deleted while serving" in r.json()["detail"]
    finally:
        runtime.close()

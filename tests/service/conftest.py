"""Helpers for the gateway's tests: an app over real stores, in-process, with keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shadowswap.runtime import Runtime, build_runtime
from shadowswap.service.app import create_app
from shadowswap.service.auth import KeyRing
from shadowswap.service.keys import add_key
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.stores.base import VectorStore


@dataclass
class Gateway:
    """An app over a runtime, a client, and keys: ``keys[name]`` is a raw API key."""

    runtime: Runtime
    client: TestClient
    keys: dict[str, str]
    keys_file: Path

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def post(self, path: str, body: Any, key: str | None = "admin", **kw: Any) -> Any:
        headers = {**(self.headers(key) if key else {}), **kw.pop("headers", {})}
        return self.client.post(f"/internal/retrieval/{path}", json=body, headers=headers, **kw)


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "RETRIEVAL_BACKEND": "faiss",
        "RETRIEVAL_FAISS_URL": str(tmp_path / "faiss"),
        "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": str(tmp_path / "outbox.sqlite3"),
        "RETRIEVAL_STATE_DIR": str(tmp_path / "state"),
        "RETRIEVAL_API_KEYS_FILE": str(tmp_path / "keys.json"),
    }
    env.update(extra)
    return env


def make_keys(path: Path) -> dict[str, str]:
    """Keys for tenants a and b, one for every tenant with status, and a status-less one."""
    keys = {}
    keys["a"], _ = add_key(path, ["tenant-a"], note="tenant a")
    keys["b"], _ = add_key(path, ["tenant-b"], note="tenant b")
    keys["admin"], _ = add_key(path, ["*"], status=True, note="operators")
    keys["all"], _ = add_key(path, ["*"], note="a gateway for every tenant, no status")
    return keys


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Any]:
    """Build gateways over FAISS (or given stores); each is closed at the end of the test."""
    made: list[tuple[Runtime, TestClient]] = []
    keys_file = tmp_path / "keys.json"
    keys = make_keys(keys_file)

    def make(
        primary: VectorStore | None = None,
        target: VectorStore | None = None,
        max_body_bytes: int | None = None,
        **env: str,
    ) -> Gateway:
        settings = load_settings(environ=environment(tmp_path, **env))
        runtime = build_runtime(
            StaticSettings(settings),
            primary=primary,
            target=target,  # type: ignore[arg-type]
        )
        app = create_app(runtime, auth=KeyRing(keys_file), max_body_bytes=max_body_bytes)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        made.append((runtime, client))
        return Gateway(runtime, client, keys, keys_file)

    yield make
    for runtime, client in made:
        client.__exit__(None, None, None)
        runtime.close()


@pytest.fixture
def gateway(gateway_factory: Any) -> Gateway:
    """A gateway over a FAISS primary, no target."""
    return gateway_factory()  # type: ignore[no-any-return]

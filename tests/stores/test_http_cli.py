"""The CLI with the hosted stores, as real processes: unreachable servers, missing locations,
masked credentials. (No server of these kinds runs here; see docs/stores-http.md.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import run
from tests.servers import free_port

SERVERS = {
    "elastic": "http://elastic:pw-e@127.0.0.1:{port}",
    "opensearch": "http://admin:pw-o@127.0.0.1:{port}",
    "weaviate": "http://127.0.0.1:{port}?grpc_port={port2}&api_key=pw-w",
    "pinecone": "http://127.0.0.1:{port}?api_key=pw-p",
}


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_check_of_an_unreachable_server_exits_1_saying_cannot_reach(
    tmp_path: Path, kind: str
) -> None:
    url = SERVERS[kind].format(port=free_port(), port2=free_port())
    env = {f"RETRIEVAL_{kind.upper()}_URL": url}
    out = run([sys.executable, "-m", "shadowswap", "check", "--backend", kind], tmp_path, env)
    assert out.returncode == 1, out.stderr
    assert "NOT REACHABLE" in out.stdout and "cannot reach" in out.stdout
    assert "Traceback" not in out.stderr + out.stdout
    assert "pw-" not in out.stdout + out.stderr  # credentials never printed

    as_json = run(
        [sys.executable, "-m", "shadowswap", "check", "--backend", kind, "--json"], tmp_path, env
    )
    (backend,) = json.loads(as_json.stdout)["backends"]
    assert as_json.returncode == 1 and backend["reachable"] is False
    assert "cannot reach" in backend["detail"] and "pw-" not in as_json.stdout


def test_a_hosted_store_without_location_is_a_configuration_error(tmp_path: Path) -> None:
    out = run([sys.executable, "-m", "shadowswap", "check", "--backend", "elastic"], tmp_path)
    assert out.returncode == 2
    assert "set RETRIEVAL_ELASTIC_URL" in out.stderr and "Traceback" not in out.stderr
    no_key = run(
        [sys.executable, "-m", "shadowswap", "check", "--backend", "pinecone"],
        tmp_path,
        {"RETRIEVAL_PINECONE_URL": "https://idx-123.svc.pinecone.io"},
    )
    assert no_key.returncode == 2 and "api_key=<key>" in no_key.stderr


def test_config_masks_the_credentials_of_every_hosted_store(tmp_path: Path) -> None:
    env = {
        f"RETRIEVAL_{kind.upper()}_URL": url.format(port=9200, port2=50051)
        for kind, url in SERVERS.items()
    }
    out = run([sys.executable, "-m", "shadowswap", "config", "--json"], tmp_path, env)
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)
    assert values["RETRIEVAL_ELASTIC_URL"] == "http://elastic:***@127.0.0.1:9200"
    assert values["RETRIEVAL_PINECONE_URL"] == "http://127.0.0.1:9200?api_key=***"
    assert "pw-" not in out.stdout

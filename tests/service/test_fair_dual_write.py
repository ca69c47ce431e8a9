"""Fair dual write through the gateway (issue 16, finding 1): a dual write larger than one
tenant may defer is answered 413 and nothing is written; the status page shows each
tenant's outbox use; and through ``shadowswap serve`` as a real process (FAISS primary,
LanceDB target), one tenant's flood leaves another's writes ``deferred``, and the outbox
empties without ``replay-outbox``."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from shadowswap.service.keys import add_key
from shadowswap.similarity import Metric
from shadowswap.stores.lancedb import LanceDBStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing.faults import FailingStore
from tests.service.conftest import Gateway
from tests.service.process import ServeProcess

DIM = 8


def vec(rng: random.Random) -> list[float]:
    return [rng.gauss(0, 1) for _ in range(DIM)]


def seed(gw: Gateway, tenant: str, ids: list[str], rng: random.Random) -> Any:
    docs = [{"doc_id": d, "vector": vec(rng)} for d in ids]
    return gw.post("upsert", {"tenant": tenant, "documents": docs})


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.1)


def test_a_dual_write_too_large_to_defer_is_answered_413_and_nothing_is_written(
    gateway_factory: Any, tmp_path: Path
) -> None:
    rng = random.Random(1)
    gw = gateway_factory(
        target=LanceDBStore(str(tmp_path / "lance"), Metric.COSINE),
        RETRIEVAL_TARGET_BACKEND="lancedb", FF_RETRIEVAL_DUAL_WRITE="ON",
    )  # fmt: skip
    assert seed(gw, "tenant-a", ["keep"], rng).status_code == 200
    r = gw.post(
        "delete", {"tenant": "tenant-a", "doc_ids": ["keep"] + [f"x{i}" for i in range(9999)]}
    )
    assert r.status_code == 413, r.text
    body = r.json()
    assert (body["error"], body["field"]) == ("batch_too_large", "doc_ids")
    assert "10000 changes" in body["detail"] and "at most 900" in body["detail"]
    assert "RETRIEVAL_DUAL_WRITE_OUTBOX_MAX=1000" in body["detail"]
    assert "retry-after" not in {k.lower() for k in r.headers}  # the same batch fails again
    assert body["trace_id"] == r.headers["x-trace-id"]
    assert gw.runtime.primary.count("tenant-a") == 1  # not half-deleted
    up = seed(gw, "tenant-a", [f"n{i}" for i in range(901)], rng)
    assert up.status_code == 413 and up.json()["field"] == "documents"
    assert gw.runtime.primary.count("tenant-a") == 1
    assert gw.runtime.writer.flush(60)  # the seed's own item, applied in the background
    stats = gw.runtime.outbox.stats()
    assert (stats.size, stats.dropped_full) == (0, 0)
    ok = gw.post("delete", {"tenant": "tenant-a", "doc_ids": [f"x{i}" for i in range(900)]})
    assert ok.status_code == 200 and ok.json()["dual_write"]["dropped"] == 0


def test_without_dual_write_a_large_delete_is_not_limited(gateway_factory: Any) -> None:
    gw = gateway_factory()
    r = gw.post("delete", {"tenant": "tenant-a", "doc_ids": [f"x{i}" for i in range(10_000)]})
    assert r.status_code == 200 and r.json()["dual_write"] is None


def test_status_shows_each_tenants_outbox_use(gateway_factory: Any) -> None:
    rng = random.Random(2)
    gw = gateway_factory(
        target=FailingStore(MemoryStore()), RETRIEVAL_TARGET_BACKEND="memory",
        FF_RETRIEVAL_DUAL_WRITE="ON", RETRIEVAL_DUAL_WRITE_OUTBOX_MAX="20",
        RETRIEVAL_DUAL_WRITE_CB_WINDOW_S="600",
    )  # fmt: skip
    for i in range(25):  # the target is down: a's items stay, past its share they drop
        assert seed(gw, "tenant-a", [f"a{i}"], rng).status_code == 200
    assert gw.runtime.writer.flush(30)
    assert seed(gw, "tenant-b", ["b0"], rng).json()["dual_write"]["dropped"] == 0
    outbox = gw.client.get("/internal/retrieval/status", headers=gw.headers("admin")).json()[
        "outbox"
    ]
    assert (outbox["capacity"], outbox["tenant_share"], outbox["max_deferrable"]) == (20, 2, 18)
    assert outbox["tenants"] == {
        "tenant-a": {"items": 18, "share": 2, "dropped_full": 7, "dropped_ttl": 0},
        "tenant-b": {"items": 1, "share": 2, "dropped_full": 0, "dropped_ttl": 0},
    }
    assert (outbox["size"], outbox["dropped_full"], outbox["tenants_total"]) == (19, 7, 2)


def test_serve_one_tenants_flood_never_drops_another_tenants_writes(tmp_path: Path) -> None:
    rng = random.Random(3)
    key, _ = add_key(tmp_path / "keys.json", ["a", "b"], status=True)
    config = tmp_path / ".env"
    config.write_text(
        "\n".join([
            "RETRIEVAL_BACKEND=faiss",
            f"RETRIEVAL_FAISS_URL={tmp_path / 'faiss'}",
            "RETRIEVAL_TARGET_BACKEND=lancedb",
            f"RETRIEVAL_LANCEDB_URL={tmp_path / 'lance'}",
            "FF_RETRIEVAL_DUAL_WRITE=ON",
            "RETRIEVAL_DUAL_WRITE_TIMEOUT_MS=10000",
            f"RETRIEVAL_DUAL_WRITE_OUTBOX_URL={tmp_path / 'outbox.sqlite3'}",
            f"RETRIEVAL_STATE_DIR={tmp_path / 'state'}",
            f"RETRIEVAL_API_KEYS_FILE={tmp_path / 'keys.json'}",
            "",
        ])
    )  # fmt: skip
    with (
        ServeProcess(tmp_path, config) as serve,
        httpx.Client(
            base_url=f"{serve.url}/internal/retrieval", timeout=60.0,
            headers={"Authorization": f"Bearer {key}"},
        ) as http,
    ):  # fmt: skip
        big = http.post("delete", json={"tenant": "a", "doc_ids": [f"a{i}" for i in range(10_000)]})
        assert big.status_code == 413 and big.json()["error"] == "batch_too_large", big.text
        outcomes = []
        for round_ in range(5):  # a deletes as much as it may, b writes single documents
            r = http.post("delete", json={"tenant": "a", "doc_ids": [
                f"a{round_}-{i}" for i in range(900)]})  # fmt: skip
            assert r.status_code == 200, r.text
            for i in range(4):
                docs = [{"doc_id": f"b{round_}-{i}", "vector": vec(rng)}]
                w = http.post("upsert", json={"tenant": "b", "documents": docs})
                assert w.status_code == 200, w.text
                outcomes.append(w.json()["dual_write"]["outcome"])
        assert outcomes == ["deferred"] * 20

        def status() -> Any:
            return http.get("status").json()

        wait_for(lambda: status()["outbox"]["size"] == 0, "the outbox drained by itself")
        target = next(b for b in status()["backends"] if b["role"] == "target")
        assert target["kind"] == "lancedb" and target["documents"] == 20
        use = status()["outbox"]["tenants"]
        assert use.get("b", {"dropped_full": 0})["dropped_full"] == 0

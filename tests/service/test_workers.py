"""``shadowswap serve --workers 2``: two processes behind one port, each with its own runtime
over the same FAISS catalog and outbox; ``/metrics`` answers the totals of both, whichever
worker serves the scrape; SIGTERM stops them all."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.service.process import ServeProcess

SEARCH = "/internal/retrieval/search"


def _total(metrics: str) -> float:
    prefix = 'retrieval_total{backend="faiss"'
    lines = [ln for ln in metrics.splitlines() if ln.startswith(prefix) and "primary" in ln]
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)


def _pids(serve: ServeProcess) -> set[int]:
    return {ln["pid"] for ln in serve.lines() if ln.get("path") == SEARCH}


@pytest.mark.slow
def test_two_workers_share_stores_and_report_one_set_of_metrics(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"RETRIEVAL_AUTH=OFF\nRETRIEVAL_FAISS_URL={tmp_path / 'faiss'}\n"
        f"RETRIEVAL_DUAL_WRITE_OUTBOX_URL={tmp_path / 'outbox.sqlite3'}\n"
    )
    with ServeProcess(tmp_path, tmp_path / ".env", "--workers", "2") as serve:
        doc = {"doc_id": "a", "vector": [1, 0, 0]}
        r = httpx.post(f"{serve.url}/internal/retrieval/upsert",
                       json={"tenant": "acme", "documents": [doc]}, timeout=30)  # fmt: skip
        assert r.status_code == 200, r.text
        searches = 0
        # fresh connections until both workers have answered searches (the kernel picks)
        while searches < 20 or len(_pids(serve)) < 2:
            assert searches < 500, "one worker took every connection"
            with httpx.Client(base_url=serve.url, timeout=30) as client:
                r = client.post(SEARCH, json={"tenant": "acme", "vector": [1, 0, 0], "k": 1})
            searches += 1
            # the write went through one worker; every worker sees it (shared FAISS catalog)
            assert r.status_code == 200 and r.json()["hits"][0]["doc_id"] == "a", r.text
        seen = set()
        for _ in range(6):
            with httpx.Client(base_url=serve.url, timeout=30) as client:
                seen.add(_total(client.get("/metrics").text))
        assert seen == {float(searches)}  # whichever worker answers the scrape: both counted
        assert serve.stop() == 0
    starts = [ln for ln in serve.lines() if ln.get("event") == "worker_start"]
    assert len({ln["pid"] for ln in starts}) == 2
    assert len([ln for ln in serve.lines() if ln.get("event") == "startup"]) == 1
    assert not re.search(r"Traceback", serve.text())

"""Tenant fairness through the gateway (issue 16): one tenant floods, another writes singles.

Setup: the real command (``python -m shadowswap serve``, one worker, API keys on) on loopback,
FAISS primary, embedded Chroma target, dual write ON (phase ``dual_write``), the default
write slots and outbox. Two tenants: ``victim`` writes one document per request, one request
at a time; ``flood`` runs, for as long as the victim writes, ``flooders`` concurrent clients
each sending 1,000-document upserts in a loop and one client sending deletes of 10,000 ids
in a loop (the issue's attack).

Each run measures the victim alone (``singles`` upserts), then the same number under the
flood; the figure of the run is the ratio of the victim's p99 under the flood to its p99
alone (the issue's goal: at most 2). Five runs (quick: two); the median and the spread
(min, max) of the ratio are reported, with the victim's failed writes (any status but 200),
its dual writes answered ``dropped`` (``dual_write.outcome``), and what the flooding tenant
got: successes, 4xx (a delete of 10,000 ids may be refused as oversize: expected, counted),
503 (its own queue full or too slow: expected under a flood, counted) and other errors.

The victim's latency includes the machine's CPU, which the flood shares: on a 2-core machine
the flood's 1,000-document upserts (FAISS, then Chroma's background apply) compete with the
victim's requests for the CPU whatever the gateway does; the slots decide only who waits for
a write slot. Timings depend on the machine's load; the lead re-measures on a quiet machine.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from shadowswap.service.keys import add_key

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script (and the --flood child): the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_service import _Gateway  # noqa: E402 - after the path, as above

DIM = 128
UPSERT = "/internal/retrieval/upsert"
_JSON = {"content-type": "application/json"}
DELETE = "/internal/retrieval/delete"


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"runs": 2, "singles": 40, "flooders": 20, "batch": 1000, "delete_ids": 10_000}
    return {"runs": 5, "singles": 100, "flooders": 20, "batch": 1000, "delete_ids": 10_000}


def _vectors(n: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [[round(float(x), 6) for x in row] for row in v]


class _Victim:
    """Single-document upserts, one at a time: latencies, failures, dual-write outcomes."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.vectors = _vectors(64, seed=3)
        self.sent = 0

    def write(self, n: int) -> dict[str, Any]:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        outcomes: Counter[str] = Counter()
        for _ in range(n):
            i = self.sent
            self.sent += 1
            body = {
                "tenant": "victim",
                "documents": [{"doc_id": f"v{i}", "vector": self.vectors[i % 64]}],
            }
            t0 = time.perf_counter()
            try:
                r = self.client.post(UPSERT, json=body)
            except httpx.HTTPError:
                statuses[0] += 1
                continue
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] += 1
            if r.status_code == 200:
                dual = r.json().get("dual_write") or {}
                outcomes[str(dual.get("outcome", "none"))] += 1
        return {"latencies": latencies, "statuses": statuses, "outcomes": outcomes}


class _Flood:
    """``flooders`` clients of 1,000-document upserts and one of 10,000-id deletes, looping
    until stopped; counts what they got."""

    def __init__(self, url: str, key: str, sizes: dict[str, int]) -> None:
        self.url, self.key, self.sizes = url, key, sizes
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.vectors = _vectors(sizes["batch"], seed=7)
        self.templates = self._templates()
        self.threads = [
            threading.Thread(target=self._upserts, args=(n,)) for n in range(sizes["flooders"])
        ] + [threading.Thread(target=self._deletes)]

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=120, headers={"Authorization": f"Bearer {self.key}"}
        )

    def _count(self, op: str, response: httpx.Response | None) -> None:
        if response is None:
            kind = "error"
        elif response.status_code == 200:
            kind = "ok"
        elif response.status_code == 503:
            kind = "503"
        elif 400 <= response.status_code < 500:
            kind = "4xx"
        else:
            kind = str(response.status_code)
        with self.lock:
            self.statuses[f"{op}.{kind}"] += 1

    def _templates(self) -> list[bytes]:
        """The upsert bodies, encoded once before the flood starts: the ids cycle through
        5,000 per client, so 5 bodies, with ``f#-`` where each client puts its number. The
        flood's own JSON encoding is the load generator's cost, not the gateway's, and a
        flood still encoding its bodies is not flooding yet."""
        batch = self.sizes["batch"]
        bodies = []
        for turn in range(max(1, 5000 // batch)):
            docs = [
                {"doc_id": f"f#-{(turn * batch + i) % 5000}", "vector": self.vectors[i]}
                for i in range(batch)
            ]
            bodies.append(json.dumps({"tenant": "flood", "documents": docs}).encode())
        return bodies

    def _upserts(self, n: int) -> None:
        bodies = [t.replace(b'"f#-', b'"f%d-' % n) for t in self.templates]
        with self._client() as client:
            round_ = 0
            while not self.stop.is_set():
                body = bodies[round_ % len(bodies)]
                round_ += 1
                try:
                    r: httpx.Response | None = client.post(UPSERT, content=body, headers=_JSON)
                except httpx.HTTPError:
                    r = None
                self._count("upsert", r)

    def _deletes(self) -> None:
        ids = [f"f{n}-{i}" for n in range(self.sizes["flooders"]) for i in range(5000)]
        size = self.sizes["delete_ids"]
        with self._client() as client:
            start = 0
            while not self.stop.is_set():
                chunk = [ids[(start + i) % len(ids)] for i in range(size)]
                start += size
                try:
                    r: httpx.Response | None = client.post(
                        DELETE, json={"tenant": "flood", "doc_ids": chunk}
                    )
                except httpx.HTTPError:
                    r = None
                self._count("delete", r)
                if r is not None and 400 <= r.status_code < 500:
                    self.stop.wait(0.5)  # refused as a whole: do not spin on it

    def __enter__(self) -> _Flood:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=300)


class _FloodProcess:
    """`_Flood` in a child process (``--flood``): its 21 client threads then compete with the
    gateway for the CPUs, as a real flooding tenant's traffic would, but not with the
    victim's client for this process's GIL, which would add the load generator's own
    waits to the victim's latencies."""

    def __init__(self, url: str, key: str, sizes: dict[str, int]) -> None:
        self.args = [sys.executable, __file__, "--flood", url, key, json.dumps(sizes)]
        self.statuses: Counter[str] = Counter()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _FloodProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"flooding":
            raise RuntimeError("the flood process did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        out, _ = self.proc.communicate(b"stop\n", timeout=600)  # stdin closed: stop
        self.statuses.update(json.loads(out.decode().strip().splitlines()[-1]))


def _flood_child(url: str, key: str, sizes: dict[str, int]) -> None:
    """The child of `_FloodProcess`: flood until stdin is closed, then print the counts."""
    with _Flood(url, key, sizes) as flood:
        print("flooding", flush=True)  # bodies encoded, clients started: the parent goes on
        sys.stdin.read()
    print(json.dumps(dict(flood.statuses)), flush=True)


def _wait_for_empty_outbox(url: str, key: str, timeout_s: float = 300.0) -> None:
    """Until the gateway's status page shows an empty outbox (or ``timeout_s``)."""
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        while time.monotonic() < deadline:
            try:
                outbox = client.get("/internal/retrieval/status").json().get("outbox") or {}
            except (httpx.HTTPError, ValueError):
                outbox = {}
            if outbox.get("size") == 0:
                time.sleep(1.0)  # the last batch's commit and the target's own work settle
                return
            time.sleep(0.5)
    print("fairness: the outbox did not empty in time; 'alone' is measured anyway")


def _p99_ms(latencies: list[float]) -> float:
    return float(np.percentile(np.array(latencies) * 1000.0, 99)) if latencies else float("nan")


def run(quick: bool) -> dict[str, float | str]:
    sizes = _sizes(quick)
    work = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    try:
        return _run(work, sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, sizes: dict[str, int]) -> dict[str, float | str]:
    victim_key, _ = add_key(work / "keys.json", ["victim"])
    flood_key, _ = add_key(work / "keys.json", ["flood"])
    status_key, _ = add_key(work / "keys.json", ["victim"], status=True)
    env = {
        "RETRIEVAL_BACKEND": "faiss",
        "RETRIEVAL_FAISS_URL": str(work / "faiss"),
        "RETRIEVAL_TARGET_BACKEND": "chroma",
        "RETRIEVAL_CHROMA_URL": str(work / "chroma"),
        "FF_RETRIEVAL_DUAL_WRITE": "ON",
        "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": str(work / "outbox.sqlite3"),
        "RETRIEVAL_STATE_DIR": str(work / "state"),
        "RETRIEVAL_API_KEYS_FILE": str(work / "keys.json"),
        # A 1,000-document dual write must fit what one tenant may defer: capacity minus one
        # tenant share (docs/dual-write.md), so >= 1,112 items with the default share of 0.1.
        # With the default 1,000 such a write is refused whole (413): nothing to measure.
        "RETRIEVAL_DUAL_WRITE_OUTBOX_MAX": "2000",
    }
    gateway = _Gateway(work, env)
    ratios: list[float] = []
    alone_p99: list[float] = []
    flood_p99: list[float] = []
    failed = dropped = written = 0
    flood_counts: Counter[str] = Counter()
    try:
        headers = {"Authorization": f"Bearer {victim_key}"}
        with httpx.Client(base_url=gateway.url, timeout=120, headers=headers) as client:
            victim = _Victim(client)
            victim.write(20)  # warm: the tenant's index and collection exist
            for _ in range(sizes["runs"]):
                # "alone" means alone: the previous run's flood is still being applied to the
                # target (the applier and its drain) until the outbox is empty.
                _wait_for_empty_outbox(gateway.url, status_key)
                alone = victim.write(sizes["singles"])
                with _FloodProcess(gateway.url, flood_key, sizes) as flood:
                    time.sleep(1.0)  # let the flood fill its slots and queue
                    loaded = victim.write(sizes["singles"])
                flood_counts.update(flood.statuses)
                a, f = _p99_ms(alone["latencies"]), _p99_ms(loaded["latencies"])
                alone_p99.append(a)
                flood_p99.append(f)
                ratios.append(f / a)
                for result in (alone, loaded):
                    written += result["statuses"][200]
                    failed += sum(n for s, n in result["statuses"].items() if s != 200)
                    dropped += result["outcomes"]["dropped"]
    finally:
        gateway.close()
    figures: dict[str, float | str] = {
        "runs": float(sizes["runs"]),
        "victim_singles_per_phase": float(sizes["singles"]),
        "flood_clients": float(sizes["flooders"]),
        "target": "chroma (embedded), dual write ON",
        "victim.p99_alone_ms_median": statistics.median(alone_p99),
        "victim.p99_flood_ms_median": statistics.median(flood_p99),
        "ratio.p99_flood_over_alone_median": statistics.median(ratios),
        "ratio.p99_flood_over_alone_min": min(ratios),
        "ratio.p99_flood_over_alone_max": max(ratios),
        "victim.written": float(written),
        "victim.failed": float(failed),
        "victim.dual_dropped": float(dropped),
    }
    for key in sorted(flood_counts):
        figures[f"flood.{key}"] = float(flood_counts[key])
    return figures


if __name__ == "__main__" and sys.argv[1:2] == ["--flood"]:
    _flood_child(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
elif __name__ == "__main__":
    for name, value in run(quick="--quick" in sys.argv).items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"fairness.{name}: {shown}")

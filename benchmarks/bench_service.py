"""The HTTP gateway's cost (issue 7): searches through ``shadowswap serve`` against the same
searches made in-process on the same store, in one run, printed as ratios.

Setup: a FAISS store of ``docs`` 384-d documents spread over ``tenants`` tenants (exact
search; each query picks a tenant at random), built once in a temporary directory. The
gateway is the real command (``python -m shadowswap serve``, one worker, API key auth on,
JSON access log to a file) on loopback; the in-process side is ``Runtime.router.search`` of
`shadowswap.runtime.build_runtime` over the same directory. Both sides run the same query
bodies.

Two measurements, each gateway then in-process:

* **concurrent**: ``connections`` clients for ``duration_s`` (32 connections, 20 s; quick: 8,
  4 s): throughput and p50/p99 latency;
* **serial**: one client, one request at a time: the p50 overhead a single caller sees (the
  issue's aim: under 1 ms).

Load generator: ``wrk`` (Debian's ``wrk`` package, a C load generator with a Lua script that
cycles through the pre-built bodies) when it is installed; otherwise a threaded httpx client
in this process, which costs far more per request than wrk and so overstates the gateway's
latency (the figure ``generator`` says which ran). Install with ``apt-get install wrk``.
The in-process side always uses threads calling the router.

Timings depend on the machine's load; the lead re-measures on a quiet machine.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from shadowswap.runtime import build_runtime
from shadowswap.service.keys import add_key
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing import clustered_vectors
from shadowswap.values import Document

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
BODIES = 256


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"docs": 10_000, "tenants": 4, "connections": 8, "duration_s": 4, "serial_s": 3}
    return {"docs": 100_000, "tenants": 20, "connections": 32, "duration_s": 20, "serial_s": 10}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _build_store(path: Path, docs: int, tenants: int) -> None:
    vectors, assign = clustered_vectors(docs, DIM, clusters=64, seed=11)
    store = FaissStore(str(path))
    try:
        per = docs // tenants
        for t in range(tenants):
            tenant = f"tenant-{t:02d}"
            for start in range(t * per, (t + 1) * per, 2000):
                batch = [
                    Document(tenant, f"d{i:07d}", vectors[i], {"cluster": int(assign[i])})
                    for i in range(start, min(start + 2000, (t + 1) * per))
                ]
                store.upsert(tenant, batch)
    finally:
        store.close()


def _bodies(tenants: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(5)
    picks = random.Random(5)
    out = []
    for _ in range(BODIES):
        query = rng.normal(size=DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        tenant = f"tenant-{picks.randrange(tenants):02d}"
        out.append({"tenant": tenant, "vector": [round(float(x), 6) for x in query], "k": 10})
    return out


# -- the gateway ---------------------------------------------------------------------------------
class _Gateway:
    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        envfile = work / "serve.env"
        envfile.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("RETRIEVAL_")}
        child_env["PYTHONPATH"] = str(ROOT / "src")
        self.log = (work / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shadowswap", "serve", "--env-file", str(envfile),
             "--port", str(self.port)],
            env=child_env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited early; see {work / 'serve.log'}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError("serve did not start")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


_LUA = """
local bodies = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do n = n + 1; bodies[n] = line end
end
local i = 0
request = function()
  i = (i %% n) + 1
  return wrk.format("POST", "/internal/retrieval/search",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %s"}, bodies[i])
end
"""


def _wrk(url: str, key: str, bodies_file: Path, connections: int, seconds: int) -> dict[str, float]:
    wrk = shutil.which("wrk")
    assert wrk is not None
    script = bodies_file.with_suffix(".lua")
    script.write_text(_LUA % key)
    threads = max(1, min(2, connections))
    out = subprocess.run(
        [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", str(script), url, "--", str(bodies_file)],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    p50 = _wrk_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M))
    p99 = _wrk_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:(.*)", out)  # printed only when there are some
    if rps is None:
        raise RuntimeError(f"wrk failed:\n{out}")
    failed = int(errors.group(1)) if errors else 0
    if socket_errors is not None:
        failed += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return {"rps": float(rps.group(1)), "p50_ms": p50, "p99_ms": p99, "errors": float(failed)}


def _wrk_ms(match: re.Match[str] | None) -> float:
    if match is None:
        raise RuntimeError("wrk printed no latency distribution")
    value = match.group(1)
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    return float(value)


def _threaded(
    call: Callable[[dict[str, object]], bool],
    bodies: list[dict[str, object]],
    connections: int,
    seconds: float,
) -> dict[str, float]:
    """``connections`` threads calling ``call`` for ``seconds``: throughput and latencies."""
    stop = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections

    def worker(n: int) -> None:
        i = n
        while time.monotonic() < stop:
            body = bodies[i % len(bodies)]
            i += connections
            t0 = time.perf_counter()
            ok = call(body)
            latencies[n].append(time.perf_counter() - t0)
            errors[n] += 0 if ok else 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = np.array([x for part in latencies for x in part]) * 1000.0
    return {
        "rps": len(flat) / elapsed,
        "p50_ms": float(np.percentile(flat, 50)),
        "p99_ms": float(np.percentile(flat, 99)),
        "errors": float(sum(errors)),
    }


def _httpx_load(
    url: str, key: str, bodies: list[dict[str, object]], connections: int, seconds: float
) -> dict[str, float]:
    local = threading.local()

    def call(body: dict[str, object]) -> bool:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(
                base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"}
            )
        return client.post("/internal/retrieval/search", json=body).status_code == 200

    return _threaded(call, bodies, connections, seconds)


# -- the run ---------------------------------------------------------------------------------------
def run(quick: bool) -> dict[str, float | str]:
    sizes = _sizes(quick)
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    try:
        return _run(work, sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, sizes: dict[str, int]) -> dict[str, float | str]:
    t0 = time.perf_counter()
    _build_store(work / "faiss", sizes["docs"], sizes["tenants"])
    build_s = time.perf_counter() - t0
    key, _ = add_key(work / "keys.json", ["*"])
    env = {
        "RETRIEVAL_BACKEND": "faiss",
        "RETRIEVAL_FAISS_URL": str(work / "faiss"),
        "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": str(work / "outbox.sqlite3"),
        "RETRIEVAL_STATE_DIR": str(work / "state"),
        "RETRIEVAL_API_KEYS_FILE": str(work / "keys.json"),
    }
    bodies = _bodies(sizes["tenants"])
    bodies_file = work / "bodies.jsonl"
    bodies_file.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    generator = "wrk" if shutil.which("wrk") else "httpx-threads"
    conns, secs, serial = sizes["connections"], sizes["duration_s"], sizes["serial_s"]

    gateway = _Gateway(work, env)
    try:
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}) as c:
            for body in bodies:  # warm: every tenant's index built, every path taken once
                r = c.post("/internal/retrieval/search", json=body, timeout=120)
                assert r.status_code == 200, r.text
        if generator == "wrk":
            gw = _wrk(gateway.url, key, bodies_file, conns, secs)
            gw1 = _wrk(gateway.url, key, bodies_file, 1, serial)
        else:
            gw = _httpx_load(gateway.url, key, bodies, conns, secs)
            gw1 = _httpx_load(gateway.url, key, bodies, 1, serial)
    finally:
        gateway.close()

    runtime = build_runtime(StaticSettings(load_settings(environ=env)))
    try:
        for body in bodies:
            runtime.router.search(str(body["tenant"]), body["vector"], 10)  # type: ignore[arg-type]

        def inproc(body: dict[str, object]) -> bool:
            runtime.router.search(str(body["tenant"]), body["vector"], 10)  # type: ignore[arg-type]
            return True

        ip = _threaded(inproc, bodies, conns, secs)
        ip1 = _threaded(inproc, bodies, 1, serial)
    finally:
        runtime.close()

    return {
        "generator": generator,
        "docs": float(sizes["docs"]),
        "tenants": float(sizes["tenants"]),
        "dimension": float(DIM),
        "connections": float(conns),
        "load_s": float(secs),
        "store_build_s": build_s,
        "gateway.rps": gw["rps"],
        "gateway.p50_ms": gw["p50_ms"],
        "gateway.p99_ms": gw["p99_ms"],
        "gateway.errors": gw["errors"],
        "inprocess.rps": ip["rps"],
        "inprocess.p50_ms": ip["p50_ms"],
        "inprocess.p99_ms": ip["p99_ms"],
        "ratio.rps_gateway_over_inprocess": gw["rps"] / ip["rps"],
        "ratio.p50_gateway_over_inprocess": gw["p50_ms"] / ip["p50_ms"],
        "ratio.p99_gateway_over_inprocess": gw["p99_ms"] / ip["p99_ms"],
        "serial.gateway_p50_ms": gw1["p50_ms"],
        "serial.inprocess_p50_ms": ip1["p50_ms"],
        "serial.gateway_p99_ms": gw1["p99_ms"],
        "serial.inprocess_p99_ms": ip1["p99_ms"],
        "serial.p50_overhead_ms": gw1["p50_ms"] - ip1["p50_ms"],
        "serial.errors": gw1["errors"],
    }


if __name__ == "__main__":
    for name, value in run(quick="--quick" in sys.argv).items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"service.{name}: {shown}")

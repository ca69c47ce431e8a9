"""Rollout control on the request path and at the operator's prompt.

Per request the router asks `EnvFileSettings.current()` once and `decisions.read_role` /
`write_plan` once: their cost must stay far below a store round trip. At the prompt, a
rollback dry-run on the runbook's sample env file and an applied edit (atomic write with
fsync and a .bak) are timed end to end.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from shadowswap.policy import read_role, write_plan
from shadowswap.rollout.journal import Journal
from shadowswap.rollout.rollback import Rollback, RollbackRequest
from shadowswap.settings.config import load_settings
from shadowswap.settings.live import EnvFileSettings

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "env.staging"


def _per_call_us(fn: object, calls: int) -> float:
    assert callable(fn)
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def run(quick: bool) -> dict[str, float | str]:
    calls = 20_000 if quick else 200_000
    settings = load_settings(
        environ={
            "RETRIEVAL_TARGET_BACKEND": "chroma",
            "FF_RETRIEVAL_DUAL_WRITE": "ON",
            "RETRIEVAL_CUTOVER_PERCENT": "50",
        }
    )
    tenants = [f"tenant-{i:05d}" for i in range(10_000)]
    figures: dict[str, float | str] = {
        "read_role_us": _per_call_us(lambda i: read_role(settings, tenants[i % 10_000]), calls),
        "write_plan_us": _per_call_us(lambda i: write_plan(settings, tenants[i % 10_000]), calls),
    }
    with tempfile.TemporaryDirectory() as tmp:
        env = Path(tmp) / ".env.staging"
        shutil.copyfile(FIXTURE, env)
        source = EnvFileSettings(env, environ={}, poll_interval_s=3600)
        figures["settings_current_us"] = _per_call_us(lambda i: source.current(), calls)
        figures["settings_look_us"] = _per_call_us(lambda i: source.refresh(), calls // 100)
        journal = Journal(Path(tmp) / "journal.ndjson")
        rounds = 5 if quick else 20
        for apply, name in ((False, "rollback_dry_run_ms"), (True, "rollback_apply_ms")):
            start = time.perf_counter()
            for _ in range(rounds):
                shutil.copyfile(FIXTURE, env)
                Rollback(journal, environ={}).run(RollbackRequest(env, apply, "bench", "benchmark"))
            figures[name] = (time.perf_counter() - start) / rounds * 1e3
    return figures

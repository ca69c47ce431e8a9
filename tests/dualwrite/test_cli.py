"""``shadowswap replay-outbox`` and ``scripts/replay_outbox.py`` as real processes: output,
JSON keys (CONTRACT §6), exit codes for cron, clear errors. FAISS primary and embedded Chroma
target on disk, as the defaults would have them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from shadowswap.clock import SystemClock
from shadowswap.dualwrite.breaker import Breaker
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.metrics import Metrics
from shadowswap.similarity import Metric
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing.faults import FailingStore
from tests.dualwrite.conftest import doc, static
from tests.helpers import ROOT, run
from tests.servers import free_port

SCRIPT = ROOT / "scripts" / "replay_outbox.py"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "RETRIEVAL_BACKEND": "faiss",
        "RETRIEVAL_TARGET_BACKEND": "chroma",
        "FF_RETRIEVAL_DUAL_WRITE": "ON",
        "RETRIEVAL_FAISS_URL": str(tmp_path / "faiss"),
        "RETRIEVAL_CHROMA_URL": str(tmp_path / "chroma"),
        "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": str(tmp_path / "outbox.sqlite3"),
        **extra,
    }


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "shadowswap", "replay-outbox", *args]


def script(*args: str) -> list[str]:
    return [sys.executable, str(SCRIPT), *args]


def fill_outbox(tmp_path: Path) -> None:
    """Write through a dual writer whose Chroma target is down: the primary gets everything,
    the outbox the changes the target missed."""
    primary = FaissStore(tmp_path / "faiss", Metric.COSINE)
    target = FailingStore(ChromaStore(str(tmp_path / "chroma"), Metric.COSINE))
    clock, sink = SystemClock(), Metrics.null()
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
    writer = DualWriter(
        primary,
        target,
        static(**env_for(tmp_path)),
        outbox,
        Breaker(clock, sink.breaker_state),
        sink,
        clock,
    )
    writer.upsert("acme", [doc("acme", "1"), doc("acme", "2"), doc("acme", "3")])
    writer.flush(30)  # each background attempt fails: three open the breaker
    writer.upsert("acme", [doc("acme", "1", 2)])
    writer.flush(30)
    writer.delete("acme", ["3"])
    writer.flush(30)
    writer.upsert("beta", [doc("beta", "x")])
    writer.close()
    outbox.close()
    primary.close()


def contents(tmp_path: Path) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    primary = FaissStore(tmp_path / "faiss", Metric.COSINE)
    target = ChromaStore(str(tmp_path / "chroma"), Metric.COSINE)
    out = tuple(
        {t: {d.doc_id: d.content_hash for p in s.scan(t) for d in p} for t in ("acme", "beta")}
        for s in (primary, target)
    )
    primary.close()
    target.close()
    return out  # type: ignore[return-value]


def test_the_runbook_script_replays_everything_and_reports_the_contract_keys(
    tmp_path: Path,
) -> None:
    fill_outbox(tmp_path)
    env = env_for(tmp_path)
    dry = run(script("--dry-run", "--max-items", "100", "--json"), tmp_path, env)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["would_replay"] == 6 and planned["remaining"] == 6
    assert planned["tenants"]["acme"]["upsert"] == {"items": 4, "documents": 3, "failing": 4}
    out = run(script("--max-items", "500", "--sleep-ms", "5", "--json"), tmp_path, env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {"replayed", "failed", "skipped_superseded", "remaining"} <= report.keys()
    # applied: acme 1 (the newest of its two items), acme 2, beta x; skipped: 3's delete (the
    # target never held 3); superseded: acme 1's first item and 3's upsert
    assert (report["replayed"], report["failed"], report["remaining"]) == (3, 0, 0)
    assert report["skipped_superseded"] == 3
    primary, target = contents(tmp_path)
    assert primary == target and set(primary["acme"]) == {"1", "2"}
    again = run(cli("--json"), tmp_path, env)  # nothing due: still success
    assert again.returncode == 0 and json.loads(again.stdout)["replayed"] == 0


def test_dry_run_shows_counts_and_no_content_and_changes_nothing(tmp_path: Path) -> None:
    fill_outbox(tmp_path)
    out = run(cli("--dry-run"), tmp_path, env_for(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "6 items stored" in out.stdout and "oldest" in out.stdout
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("  ")]
    assert ["acme", "upsert", "4", "3", "4"] in rows and ["beta", "upsert", "1", "1", "0"] in rows
    assert "v0 1" not in out.stdout + out.stderr  # document text never shown
    assert (
        json.loads(run(cli("--dry-run", "--json"), tmp_path, env_for(tmp_path)).stdout)["remaining"]
        == 6
    )


def test_max_items_limits_a_run(tmp_path: Path) -> None:
    fill_outbox(tmp_path)
    out = run(cli("--max-items", "1", "--json"), tmp_path, env_for(tmp_path))
    report = json.loads(out.stdout)
    # the oldest document (acme 1) has two items: they are handled together
    assert out.returncode == 0 and (report["replayed"], report["remaining"]) == (1, 4)


def test_an_unreachable_target_exits_1_and_keeps_the_items(tmp_path: Path) -> None:
    fill_outbox(tmp_path)
    env = env_for(tmp_path, RETRIEVAL_CHROMA_URL=f"http://127.0.0.1:{free_port()}")
    out = run(script("--json"), tmp_path, env)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["failed"] > 0 and report["remaining"] == 6 and report["stopped"]
    assert "Traceback" not in out.stderr
    human = run(cli(), tmp_path, env)
    assert human.returncode == 1 and "failed" in human.stdout and "Traceback" not in human.stderr
    dry = json.loads(run(cli("--dry-run", "--json"), tmp_path, env).stdout)
    assert dry["failing"] == report["failed"] == 5  # acme's five items, with their errors


def test_a_corrupt_outbox_file_exits_1_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"\x00garbage that is not SQLite\x00" * 200)
    for args in (script("--json"), cli("--dry-run")):
        out = run(args, tmp_path, env_for(tmp_path))
        assert out.returncode == 1
        assert out.stdout == ""
        assert str(path) in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "args",
    [["--max-items", "0"], ["--sleep-ms", "-1"], ["--max-items", "many"], ["--frobnicate"]],
)
def test_bad_usage_exits_2(tmp_path: Path, args: list[str]) -> None:
    out = run(script(*args), tmp_path, env_for(tmp_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_a_bad_outbox_url_is_a_configuration_error(tmp_path: Path) -> None:
    out = run(cli(), tmp_path, env_for(tmp_path, RETRIEVAL_DUAL_WRITE_OUTBOX_URL="redis://x/0"))
    assert out.returncode == 2 and "RETRIEVAL_DUAL_WRITE_OUTBOX_URL" in out.stderr

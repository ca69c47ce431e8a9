"""The runbook's commands, word for word, as real processes; `shadowswap phase`; exit codes
and messages for a missing or unwritable env file."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowswap.settings.config import load_settings
from tests.helpers import ROOT, cli, run
from tests.rollout.stub_service import StubRetrievalService

FIXTURE = ROOT / "tests" / "fixtures" / "env.staging"
# Runbook 002, "Commande (dry-run puis apply)", copied as written.
RUNBOOK_DRY_RUN = (
    "python scripts/rollback_retrieval.py --env-file .env.staging --dry-run --operator alice "
    '--reason "drill"'
)
RUNBOOK_APPLY = (
    "python scripts/rollback_retrieval.py --env-file .env.staging --apply --operator alice "
    '--reason "incident-123"'
)
JOURNAL = Path("artifacts") / "rollback_drill_log.ndjson"
#: CONTRACT §3's fields in their order, then ours: what each change replaced (issue 16)
FIELDS = ["timestamp", "operator", "env_file", "apply", "result", "duration_s", "changes", "notes"]
FIELDS += ["previous"]


def runbook(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a runbook line as an operator would, from a checkout: `python` is this interpreter
    and `scripts/` is the repository's."""
    argv = shlex.split(line)
    assert argv[0] == "python"
    return run([sys.executable, *argv[1:]], cwd)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A working directory like the service's: scripts/ and a .env.staging full of comments,
    quotes and export lines."""
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")
    (tmp_path / ".env.staging").write_bytes(FIXTURE.read_bytes())
    return tmp_path


def journal_lines(cwd: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (cwd / JOURNAL).read_text().splitlines()]


def test_runbook_002_dry_run_then_apply_verbatim(checkout: Path) -> None:
    original = FIXTURE.read_bytes()
    dry = runbook(RUNBOOK_DRY_RUN, checkout)
    assert dry.returncode == 0, dry.stderr
    assert "Traceback" not in dry.stderr
    assert (checkout / ".env.staging").read_bytes() == original
    assert not (checkout / ".env.staging.bak").exists()
    assert "1. FF_RETRIEVAL_DUAL_WRITE=OFF" in dry.stdout
    assert "+export FF_RETRIEVAL_DUAL_WRITE='OFF'" in dry.stdout
    assert "s3cret-pw" not in dry.stdout

    applied = runbook(RUNBOOK_APPLY, checkout)
    assert applied.returncode == 0, applied.stderr
    assert (checkout / ".env.staging.bak").read_bytes() == original
    new = (checkout / ".env.staging").read_text()
    old_lines, new_lines = FIXTURE.read_text().splitlines(), new.splitlines()
    assert [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b] == [
        ("export FF_RETRIEVAL_SHADOW_READ=ON", "export FF_RETRIEVAL_SHADOW_READ=OFF"),
        ("export FF_RETRIEVAL_DUAL_WRITE='on'", "export FF_RETRIEVAL_DUAL_WRITE='OFF'"),
        ('RETRIEVAL_CUTOVER_TENANTS="internal"', 'RETRIEVAL_CUTOVER_TENANTS=""'),
        (
            "export RETRIEVAL_CUTOVER_PERCENT=10   # 10% of tenants, stable hash",
            "export RETRIEVAL_CUTOVER_PERCENT=0   # 10% of tenants, stable hash",
        ),
    ]
    settings = load_settings(checkout / ".env.staging", environ={})
    assert (settings.dual_write, settings.shadow_read, settings.backend) == (False, False, "faiss")

    dry_entry, apply_entry = journal_lines(checkout)
    changes = {
        "FF_RETRIEVAL_DUAL_WRITE": "OFF",
        "FF_RETRIEVAL_SHADOW_READ": "OFF",
        "RETRIEVAL_CUTOVER_TENANTS": "",
        "RETRIEVAL_CUTOVER_PERCENT": "0",
    }
    for entry, apply, notes in ((dry_entry, False, "drill"), (apply_entry, True, "incident-123")):
        assert list(entry) == FIELDS
        assert entry["operator"] == "alice" and entry["env_file"] == ".env.staging"
        assert entry["apply"] is apply and entry["result"] == "success"
        # the fixture's PostgreSQL outbox is not reachable from here: said, password masked
        unread = "outbox: not read: outbox open failed: postgresql://retrieval:***@db.staging"
        assert entry["notes"].startswith(f"{notes}; {unread}"), entry["notes"]
        assert "s3cret-pw" not in entry["notes"] and entry["changes"] == changes
        assert isinstance(entry["duration_s"], float) and entry["duration_s"] >= 0
        assert str(entry["timestamp"]).endswith("Z")


def test_rollback_json_is_one_document(checkout: Path) -> None:
    out = run(
        cli("rollback", "--env-file", ".env.staging", "--dry-run", "--operator", "alice",
            "--reason", "drill", "--json"),
        checkout,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [s["step"] for s in report["steps"]] == [0, 1, 2, 3, 4, 5, 6]
    assert report["result"] == "success" and report["apply"] is False
    assert report["journal"] == str(JOURNAL)


def test_journal_path_from_the_flag_and_the_variable(checkout: Path) -> None:
    args = ["--env-file", ".env.staging", "--dry-run", "--operator", "alice", "--reason", "x"]
    flagged = run(cli("rollback", *args, "--journal", "logs/j.ndjson"), checkout)
    assert flagged.returncode == 0, flagged.stderr
    assert (checkout / "logs" / "j.ndjson").exists()
    configured = run(
        cli("rollback", *args), checkout, {"RETRIEVAL_ROLLBACK_JOURNAL": "other/r.ndjson"}
    )
    assert configured.returncode == 0, configured.stderr
    assert (checkout / "other" / "r.ndjson").exists()
    assert not (checkout / JOURNAL).exists()


def test_a_missing_env_file_exits_2_with_a_clear_message(checkout: Path) -> None:
    out = runbook(RUNBOOK_APPLY.replace(".env.staging", ".env.nope"), checkout)
    assert out.returncode == 2
    assert "--env-file='.env.nope'" in out.stderr and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr
    (entry,) = journal_lines(checkout)
    assert entry["result"] == "failure"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env-file", ".env.staging", "--operator", "a", "--reason", "r"], "exactly one of"),
        (["--env-file", ".env.staging", "--dry-run", "--apply", "--operator", "a", "--reason",
          "r"], "exactly one of"),
        (["--env-file", ".env.staging", "--dry-run", "--reason", "r"], "--operator"),
        (["--env-file", ".env.staging", "--dry-run", "--operator", "a"], "--reason"),
        (["--env-file", ".env.staging", "--dry-run", "--operator", "al@ex.com", "--reason", "r"],
         "e-mail"),
        (["--env-file", ".env.staging", "--dry-run", "--operator", "a", "--reason", "r",
          "--backend", "mongo"], "--backend"),
        (["--dry-run", "--operator", "a", "--reason", "r"], "--env-file"),
    ],
)  # fmt: skip
def test_bad_usage_exits_2(checkout: Path, args: list[str], message: str) -> None:
    out = run([sys.executable, "scripts/rollback_retrieval.py", *args], checkout)
    assert out.returncode == 2, out.stdout
    assert message in out.stderr and "Traceback" not in out.stderr
    assert (checkout / ".env.staging").read_bytes() == FIXTURE.read_bytes()


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """Make ``directory`` and its files unwritable for real: permission bits for a normal
    user, the immutable attribute for root (which ignores permission bits)."""
    files = [p for p in directory.iterdir() if p.is_file()]
    if os.geteuid() != 0:
        for path in files:
            path.chmod(0o444)
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    assert chattr, "running as root: chattr (e2fsprogs) is needed to make a file unwritable"
    subprocess.run([chattr, "+i", *map(str, files), str(directory)], check=True)
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", *map(str, files), str(directory)], check=True)


def test_an_unwritable_env_file_exits_1_and_stays_as_it_was(tmp_path: Path) -> None:
    locked = tmp_path / "etc"
    locked.mkdir()
    (locked / ".env.staging").write_bytes(FIXTURE.read_bytes())
    with unwritable(locked):
        out = run(
            [sys.executable, str(ROOT / "scripts" / "rollback_retrieval.py"), "--env-file",
             "etc/.env.staging", "--apply", "--operator", "alice", "--reason", "incident-123"],
            tmp_path,
        )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "cannot write etc/.env.staging" in out.stderr and "Traceback" not in out.stderr
    assert (locked / ".env.staging").read_bytes() == FIXTURE.read_bytes()
    assert sorted(p.name for p in locked.iterdir()) == [".env.staging"]
    (entry,) = journal_lines(tmp_path)
    assert entry["result"] == "failure" and entry["apply"] is True and entry["changes"] == {}


def test_smoke_url_result_goes_in_the_journal(checkout: Path) -> None:
    with StubRetrievalService(
        lambda: load_settings(checkout / ".env.staging", environ={}).backend
    ) as stub:
        out = run(
            cli("rollback", "--env-file", ".env.staging", "--apply", "--operator", "alice",
                "--reason", "drill", "--smoke-url", stub.url, "--smoke-dim", "8"),
            checkout,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (entry,) = journal_lines(checkout)
    assert entry["notes"].startswith("drill; outbox: not read: ")
    assert entry["notes"].endswith("; smoke: healthz 200, search 200 from faiss (0 hits)")


def test_a_failed_smoke_test_exits_1(checkout: Path) -> None:
    with StubRetrievalService(lambda: "chroma") as stub:
        out = run(
            cli("rollback", "--env-file", ".env.staging", "--apply", "--operator", "alice",
                "--reason", "drill", "--smoke-url", stub.url, "--smoke-wait-s", "1"),
            checkout,
        )  # fmt: skip
    assert out.returncode == 1
    assert "does not follow the env file" in out.stdout
    (entry,) = journal_lines(checkout)
    assert entry["result"] == "failure"


# -- phases --------------------------------------------------------------------------------
def test_phase_status_names_the_phase_and_the_next_step(checkout: Path) -> None:
    out = run(cli("phase", "status", "--env-file", ".env.staging", "--json"), checkout)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["phase"] == "cutover"
    assert status["label"] == "cutover 10% + tenants internal"
    assert status["advance_to"] == "cutover 50% + tenants internal"
    assert "widen to 50%" in status["next"]
    human = run(cli("phase", "status", "--env-file", ".env.staging"), checkout)
    assert human.stdout.startswith("phase: cutover 10% + tenants internal\n")


def test_phase_moves_edit_refuse_and_force(checkout: Path) -> None:
    common = ["--env-file", ".env.staging", "--operator", "alice", "--reason", "widen"]
    advance = run(cli("phase", "advance", "--apply", *common, "--json"), checkout)
    assert advance.returncode == 0, advance.stderr
    report = json.loads(advance.stdout)
    assert (report["from"], report["to"]) == (
        "cutover 10% + tenants internal",
        "cutover 50% + tenants internal",
    )
    assert report["changes"] == {"RETRIEVAL_CUTOVER_PERCENT": "50"}
    assert (checkout / ".env.staging.bak").read_bytes() == FIXTURE.read_bytes()
    assert load_settings(checkout / ".env.staging", environ={}).cutover_percent == 50

    swap = run(cli("phase", "set", "swapped", "--apply", *common), checkout)
    assert swap.returncode == 1
    assert "raise the cutover to 100% before the swap" in swap.stderr
    assert "reconcile with drift 0" in swap.stderr and "--force" in swap.stderr
    assert load_settings(checkout / ".env.staging", environ={}).backend == "faiss"

    forced = run(cli("phase", "set", "swapped", "--apply", "--force", *common), checkout)
    assert forced.returncode == 0, forced.stderr
    assert "FORCED past" in forced.stderr
    settings = load_settings(checkout / ".env.staging", environ={})
    assert (settings.backend, settings.target_backend) == ("chroma", "faiss")

    back = run(cli("phase", "back", "--dry-run", *common), checkout)
    assert back.returncode == 0, back.stderr
    assert "swapped -> cutover 100%" in back.stdout

    entries = journal_lines(checkout)
    assert [(e["apply"], e["result"]) for e in entries] == [
        (True, "success"),
        (True, "failure"),
        (True, "success"),
        (False, "success"),
    ]
    assert "forced past" in str(entries[2]["notes"])
    assert str(entries[1]["notes"]).startswith("phase set: widen; error: ")


def test_a_reconcile_file_of_the_old_format_does_not_open_the_swap(checkout: Path) -> None:
    state = checkout / "data" / "state"
    state.mkdir(parents=True)
    (state / "reconcile_last.json").write_text('{"drift": 0, "tenants": {}}')
    common = ["--env-file", ".env.staging", "--operator", "alice", "--reason", "go"]
    up = run(cli("phase", "set", "cutover", "--percent", "100", "--apply", *common), checkout)
    assert up.returncode == 0, up.stderr
    swap = run(cli("phase", "advance", "--apply", *common), checkout)
    assert swap.returncode == 1, swap.stdout
    assert "does not record the write plan it was taken under" in swap.stderr
    assert "run `shadowswap reconcile`" in swap.stderr and "Traceback" not in swap.stderr
    status = json.loads(
        run(cli("phase", "status", "--env-file", ".env.staging", "--json"), checkout).stdout
    )
    assert status["phase"] == "cutover" and status["drift"] is None
    assert status["reconcile"]["fresh"] is False and status["reconcile"]["drift"] == 0
    (reason,) = status["reconcile"]["reasons"]
    assert "does not record the write plan" in reason
    forced = run(cli("phase", "advance", "--apply", "--force", *common), checkout)
    assert forced.returncode == 0, forced.stderr
    assert (
        json.loads(
            run(cli("phase", "status", "--env-file", ".env.staging", "--json"), checkout).stdout
        )["phase"]
        == "swapped"
    )

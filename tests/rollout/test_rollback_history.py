"""Issue 16, "Rollback keeps history" and "Files are written safely", through the real CLI:
every apply keeps the file it replaced (``.bak`` and a timestamped copy), the journal says
what each change replaced, concurrent applies are serialised and each journaled, the ``.bak``
write never goes through a symlink, a read-only env file is refused even to root, and
python-dotenv's parse warning is said once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from shadowswap.settings.envfile import parse_values
from tests.helpers import child_env, cli, run

ORIGINAL = (
    "# staging\n"
    "RETRIEVAL_BACKEND=faiss\n"
    "RETRIEVAL_TARGET_BACKEND=chroma\n"
    "export FF_RETRIEVAL_DUAL_WRITE='on'\n"
    "FF_RETRIEVAL_SHADOW_READ=ON\n"
    "RETRIEVAL_CUTOVER_TENANTS=internal\n"
    "RETRIEVAL_CUTOVER_PERCENT=10\n"
    "RETRIEVAL_API_KEY=s3cret-value\n"
    "RETRIEVAL_STATE_DIR=./state\n"
)
ROLLED_BACK = {
    "FF_RETRIEVAL_DUAL_WRITE": "OFF",
    "FF_RETRIEVAL_SHADOW_READ": "OFF",
    "RETRIEVAL_CUTOVER_TENANTS": "",
    "RETRIEVAL_CUTOVER_PERCENT": "0",
}
BEFORE = {
    "FF_RETRIEVAL_DUAL_WRITE": "on",
    "FF_RETRIEVAL_SHADOW_READ": "ON",
    "RETRIEVAL_CUTOVER_TENANTS": "internal",
    "RETRIEVAL_CUTOVER_PERCENT": "10",
}
APPLY = ["--env-file", ".env", "--apply", "--operator", "alice", "--reason", "incident-7"]


@pytest.fixture
def env(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(ORIGINAL)
    return path


def journal(cwd: Path) -> list[dict[str, object]]:
    text = (cwd / "artifacts" / "rollback_drill_log.ndjson").read_text()
    return [json.loads(line) for line in text.splitlines()]


def stamped_backups(bak: Path) -> list[Path]:
    """The timestamped copies of ``bak``, oldest first (``<file>.bak.<UTC stamp>``)."""
    return sorted(bak.parent.glob(f"{bak.name}.*"))


def backups(env: Path) -> list[bytes]:
    """Every copy an apply kept: ``.bak`` and the timestamped ones."""
    bak = Path(f"{env}.bak")
    return [p.read_bytes() for p in [bak, *stamped_backups(bak)] if p.exists()]


def rollback(cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(cli("rollback", *APPLY), cwd)


def test_a_second_rollback_keeps_the_original_and_the_journal_says_what_was_replaced(
    env: Path, tmp_path: Path
) -> None:
    first, second = rollback(tmp_path), rollback(tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert {k: parse_values(env.read_text())[k] for k in ROLLED_BACK} == ROLLED_BACK
    # the file as it was before the rollback is still on disk, under the runbook's name
    assert Path(f"{env}.bak").read_bytes() == ORIGINAL.encode()
    assert ORIGINAL.encode() in backups(env)
    one, two = journal(tmp_path)
    assert one["changes"] == ROLLED_BACK and one["previous"] == BEFORE
    assert two["changes"] == {} and two["previous"] == {}


def test_phase_moves_then_a_rollback_keep_every_state(env: Path, tmp_path: Path) -> None:
    env.write_text("# staging\nRETRIEVAL_BACKEND=faiss\nRETRIEVAL_STATE_DIR=./state\n")
    states = [env.read_bytes()]
    advance = ["phase", "advance", *APPLY]
    out = run(cli(*advance[:2], "--target", "chroma", *advance[2:]), tmp_path)
    assert out.returncode == 0, out.stderr
    states.append(env.read_bytes())
    out = run(cli(*advance), tmp_path)
    assert out.returncode == 0, out.stderr
    states.append(env.read_bytes())
    out = rollback(tmp_path)
    assert out.returncode == 0, out.stderr
    kept = backups(env)
    assert all(state in kept for state in states), "a state before an apply was lost"
    assert len(stamped_backups(Path(f"{env}.bak"))) == 3  # one per apply, none replaced
    lines = journal(tmp_path)
    assert [line["previous"] for line in lines] == [
        {"FF_RETRIEVAL_DUAL_WRITE": None, "RETRIEVAL_TARGET_BACKEND": None},
        {"FF_RETRIEVAL_SHADOW_READ": None},
        {"FF_RETRIEVAL_DUAL_WRITE": "ON", "FF_RETRIEVAL_SHADOW_READ": "ON"},
    ]


def test_six_concurrent_rollbacks_are_serialised_and_each_journaled(
    env: Path, tmp_path: Path
) -> None:
    processes = [
        subprocess.Popen(
            cli("rollback", *APPLY),
            cwd=tmp_path,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=240), *p.communicate()) for p in processes]
    assert [code for code, _, _ in results] == [0] * 6, [err for _, _, err in results]
    lines = journal(tmp_path)
    assert len(lines) == 6 and all(line["result"] == "success" for line in lines)
    # exactly one run found something to change; it recorded what it replaced
    changed = [line for line in lines if line["changes"]]
    assert len(changed) == 1
    assert changed[0]["changes"] == ROLLED_BACK and changed[0]["previous"] == BEFORE
    assert Path(f"{env}.bak").read_bytes() == ORIGINAL.encode()
    assert [p.read_bytes() for p in stamped_backups(Path(f"{env}.bak"))] == [ORIGINAL.encode()]


def test_a_symlink_at_the_bak_path_is_never_written_through(env: Path, tmp_path: Path) -> None:
    precious = tmp_path / "elsewhere" / "precious.txt"
    precious.parent.mkdir()
    precious.write_text("not yours\n")
    Path(f"{env}.bak").symlink_to(precious)
    out = rollback(tmp_path)
    assert out.returncode == 0, out.stderr
    assert precious.read_text() == "not yours\n"
    bak = Path(f"{env}.bak")
    assert not bak.is_symlink() and bak.read_bytes() == ORIGINAL.encode()


def test_a_symlink_at_the_journal_path_is_refused(env: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("not yours\n")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "rollback_drill_log.ndjson").symlink_to(precious)
    out = run(cli("rollback", *APPLY[:2], "--dry-run", *APPLY[3:]), tmp_path)
    assert out.returncode == 1
    assert "is a symbolic link" in out.stderr and "Traceback" not in out.stderr
    assert precious.read_text() == "not yours\n"


def test_a_read_only_env_file_is_refused_even_to_root(env: Path, tmp_path: Path) -> None:
    """Tests run as root here, where ``os.access`` said yes to any file."""
    env.chmod(0o444)
    for command in (["rollback", *APPLY], ["phase", "set", "legacy", *APPLY, "--force"]):
        out = run(cli(*command), tmp_path)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "cannot write .env: it is " in out.stderr and "(mode 0444)" in out.stderr
        if os.geteuid() == 0:
            assert "read-only (mode 0444): chmod u+w .env to allow edits" in out.stderr
        assert "Traceback" not in out.stderr
        assert env.read_text() == ORIGINAL
    assert not Path(f"{env}.bak").exists() and stamped_backups(Path(f"{env}.bak")) == []


def test_the_dotenv_parse_warning_is_said_once_per_run(env: Path, tmp_path: Path) -> None:
    env.write_text(ORIGINAL.replace("# staging\n", "# staging\nthis line is not valid\n"))
    out = rollback(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "python-dotenv could not parse" not in out.stderr
    warnings = [line for line in out.stderr.splitlines() if "line 2" in line]
    assert len(warnings) == 1, out.stderr
    record = json.loads(warnings[0])
    assert record["level"] == "warning" and record["env_file"] == ".env"
    assert record["line"] == 2


def test_a_state_directory_next_to_the_env_file_does_not_block_the_apply(
    env: Path, tmp_path: Path
) -> None:
    """The apply's lock (on the env file) and the write-plan record's (on the state
    directory) are different locks, even when the state directory is the env file's."""
    env.write_text(ORIGINAL.replace("RETRIEVAL_STATE_DIR=./state", "RETRIEVAL_STATE_DIR=."))
    out = run(cli("rollback", *APPLY), tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "write_plan.json").is_file()

"""scripts/ensure_system_packages.sh waits for apt's lock (issue 16, finding 9): it failed with
apt's exit 100 when another apt process held the dpkg lock.

The script runs with a PATH of fakes: ``id`` says root, the wanted commands are missing, and
``apt-get`` records its arguments and plays apt's lock: while the lock file exists it exits
100 ("Could not get lock") unless it was given ``-o DPkg::Lock::Timeout=N`` with N > 0, in
which case it waits, that is, the other apt process finishes (the lock file goes) and it goes
on. ``update`` can be told to fail a number of times (the lists lock, which older apt does
not wait for), ``install`` to fail the first time (stale package lists)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ensure_system_packages.sh"

FAKE_APT = r"""#!/bin/bash
printf '%s\n' "$*" >> "$FAKE_DIR/calls"
timeout=0
for arg in "$@"; do
  case "$arg" in DPkg::Lock::Timeout=*) timeout="${arg#DPkg::Lock::Timeout=}" ;; esac
done
if [ -e "$FAKE_DIR/lock" ]; then
  if [ "$timeout" -gt 0 ]; then
    rm "$FAKE_DIR/lock"  # waited: the other apt process finished
  else
    echo "E: Could not get lock /var/lib/dpkg/lock-frontend" >&2
    exit 100
  fi
fi
case " $* " in
  *" update "*)
    left=$(cat "$FAKE_DIR/update_failures" 2>/dev/null || echo 0)
    if [ "$left" -gt 0 ]; then
      echo $((left - 1)) > "$FAKE_DIR/update_failures"
      echo "E: Could not get lock /var/lib/apt/lists/lock" >&2
      exit 100
    fi
    touch "$FAKE_DIR/updated" ;;
  *" install "*)
    if [ -e "$FAKE_DIR/stale_lists" ] && [ ! -e "$FAKE_DIR/updated" ]; then
      echo "E: Unable to locate package" >&2
      exit 100
    fi ;;
esac
exit 0
"""


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(FAKE_APT)
    (bin_dir / "id").write_text("#!/bin/bash\necho 0\n")
    for tool in ("sort", "head", "sleep", "cat", "rm", "touch"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    for fake in ("apt-get", "id"):
        (bin_dir / fake).chmod(0o755)
    return tmp_path


def run(fakes: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    environ = {
        "PATH": str(fakes / "bin"),  # no prometheus, promtool, chromium or wrk on it
        "FAKE_DIR": str(fakes),
        "APT_RETRY_INTERVAL_S": "0",
        "HOME": str(fakes),
        **env,
    }
    return subprocess.run(
        [bash, str(SCRIPT), "wrk"],
        check=False,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def calls(fakes: Path) -> list[str]:
    return (fakes / "calls").read_text().splitlines()


def test_every_apt_get_call_waits_for_the_lock(fakes: Path) -> None:
    (fakes / "stale_lists").touch()  # install, update, install again: every path taken
    done = run(fakes)
    assert done.returncode == 0, done.stderr
    install = "-o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends wrk"
    assert calls(fakes) == [install, "-o DPkg::Lock::Timeout=300 update -q", install]


def test_a_busy_dpkg_lock_is_waited_for(fakes: Path) -> None:
    (fakes / "lock").touch()  # another apt process holds the lock when the script starts
    done = run(fakes)
    assert done.returncode == 0, done.stderr
    assert calls(fakes) == ["-o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends wrk"]


def test_the_lock_timeout_can_be_set(fakes: Path) -> None:
    done = run(fakes, APT_LOCK_TIMEOUT="42")
    assert done.returncode == 0, done.stderr
    assert calls(fakes)[0].startswith("-o DPkg::Lock::Timeout=42 install")


def test_update_is_retried_while_the_lists_lock_is_held(fakes: Path) -> None:
    (fakes / "stale_lists").touch()
    (fakes / "update_failures").write_text("3")
    done = run(fakes)
    assert done.returncode == 0, done.stderr
    made = calls(fakes)
    assert sum(" update " in f" {c} " for c in made) == 4, made
    assert made[-1].endswith("install -y -q --no-install-recommends wrk")


def test_update_failing_past_the_timeout_is_exit_100_with_a_message(fakes: Path) -> None:
    (fakes / "stale_lists").touch()
    (fakes / "update_failures").write_text("1000000")
    done = run(fakes, APT_LOCK_TIMEOUT="0")
    assert done.returncode == 100
    assert "apt-get update kept failing for 0 s" in done.stderr

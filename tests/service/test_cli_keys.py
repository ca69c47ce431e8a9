"""``shadowswap keys add | list | revoke`` as real commands: the key is printed once and only
its hash stored; listings never show hashes; bad input exits 2 without a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shadowswap.service.auth import KeyRing
from shadowswap.service.keys import hash_key
from tests.service.process import run_cli


def keys(*args: str, cwd: Path) -> tuple[int, str, str]:
    out = run_cli([sys.executable, "-m", "shadowswap", "keys", *args], cwd, timeout=60)
    return out.returncode, out.stdout, out.stderr


def test_add_list_revoke(tmp_path: Path) -> None:
    file = tmp_path / "conf" / "keys.json"
    code, key, err = keys("add", "--tenant", "acme", "--tenant", "globex", "--note", "search",
                          "--file", str(file), cwd=tmp_path)  # fmt: skip
    assert code == 0, err
    key = key.strip()
    assert key.startswith("ssk_") and "shown once" in err
    assert key not in file.read_text() and hash_key(key) in file.read_text()
    principal = KeyRing(file).authenticate({"authorization": f"Bearer {key}"})
    assert principal.allows("acme") and principal.allows("globex") and not principal.allows("x")

    env = tmp_path / ".env"
    env.write_text(f"RETRIEVAL_API_KEYS_FILE={file}\n")  # the file from the settings
    code, out, err = keys("add", "--all-tenants", "--status", "--json", "--env-file", str(env),
                          cwd=tmp_path)  # fmt: skip
    assert code == 0, err
    added = json.loads(out)
    assert added["tenants"] == ["*"] and added["status"] is True and "sha256" not in added

    code, out, _ = keys("list", "--json", "--file", str(file), cwd=tmp_path)
    listed = json.loads(out)["keys"]
    assert [k["note"] for k in listed] == ["search", ""]
    assert all("sha256" not in k for k in listed) and hash_key(key) not in out

    first = listed[0]["id"]
    assert keys("revoke", first, "--file", str(file), cwd=tmp_path)[0] == 0
    code, _, err = keys("revoke", first, "--file", str(file), cwd=tmp_path)
    assert code == 2 and f"no key {first!r}" in err


def test_bad_input_exits_2(tmp_path: Path) -> None:
    file = str(tmp_path / "keys.json")
    for args, words in (
        (("add", "--file", file), "at least one tenant"),
        (("add", "--tenant", "a b", "--file", file), "not a tenant id"),
        (("add", "--tenant", "acme"), "give --file"),
        (("list", "--file", file), "does not exist"),
    ):
        code, out, err = keys(*args, cwd=tmp_path)
        assert code == 2, (args, err)
        assert words in err and "Traceback" not in err and out == ""

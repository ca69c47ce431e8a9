"""The rollback journal: exactly CONTRACT §3's fields, whole lines even with concurrent
writers, and no personal data."""

from __future__ import annotations

import getpass
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shadowswap.errors import InvalidInput, WriteError
from shadowswap.rollout.journal import (
    Journal,
    JournalEntry,
    check_operator,
    check_reason,
    previous_values,
    utc_timestamp,
)

ROOT = Path(__file__).resolve().parents[2]
#: CONTRACT §3's fields in their order, then ours: what each change replaced (issue 16)
FIELDS = ["timestamp", "operator", "env_file", "apply", "result", "duration_s", "changes", "notes"]
FIELDS += ["previous"]


def entry(**overrides: object) -> JournalEntry:
    values: dict[str, object] = {
        "timestamp": utc_timestamp(1_761_058_200),
        "operator": "alice",
        "env_file": ".env.staging",
        "apply": False,
        "result": "success",
        "duration_s": 12.3,
        "changes": {"FF_RETRIEVAL_DUAL_WRITE": "OFF"},
        "notes": "dry-run staging",
        "previous": {"FF_RETRIEVAL_DUAL_WRITE": "ON"},
    }
    values.update(overrides)
    return JournalEntry(**values)  # type: ignore[arg-type]


def test_a_line_has_exactly_the_contract_fields(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "artifacts" / "rollback_drill_log.ndjson")
    journal.append(entry())
    (line,) = journal.path.read_text().splitlines()
    document = json.loads(line)
    assert list(document) == FIELDS
    assert document == {
        "timestamp": "2025-10-21T14:50:00Z",
        "operator": "alice",
        "env_file": ".env.staging",
        "apply": False,
        "result": "success",
        "duration_s": 12.3,
        "changes": {"FF_RETRIEVAL_DUAL_WRITE": "OFF"},
        "notes": "dry-run staging",
        "previous": {"FF_RETRIEVAL_DUAL_WRITE": "ON"},
    }
    assert journal.entries() == [entry()]


def test_a_line_written_before_previous_existed_still_reads(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.ndjson")
    line = json.loads(entry().to_json())
    del line["previous"]
    journal.path.write_text(json.dumps(line) + "\n")
    assert journal.entries() == [entry(previous={})]


def test_previous_values_are_masked_like_every_shown_value() -> None:
    values = {
        "RETRIEVAL_API_KEY": "s3cret",
        "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": "postgresql://u:pw@db/outbox",
        "FF_RETRIEVAL_DUAL_WRITE": "on",
        "RETRIEVAL_TOKEN": "",
    }
    changes = dict.fromkeys([*values, "RETRIEVAL_TARGET_BACKEND"], "x")
    assert previous_values(values, changes) == {
        "RETRIEVAL_API_KEY": "***",
        "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": "postgresql://u:***@db/outbox",
        "FF_RETRIEVAL_DUAL_WRITE": "on",
        "RETRIEVAL_TOKEN": "",
        "RETRIEVAL_TARGET_BACKEND": None,  # not set in the file
    }


def test_timestamps_are_utc_with_z() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_timestamp(0))
    assert utc_timestamp(0) == "1970-01-01T00:00:00Z"


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    """Four processes append 100 long lines each at once: 400 whole, valid lines."""
    path = tmp_path / "journal.ndjson"
    code = (
        "import sys\n"
        "from shadowswap.rollout.journal import Journal, JournalEntry\n"
        "j = Journal(sys.argv[1])\n"
        "for i in range(100):\n"
        "    j.append(JournalEntry('2025-01-01T00:00:00Z', 'w' + sys.argv[2], '.env', True,\n"
        "        'success', 0.1, {'V%d' % k: 'x' * 50 for k in range(40)}, sys.argv[2] * 9000))\n"
    )
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    workers = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(n)], env=env) for n in range(4)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0, 0]
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    documents = [json.loads(line) for line in lines[:-1]]
    assert len(documents) == 400
    for document in documents:
        assert document["notes"] == document["operator"][1:] * 9000


def test_an_unwritable_journal_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "artifacts"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(WriteError, match="journal cannot be opened"):
        Journal(blocker / "rollback_drill_log.ndjson").append(entry())


def test_no_personal_data_is_added(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.ndjson")
    journal.append(entry())
    text = journal.path.read_text()
    assert socket.gethostname() not in text
    assert str(tmp_path) not in text
    user = getpass.getuser()
    assert f'"{user}"' not in text


@pytest.mark.parametrize("name", ["alice", "bob.smith", "on-call 2", "sre_team"])
def test_operator_handles_are_accepted(name: str) -> None:
    assert check_operator(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("alice@example.com", "e-mail"),
        ("", "not accepted"),
        ("a\nb", "not accepted"),
        ("x" * 65, "not accepted"),
    ],
)
def test_operator_refusals(name: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_operator(name)


def test_reason_refusals() -> None:
    assert check_reason(" incident-123 ") == "incident-123"
    for bad, why in [
        ("", "empty"),
        ("call bob@example.com", "e-mail"),
        ("two\nlines", "one line"),
        ("x" * 501, "one line"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            check_reason(bad)


def test_a_line_that_is_not_a_record_is_named_with_its_field(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.ndjson")
    journal.append(entry(duration_s=12))
    assert journal.entries() == [entry(duration_s=12)]
    assert isinstance(journal.entries()[0].duration_s, int)  # read back as written
    good = journal.path.read_text()
    for bad, why in [
        ("not json", "line: Invalid JSON"),
        ('{"timestamp": 1}', "timestamp: Input should be a valid string"),
        (good.replace('"success"', '"ok"'), "result: Input should be 'success' or 'failure'"),
        (good.replace('"notes"', '"host":"x","notes"'), "host: Extra inputs are not permitted"),
    ]:
        journal.path.write_text(good + bad + "\n")
        expected = f"j.ndjson:2: not a journal record ({why}"
        with pytest.raises(InvalidInput, match=re.escape(expected)):
            journal.entries()

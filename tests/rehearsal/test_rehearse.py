"""``shadowswap rehearse`` end to end, as a process: the whole ladder on GloVe data, lost
writes 0, drift 0, CONTRACT §6's keys, the files it leaves, its exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadowswap.rehearsal import STEP_NAMES
from shadowswap.settings.config import load_settings
from shadowswap.settings.phase import classify
from tests.rehearsal.conftest import Rehearsed, rehearse

CONTRACT_KEYS = ["verdict", "lost_writes", "drift", "agreement_at_5", "ndcg_at_10", "duration_s",
                 "steps"]  # fmt: skip

pytestmark = pytest.mark.slow


def test_the_whole_ladder_passes_with_no_lost_write_and_no_drift(
    small_rehearsal: Rehearsed,
) -> None:
    out, doc = small_rehearsal.process, small_rehearsal.document
    assert out.returncode == 0, out.stderr[-3000:]
    assert list(doc)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert doc["lost_writes"] == 0 and doc["drift"] == 0
    assert doc["verdict"] in ("PROMOTE", "HOLD", "ROLLBACK")
    assert [s["name"] for s in doc["steps"]] == list(STEP_NAMES)
    assert {s["status"] for s in doc["steps"]} == {"passed"}, [
        (s["name"], s["error"]) for s in doc["steps"] if s["status"] != "passed"
    ]
    assert 0.9 <= doc["agreement_at_5"] <= 1 and 0.9 <= doc["ndcg_at_10"] <= 1
    assert doc["data"]["documents"] == 2000 and len(doc["data"]["tenants"]) == 3


def test_the_steps_measured_what_they_claim(small_rehearsal: Rehearsed) -> None:
    steps = {s["name"]: s["numbers"] for s in small_rehearsal.document["steps"]}
    writes = small_rehearsal.document["writes"]
    # live writes really ran, and every acknowledged one was checked in both stores
    assert writes["acknowledged_calls"] > 50 and writes["failed_calls"] == 0
    assert writes["documents_checked"] > 100
    assert writes["stores"]["faiss"]["total"] == 0 and writes["stores"]["chroma"]["total"] == 0
    # the outage opened the breaker and filled the outbox; the replay emptied it without failure
    outage = steps["target outage"]
    assert outage["outbox_peak"] > 0 and outage["writes_failed"] == 0
    assert "open" in [state for _, state in outage["breaker_states"]]
    assert steps["replay outbox"]["failed"] == 0
    # reads moved tenant by tenant and all the way
    assert steps["cutover 10%"]["served_by"].get("faiss", 0) > 0
    assert steps["cutover 100%"]["served_by"] == {"chroma": 300}
    assert steps["swap"]["primary"] == "chroma" and steps["swap"]["sample_rate"] == "0.05"
    for name in ("cutover 10%", "cutover 50%", "cutover 100%", "swap", "rollback drill"):
        assert steps[name]["fallbacks"] == 0 and steps[name]["errors"] == 0, name
    assert steps["rollback drill"]["served_by"] == {"faiss": 300}
    assert steps["shadow read"]["observations"]["compared"] > 0


def test_it_leaves_the_journal_the_env_file_and_the_reports(small_rehearsal: Rehearsed) -> None:
    work = small_rehearsal.workdir
    journal = [
        json.loads(line) for line in (work / "rollback_drill_log.ndjson").read_text().splitlines()
    ]
    fields = [
        "timestamp",
        "operator",
        "env_file",
        "apply",
        "result",
        "duration_s",
        "changes",
        "notes",
        "previous",  # ours, after CONTRACT §3's fields (issue 16)
    ]
    assert all(list(entry) == fields for entry in journal)
    drill = [e for e in journal if e["notes"].startswith("rehearsal drill")]
    assert [e["apply"] for e in drill] == [False, True]
    # the ladder ended swapped again: chroma primary, faiss kept in step
    settings = load_settings(work / "rehearsal.env", environ={})
    assert classify(settings).name == "swapped" and settings.backend == "chroma"
    assert (work / "rehearsal.env.bak").is_file()
    assert json.loads((work / "state" / "reconcile_last.json").read_text())["drift"] == 0
    assert json.loads((work / "rehearsal.json").read_text()) == small_rehearsal.document
    assert (work / "rehearsal.html").stat().st_size > 10_000
    assert list((work / "observations").glob("shadow-observations-*.jsonl"))


def test_logs_hold_no_text_or_vectors(small_rehearsal: Rehearsed) -> None:
    """The documents' text is a GloVe word; no log line may carry one, nor a vector."""
    from shadowswap.rehearsal.data import glove_dataset

    data = glove_dataset(docs=2000, queries=300, tenants=3, seed=7)
    words = {d.text for docs in data.documents.values() for d in docs if d.text and len(d.text) > 6}
    lines = (small_rehearsal.workdir / "rehearsal.log").read_text().splitlines()
    assert lines
    for line in lines:
        record = json.loads(line)
        values = json.dumps(record)
        assert not any(f'"{w}"' in values for w in words), line[:200]
        assert "vector" not in record


def test_stderr_has_progress_and_stdout_only_json(small_rehearsal: Rehearsed) -> None:
    out = small_rehearsal.process
    json.loads(out.stdout)
    assert "[16/16] lost writes: ok" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--primary", "pgvector"], "needs a server"),
        (["--primary", "mongo"], "is not a backend kind"),
        (["--queries-file", "q.jsonl"], "give --env-file too"),
        (["--target", "faiss"], "another kind"),
    ],
)
def test_bad_usage_exits_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    out = rehearse(["--workdir", str(tmp_path / "w"), *args], tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_a_directory_it_did_not_make_is_never_emptied(tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    out = rehearse(["--workdir", str(precious)], tmp_path, timeout=60)
    assert out.returncode == 2 and "was not made by shadowswap rehearse" in out.stderr
    assert (precious / "notes.txt").read_text() == "keep me"

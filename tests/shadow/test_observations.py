"""The JSON-lines observation log: format, daily files, retention, never raising, reading
back; and what the router records in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shadowswap.clock import FakeClock
from shadowswap.settings.config import load_settings
from shadowswap.shadow.observations import (
    FORMAT_VERSION,
    JsonlObservationLog,
    Observation,
    ReadReport,
    iso_utc,
    read_observations,
)

DAY = 86_400.0


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def observation(ts: float, **changes: object) -> Observation:
    values: dict[str, object] = {
        "ts": ts,
        "tenant": "acme",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "primary_backend": "faiss",
        "shadow_backend": "chroma",
        "outcome": "compared",
        "k": 3,
        "filtered": False,
        "primary_ids": ("a", "b", "c"),
        "primary_scores": (0.9, 0.8, 0.7),
        "primary_latency_s": 0.002,
        "shadow_ids": ("a", "c", "x"),
        "shadow_scores": (0.9, 0.69, 0.6),
        "shadow_latency_s": 0.004,
        "agreement_at_5": 2 / 3,
        "agreement_cutoff": 3,
        "ndcg_at_10": 0.8,
        "score_delta": 0.005,
        "latency_delta_s": 0.002,
        "mismatch": True,
        "sample": "0.10",
    }
    values.update(changes)
    return Observation(**values)  # type: ignore[arg-type]


def test_a_line_is_one_json_object_with_the_documented_fields(tmp_path: Path) -> None:
    clock = FakeClock(at("2025-10-21T14:50:00"))
    log = JsonlObservationLog(tmp_path, retention_days=90, clock=clock)
    log.record(observation(at("2025-10-21T14:50:00.123")))
    log.close()
    (path,) = tmp_path.iterdir()
    assert path.name == "shadow-observations-2025-10-21.jsonl"
    (line,) = path.read_text().splitlines()
    data = json.loads(line)
    assert data["v"] == FORMAT_VERSION == 1
    assert data["ts"] == "2025-10-21T14:50:00.123Z"
    assert data["tenant"] == "acme" and data["outcome"] == "compared"
    assert data["primary_ids"] == ["a", "b", "c"] and data["shadow_scores"] == [0.9, 0.69, 0.6]
    assert set(data) == {
        "v", "ts", "tenant", "trace_id", "primary_backend", "shadow_backend", "outcome", "k",
        "filtered", "primary_ids", "primary_scores", "primary_latency_s", "shadow_ids",
        "shadow_scores", "shadow_latency_s", "agreement_at_5", "agreement_cutoff", "ndcg_at_10",
        "score_delta", "latency_delta_s", "mismatch", "error", "sample", "source",
        "write_seq", "looked_up", "left_out", "late", "foreign", "stale", "ranking", "unchecked",
    }  # fmt: skip
    assert Observation.from_json(data) == observation(at("2025-10-21T14:50:00.123"))


def test_each_utc_day_gets_its_own_file(tmp_path: Path) -> None:
    clock = FakeClock(at("2025-10-21T23:59:59"))
    log = JsonlObservationLog(tmp_path, retention_days=90, clock=clock)
    log.record(observation(at("2025-10-21T23:59:59.900"), trace_id="late"))
    clock.advance(1)
    log.record(observation(at("2025-10-22T00:00:00.100"), trace_id="early"))
    log.record(observation(at("2025-10-22T08:00:00"), trace_id="later"))
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [
        "shadow-observations-2025-10-21.jsonl",
        "shadow-observations-2025-10-22.jsonl",
    ]
    assert [o.trace_id for o in read_observations(tmp_path)] == ["late", "early", "later"]
    second_day = list(read_observations(tmp_path, since=at("2025-10-22T00:00:00")))
    assert [o.trace_id for o in second_day] == ["early", "later"]


def test_files_past_the_retention_are_pruned_and_nothing_else_is_touched(
    tmp_path: Path,
) -> None:
    for day in ("2025-07-01", "2025-07-22", "2025-07-23", "2025-10-20"):
        (tmp_path / f"shadow-observations-{day}.jsonl").write_text("")
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "shadow-observations-2020-01-01.jsonl.gz").write_text("not ours to judge")
    clock = FakeClock(at("2025-10-21T10:00:00"))
    log = JsonlObservationLog(tmp_path, retention_days=90, clock=clock)
    log.record(observation(clock.now()))  # opening today's file prunes
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "notes.txt",
        "shadow-observations-2020-01-01.jsonl.gz",
        "shadow-observations-2025-07-23.jsonl",  # exactly 90 days back: kept
        "shadow-observations-2025-10-20.jsonl",
        "shadow-observations-2025-10-21.jsonl",
    ]


def test_the_default_retention_is_90_days(tmp_path: Path) -> None:
    assert load_settings(environ={}).observations_retention_days == 90
    assert load_settings(environ={}).observations_dir is None


def test_a_failing_write_never_raises_warns_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    where = tmp_path / "obs"
    where.write_text("a file where the directory should be")  # every write fails
    clock = FakeClock(at("2025-10-21T10:00:00"))
    log = JsonlObservationLog(where, retention_days=90, clock=clock)
    try:
        log.record(observation(clock.now()))
        log.record(observation(clock.now()))
        assert (log.written, log.failed) == (0, 2)
        messages = [r.getMessage() for r in caplog.records]
        assert messages.count("shadow observation not written") == 1
        where.unlink()  # the operator fixes it: the next write goes through
        log.record(observation(clock.now()))
        assert log.written == 1
        assert len(list(read_observations(where))) == 1
    finally:
        log.close()


def test_reading_skips_and_counts_lines_that_are_not_records(tmp_path: Path) -> None:
    clock = FakeClock(at("2025-10-21T10:00:00"))
    log = JsonlObservationLog(tmp_path, retention_days=90, clock=clock)
    log.record(observation(clock.now(), trace_id="good"))
    log.close()
    path = tmp_path / "shadow-observations-2025-10-21.jsonl"
    with path.open("a") as handle:
        handle.write('{"v": 99, "outcome": "compared"}\n[1, 2]\nnot json\n{"v": 1, "outco')
    report = ReadReport()
    assert [o.trace_id for o in read_observations(tmp_path, report=report)] == ["good"]
    assert (report.files, report.bad_lines) == (1, 4)
    assert list(read_observations(tmp_path / "missing")) == []


def test_timestamps_render_in_utc_with_z() -> None:
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(at("2025-10-21T14:50:00.5")) == "2025-10-21T14:50:00.500Z"

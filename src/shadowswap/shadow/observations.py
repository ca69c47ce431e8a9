"""Observation records of shadow reads, and where they go: memory, or a JSON-lines log on
disk that the gate and offline analysis read back.

One `Observation` per shadow read that reached an outcome: ``compared`` (the shadow answered
in time; the measures are set), ``error`` (the shadow raised; ``error`` names the class) or
``timeout`` (no answer by the deadline). Reads dropped because the queue was full are only
counted in metrics: writing more under overload would make it worse.

A record holds tenant, trace id, backends, doc ids, scores, latencies and measures. It
never holds vectors, document text, metadata values or filter values (only whether a filter
was given).

The log (`JsonlObservationLog`, on when ``RETRIEVAL_OBSERVATIONS_DIR`` is set)
    files       ``<dir>/shadow-observations-YYYY-MM-DD.jsonl``, one per UTC day of the
                records' timestamps: a new day starts a new file (daily rotation).
    lines       one JSON object per record (format version ``"v": 1``, the fields of
                `Observation`, ``ts`` as ISO-8601 UTC with ``Z``), written with a single
                ``write`` on a file opened with ``O_APPEND``, so several processes can share
                the directory without interleaving lines.
    retention   files whose day is older than ``RETRIEVAL_OBSERVATIONS_RETENTION_DAYS``
                (default 90, runbook 004) are deleted when a day's file is opened. Other
                files in the directory are never touched.
    failures    a write that fails (disk full, directory gone) drops the record and logs a
                warning (at most one a minute); it never raises into the shadow read.

`read_observations` reads the files back, oldest first, skipping (and counting) lines that
cannot be parsed, such as a last line cut short by a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from shadowswap.clock import Clock
from shadowswap.fileio import open_for_append
from shadowswap.settings.config import Settings

log = logging.getLogger("shadowswap.shadow.observations")

FORMAT_VERSION = 1
FILE_PREFIX = "shadow-observations-"
FILE_RE = re.compile(r"shadow-observations-(\d{4}-\d{2}-\d{2})\.jsonl")
Outcome = Literal["compared", "error", "timeout"]
OUTCOMES: tuple[str, ...] = ("compared", "error", "timeout")


@dataclass(frozen=True)
class Observation:
    """One shadow read and what it showed. Measures are None unless ``outcome`` is
    ``compared``; ``agreement_cutoff`` is the cut-off agreement@5 used (5, or fewer when
    both answers were shorter, see `shadowswap.shadow.compare`)."""

    ts: float  # seconds since the epoch, UTC, when the outcome was known
    tenant: str
    trace_id: str
    primary_backend: str  # the kind that served the caller
    shadow_backend: str
    outcome: Outcome
    k: int
    filtered: bool
    primary_ids: tuple[str, ...]
    primary_scores: tuple[float, ...]
    primary_latency_s: float
    shadow_ids: tuple[str, ...] = ()
    shadow_scores: tuple[float, ...] = ()
    shadow_latency_s: float | None = None  # None for a timeout: there is no answer
    agreement_at_5: float | None = None
    agreement_cutoff: int | None = None
    ndcg_at_10: float | None = None
    score_delta: float | None = None
    latency_delta_s: float | None = None
    mismatch: bool | None = None
    error: str | None = None  # the error's class name, for outcome "error"
    # the target's extra hits judged by lookup (`shadowswap.shadow.judge`); doc ids
    write_seq: int | None = None  # the process's write sequence before the primary search
    looked_up: bool = False  # False: not judged (an older record, or no lookup possible)
    left_out: tuple[str, ...] = ()  # changed after the primary answered: out of both lists
    late: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    ranking: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()
    sample: str = ""  # FF_RETRIEVAL_SHADOW_SAMPLE_RATE as written; "" offline
    source: Literal["live", "offline"] = "live"

    def to_json(self) -> dict[str, Any]:
        """The JSON object of one log line."""
        out: dict[str, Any] = {"v": FORMAT_VERSION}
        for name, value in asdict(self).items():
            if name == "ts":
                out["ts"] = iso_utc(value)
            elif isinstance(value, tuple):
                out[name] = list(value)
            else:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Observation:
        """Parse one log line's object; raises ValueError when it is not a valid record."""
        if data.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown format version {data.get('v')!r}")
        if data.get("outcome") not in OUTCOMES:
            raise ValueError(f"unknown outcome {data.get('outcome')!r}")
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name in known:
            if name not in data:
                continue
            value = data[name]
            if name == "ts":
                value = parse_iso_utc(str(value))
            elif name in _TUPLES:
                if not isinstance(value, list):
                    raise ValueError(f"{name} is not a list")
                value = tuple(value)
            values[name] = value
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


_TUPLES = frozenset(
    ("primary_ids", "shadow_ids", "primary_scores", "shadow_scores", "left_out", "late",
     "foreign", "stale", "ranking", "unchecked")
)  # fmt: skip


#: the counters a state record carries, each a total since its process started
STATE_COUNTERS: tuple[str, ...] = (
    "reads", "read_errors", "fallbacks", "shadow_queue_full", "dual_write_errors",
    "dual_write_skipped",
)  # fmt: skip
BREAKER_STATES: tuple[str, ...] = ("closed", "open", "half_open")


@dataclass(frozen=True)
class StateRecord:
    """The serving and write side of one process at one moment, for the gate to read from the
    log alone (`shadowswap.shadow.statelog` writes them). Counters are totals since the
    process (``process``, started at ``started``) began recording; the outbox figures are the
    stored outbox's (shared by the processes that share it)."""

    ts: float
    process: str
    started: float
    reason: str  # start | tick | breaker | close
    reads: int = 0  # serving reads (errors and timeouts included)
    read_errors: int = 0  # serving reads that failed or timed out
    fallbacks: int = 0
    shadow_queue_full: int = 0  # shadow reads dropped at a full queue
    dual_write_errors: int = 0
    dual_write_skipped: int = 0
    breaker: str = "closed"
    outbox_size: int | None = None
    outbox_oldest_age_s: float | None = None
    outbox_dropped: int | None = None  # stored drops (full and TTL) so far

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": FORMAT_VERSION, "record": "state"}
        for name, value in asdict(self).items():
            out[name] = iso_utc(value) if name in ("ts", "started") else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StateRecord:
        """Parse a state line's object; raises ValueError when it is not a valid record."""
        if data.get("v") != FORMAT_VERSION or data.get("record") != "state":
            raise ValueError("not a state record")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name in ("ts", "started"):
                value = parse_iso_utc(str(value))
            elif f.name in STATE_COUNTERS and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"{f.name} is not a count")
            values[f.name] = value
        if values.get("breaker", "closed") not in BREAKER_STATES:
            raise ValueError("unknown breaker state")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


def iso_utc(ts: float) -> str:
    """``2025-10-21T14:50:00.123Z``"""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso_utc(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ObservationSink(Protocol):
    """Where observations go. ``record`` must never raise."""

    def record(self, observation: Observation) -> None: ...

    def close(self) -> None: ...


class MemoryObservations:
    """Keeps observations in a list; thread-safe. For tests and the rehearsal."""

    def __init__(self) -> None:
        self._items: list[Observation] = []
        self._lock = threading.Lock()

    def record(self, observation: Observation) -> None:
        with self._lock:
            self._items.append(observation)

    @property
    def items(self) -> list[Observation]:
        with self._lock:
            return list(self._items)

    def close(self) -> None:
        pass


def _day_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def file_for(directory: Path, day: date) -> Path:
    return directory / f"{FILE_PREFIX}{day.isoformat()}.jsonl"


class JsonlObservationLog:
    """The JSON-lines observation log described in the module docstring.

    >>> import tempfile
    >>> from shadowswap.clock import SystemClock
    >>> log_ = JsonlObservationLog(tempfile.mkdtemp(), retention_days=90, clock=SystemClock())
    >>> log_.close()
    """

    def __init__(self, directory: str | Path, *, retention_days: int, clock: Clock) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.directory = Path(directory)
        self.retention_days = retention_days
        self._clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._day: date | None = None
        self._last_warning = -1e18
        self.written = 0
        self.failed = 0

    def record(self, observation: Observation) -> None:
        self.write(observation.ts, observation.to_json())

    def write(self, ts: float, document: Mapping[str, Any]) -> None:
        """Append one record (an observation's or a `shadowswap.shadow.statelog` record's
        JSON object) to the file of ``ts``'s day; never raises."""
        try:
            line = (json.dumps(document, ensure_ascii=False) + "\n").encode()
            day = _day_of(ts)
            with self._lock:
                fd = self._open_locked(day)
                os.write(fd, line)
                self.written += 1
        except Exception as exc:  # noqa: BLE001 - a log write must never break a read
            with self._lock:
                self.failed += 1
                self._close_locked()
            self._warn(exc)

    def prune(self) -> list[Path]:
        """Delete the day files older than the retention; returns what was deleted."""
        today = _day_of(self._clock.now())
        oldest_kept = today - timedelta(days=self.retention_days)
        deleted: list[Path] = []
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return deleted
        for path in entries:
            match = FILE_RE.fullmatch(path.name)
            if not match:
                continue
            try:
                day = date.fromisoformat(match.group(1))
            except ValueError:
                continue
            if day < oldest_kept:
                try:
                    path.unlink()
                    deleted.append(path)
                except OSError as exc:
                    self._warn(exc)
        if deleted:
            log.info(
                "observation files past retention deleted",
                extra={"count": len(deleted), "retention_days": self.retention_days},
            )
        return deleted

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _open_locked(self, day: date) -> int:
        if self._fd is not None and self._day == day:
            return self._fd
        self._close_locked()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = open_for_append(file_for(self.directory, day), 0o640)  # never via a link
        self._day = day
        self.prune()
        return self._fd

    def _close_locked(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd, self._day = None, None

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 60.0:
            self._last_warning = now
            log.warning(
                "shadow observation not written",
                extra={"directory": str(self.directory), "error": f"{type(exc).__name__}: {exc}"},
            )


@dataclass
class ReadReport:
    """What `read_observations` skipped."""

    files: int = 0
    bad_lines: int = 0


def read_observations(
    directory: str | Path,
    *,
    since: float | None = None,
    until: float | None = None,
    report: ReadReport | None = None,
) -> Iterator[Observation]:
    """Every observation in ``directory`` with ``since <= ts < until``, oldest file first.

    Lines that are not valid records are skipped and counted in ``report``; state records
    (`shadowswap.shadow.statelog`) are passed over.
    """
    for record in read_records(directory, since=since, until=until, report=report):
        if isinstance(record, Observation):
            yield record


def read_records(
    directory: str | Path,
    *,
    since: float | None = None,
    until: float | None = None,
    report: ReadReport | None = None,
) -> Iterator[Observation | StateRecord]:
    """Every record in ``directory`` (observations and state records) with ``since <= ts <
    until``, oldest file first; lines that are neither are skipped and counted."""
    root = Path(directory)
    report = report if report is not None else ReadReport()
    days: list[tuple[date, Path]] = []
    if root.is_dir():
        for path in root.iterdir():
            match = FILE_RE.fullmatch(path.name)
            if match:
                try:
                    days.append((date.fromisoformat(match.group(1)), path))
                except ValueError:
                    continue
    first = _day_of(since) if since is not None else None
    last = _day_of(until) if until is not None else None
    for day, path in sorted(days):
        if (first and day < first) or (last and day > last):
            continue
        report.files += 1
        with path.open("rb") as handle:
            for raw in handle:
                try:
                    data = json.loads(raw)
                    record: Observation | StateRecord = (
                        StateRecord.from_json(data)
                        if isinstance(data, dict) and data.get("record") == "state"
                        else Observation.from_json(data)
                    )
                except (ValueError, TypeError, AttributeError):
                    report.bad_lines += 1
                    continue
                if (since is None or record.ts >= since) and (until is None or record.ts < until):
                    yield record


def observation_log(settings: Settings, clock: Clock) -> JsonlObservationLog | None:
    """The log ``RETRIEVAL_OBSERVATIONS_DIR`` asks for (None when unset), with
    ``RETRIEVAL_OBSERVATIONS_RETENTION_DAYS``. Read once, when a router is built."""
    if not settings.observations_dir:
        return None
    return JsonlObservationLog(
        settings.observations_dir,
        retention_days=settings.observations_retention_days,
        clock=clock,
    )

"""Progress of long jobs, for people: a live bar on a terminal, plain lines elsewhere.

Backfill and reconcile report to a `Progress`; they never know how it is shown. On a
terminal `RichProgress` draws a bar with the rate and the time left; in a pipe, a log file or
cron, `LineProgress` writes one plain line every few seconds (and one when a tenant ends), so
a log shows the job moving without a flood. Both only ever show tenant ids and counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as _RichProgress

from shadowswap.clock import Clock, SystemClock


class Progress(Protocol):
    """One task at a time: `begin` (with the known total, if any), `advance`, `end`."""

    def begin(self, label: str, total: int | None, done: int = 0) -> None: ...

    def advance(self, n: int) -> None: ...

    def end(self) -> None: ...


class NullProgress:
    """Shows nothing."""

    def begin(self, label: str, total: int | None, done: int = 0) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def end(self) -> None:
        pass


class LineProgress:
    """A plain line at most every ``every_s`` seconds, and one at the end of each task::

    backfill acme: 12,000/50,000 docs (24.0%), 1,234 docs/s, ETA 31s
    """

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        verb: str = "progress",
        every_s: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._write = write
        self._verb = verb
        self._every_s = every_s
        self._clock = clock or SystemClock()
        self._label = ""
        self._total: int | None = None
        self._done = 0
        self._start_done = 0
        self._started = 0.0
        self._last = 0.0

    def begin(self, label: str, total: int | None, done: int = 0) -> None:
        self._label, self._total, self._done, self._start_done = label, total, done, done
        self._started = self._last = self._clock.monotonic()

    def advance(self, n: int) -> None:
        self._done += n
        now = self._clock.monotonic()
        if now - self._last >= self._every_s:
            self._last = now
            self._write(self._line(now))

    def end(self) -> None:
        self._write(self._line(self._clock.monotonic()) + " - done")

    def _line(self, now: float) -> str:
        elapsed = now - self._started
        rate = (self._done - self._start_done) / elapsed if elapsed > 0 else 0.0
        if self._total:
            shown = min(self._done, self._total)
            head = f"{shown:,}/{self._total:,} docs ({100.0 * shown / self._total:.1f}%)"
        else:
            head = f"{self._done:,} docs"
        line = f"{self._verb} {self._label}: {head}, {rate:,.0f} docs/s"
        if self._total and rate > 0 and self._done < self._total:
            line += f", ETA {format_seconds((self._total - self._done) / rate)}"
        return line


class RichProgress:
    """A live bar on a terminal (rich): done/total, percentage, rate, elapsed, time left."""

    def __init__(self, stream: IO[str], *, verb: str = "progress") -> None:
        self._verb = verb
        self._bar = _RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._task: TaskID | None = None
        self._started = False

    def begin(self, label: str, total: int | None, done: int = 0) -> None:
        if not self._started:
            self._bar.start()
            self._started = True
        self._task = self._bar.add_task(
            f"{self._verb} {label}", total=total, completed=done, rate=""
        )

    def advance(self, n: int) -> None:
        if self._task is None:
            return
        task_id = self._task
        self._bar.advance(task_id, n)
        task = next(t for t in self._bar.tasks if t.id == task_id)
        speed = task.speed
        self._bar.update(task_id, rate="" if speed is None else f"{speed:,.0f} docs/s")

    def end(self) -> None:
        if self._task is not None:
            self._bar.stop_task(self._task)
        self._task = None

    def close(self) -> None:
        if self._started:
            self._bar.stop()
            self._started = False


def progress_for(stream: IO[str], *, verb: str, enabled: bool = True) -> Progress:
    """A bar when ``stream`` is a terminal, plain lines otherwise, nothing when disabled."""
    if not enabled:
        return NullProgress()
    if stream.isatty():
        return RichProgress(stream, verb=verb)

    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return LineProgress(write, verb=verb)


def format_seconds(seconds: float) -> str:
    """``0.4s``, ``42s``, ``3m05s``, ``2h07m``."""
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"

"""Progress of a rehearsal as it runs, on stderr: a live display on a terminal (rich), plain
lines otherwise (a CI log, a pipe), nothing when asked.

The live display shows the whole ladder at once — done steps with their duration and what
they found, the running step with its progress bar, the steps to come — and a status line
fed by the running pieces (live writes acknowledged, outbox size, breaker state). Plain lines
say when a step starts and ends, and where a long step stands every few seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from shadowswap.rehearsal.result import StepRecord

Status = Callable[[], str]
_LINE_EVERY_S = 5.0


class Display(Protocol):
    """Where the runner reports; implementations never raise."""

    def begin(self, title: str, steps: Sequence[str], status: Status) -> None: ...

    def step_started(self, index: int) -> None: ...

    def progress(self, done: int, total: int | None, unit: str) -> None: ...

    def note(self, text: str) -> None: ...

    def step_finished(self, index: int, record: StepRecord) -> None: ...

    def end(self, lines: Sequence[str]) -> None: ...


class NullDisplay:
    """Shows nothing (``--no-progress``, tests)."""

    def begin(self, title: str, steps: Sequence[str], status: Status) -> None:
        pass

    def step_started(self, index: int) -> None:
        pass

    def progress(self, done: int, total: int | None, unit: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def step_finished(self, index: int, record: StepRecord) -> None:
        pass

    def end(self, lines: Sequence[str]) -> None:
        pass


class LineDisplay:
    """One line per step start and end, and a progress line every few seconds."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._steps: list[str] = []
        self._status: Status = str
        self._last = 0.0
        self._index = 0

    def begin(self, title: str, steps: Sequence[str], status: Status) -> None:
        self._steps, self._status = list(steps), status
        self._write(title)

    def _head(self, index: int) -> str:
        width = len(str(len(self._steps)))
        return f"[{index + 1:>{width}}/{len(self._steps)}] {self._steps[index]}"

    def step_started(self, index: int) -> None:
        self._index = index
        self._last = time.monotonic()
        self._write(f"{self._head(index)} ...")

    def progress(self, done: int, total: int | None, unit: str) -> None:
        now = time.monotonic()
        if now - self._last < _LINE_EVERY_S:
            return
        self._last = now
        share = f" ({done / total:.0%})" if total else ""
        of = f"/{total:,}" if total else ""
        self._write(f"    {done:,}{of} {unit}{share}; {self._status()}")

    def note(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last < _LINE_EVERY_S:
            return
        self._last = now
        self._write(f"    {text}; {self._status()}")

    def step_finished(self, index: int, record: StepRecord) -> None:
        word = {"passed": "ok", "failed": "FAILED", "not run": "not run"}[record.status]
        line = f"{self._head(index)}: {word} in {record.duration_s:.1f}s: {record.summary}"
        if record.error:
            line += f" ({record.error})"
        self._write(line)

    def end(self, lines: Sequence[str]) -> None:
        for line in lines:
            self._write(line)


class RichDisplay:
    """The live ladder on a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self._console = Console(file=stream)
        self._lock = threading.Lock()
        self._title = ""
        self._steps: list[str] = []
        self._records: dict[int, StepRecord] = {}
        self._running: int | None = None
        self._started = 0.0
        self._bar: tuple[int, int | None, str] | None = None
        self._note = ""
        self._status: Status = str
        self._spinner = Spinner("dots", style="cyan")
        self._live: Live | None = None

    def begin(self, title: str, steps: Sequence[str], status: Status) -> None:
        self._title, self._steps, self._status = title, list(steps), status
        self._live = Live(
            get_renderable=self._render,
            console=self._console,
            refresh_per_second=8,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def step_started(self, index: int) -> None:
        with self._lock:
            self._running, self._started = index, time.monotonic()
            self._bar, self._note = None, ""

    def progress(self, done: int, total: int | None, unit: str) -> None:
        with self._lock:
            self._bar = (done, total, unit)

    def note(self, text: str) -> None:
        with self._lock:
            self._note = text

    def step_finished(self, index: int, record: StepRecord) -> None:
        with self._lock:
            self._records[index] = record
            self._running, self._bar, self._note = None, None, ""

    def end(self, lines: Sequence[str]) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
        for line in lines:
            self._console.print(Text(line))

    def _render(self) -> RenderableType:
        with self._lock:
            table = Table.grid(padding=(0, 1))
            table.add_column(width=2)
            table.add_column(min_width=24)
            table.add_column(justify="right", min_width=7)
            table.add_column()
            for i, name in enumerate(self._steps):
                table.add_row(*self._row(i, name))
            try:
                status = self._status()
            except Exception:  # noqa: BLE001 - a display must never break the run
                status = ""
            return Group(
                Text(self._title, style="bold"), table, Text(status, style="dim"), Text("")
            )

    def _row(self, i: int, name: str) -> tuple[RenderableType, ...]:
        record = self._records.get(i)
        if record is not None:
            icon, style = {
                "passed": ("✓", "green"),
                "failed": ("✗", "bold red"),
                "not run": ("·", "dim"),
            }[record.status]
            detail = record.summary + (f" ({record.error})" if record.error else "")
            return (
                Text(icon, style=style),
                Text(name, style=style if record.status != "passed" else ""),
                Text(f"{record.duration_s:.1f}s"),
                Text(detail, overflow="fold"),
            )
        if i == self._running:
            elapsed = f"{time.monotonic() - self._started:.1f}s"
            return (self._spinner, Text(name, style="bold"), Text(elapsed), self._detail())
        return (Text("·", style="dim"), Text(name, style="dim"), Text(""), Text(""))

    def _detail(self) -> RenderableType:
        if self._bar is None:
            return Text(self._note)
        done, total, unit = self._bar
        counts = f"{done:,}/{total:,} {unit}" if total else f"{done:,} {unit}"
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            ProgressBar(total=float(total or 1), completed=float(done), width=28),
            Text(counts + (f"  {self._note}" if self._note else "")),
        )
        return grid


def display_for(stream: IO[str], *, enabled: bool = True) -> Display:
    """A live display on a terminal, plain lines otherwise, nothing when disabled."""
    if not enabled:
        return NullDisplay()
    if stream.isatty():
        return RichDisplay(stream)

    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return LineDisplay(write)

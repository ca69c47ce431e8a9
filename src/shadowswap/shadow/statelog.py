"""State records in the observation log: the serving and write side of a process, so that
``shadowswap gate`` decides every default criterion from the log alone (no Prometheus).

A `StateRecorder` listens to the process's `shadowswap.metrics.Metrics` (the events every
counter is made from: serving reads and their errors, fallbacks, full-queue shadow drops,
dual-write errors and skips, breaker changes) and keeps totals in memory. Its own thread
writes a `StateRecord` to the log

    at start            (all zero: the gate knows the process began inside its window)
    every interval_s    (default 10 s)
    at a breaker change (promptly: a short open spell is seen even between ticks)
    at close            (the last totals of a process that stops)

with the stored outbox's size, oldest age and drops read at that moment.

Why events are counted here and not written one line each: the full-queue drop and the
serving read happen on the caller's thread, which must not write a file; the listener only
adds to a counter under a lock (a few hundred nanoseconds). Why not read the metrics
registry: with several workers each process has its own registry, and the gate needs the
totals of every process: each writes its own records, told apart by ``process``.

`shadowswap.gate.evidence` turns the records of a window into the gate's evidence: for each
process, its last totals in the window minus its last totals before the window (0 when it
started inside it).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from shadowswap.clock import Clock
from shadowswap.metrics import Metrics, OutboxFigures
from shadowswap.shadow.observations import STATE_COUNTERS, JsonlObservationLog, StateRecord

log = logging.getLogger("shadowswap.shadow.statelog")

DEFAULT_INTERVAL_S = 10.0
#: metric events counted one for one (the others need a look at their arguments)
_COUNTED = {
    "fallback": "fallbacks",
    "dual_write_error": "dual_write_errors",
    "dual_write_skipped": "dual_write_skipped",
}


def process_name() -> str:
    """``host:pid:random``: unique per process run (a restarted process is another one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class StateRecorder:
    """Totals from metric events, written as state records (module docstring).

    >>> import tempfile
    >>> from shadowswap.clock import SystemClock
    >>> from shadowswap.shadow.observations import read_records
    >>> clock, metrics = SystemClock(), Metrics.null()
    >>> where = tempfile.mkdtemp()
    >>> log_ = JsonlObservationLog(where, retention_days=90, clock=clock)
    >>> recorder = StateRecorder(log_, metrics, clock)
    >>> metrics.read("faiss", "primary", "ok", 0.001)
    >>> recorder.close()
    >>> [r.reads for r in read_records(where)]
    [0, 1]
    """

    def __init__(
        self,
        log_: JsonlObservationLog,
        metrics: Metrics,
        clock: Clock,
        *,
        read_outbox: Callable[[], OutboxFigures] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        process: str | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._log = log_
        self._clock = clock
        self._read_outbox = read_outbox
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reason = "tick"
        self._counts = dict.fromkeys(STATE_COUNTERS, 0)
        self._breaker = "closed"
        self._state = StateRecord(
            ts=clock.now(), process=process or process_name(), started=clock.now(), reason="start"
        )
        self._closed = False
        self._write("start")
        metrics.listen(self._on_event)
        self._thread = threading.Thread(target=self._run, name="shadowswap-statelog", daemon=True)
        self._thread.start()

    @property
    def process(self) -> str:
        return self._state.process

    # -- the listener: caller's thread, counters only -------------------------------------
    def _on_event(self, event: str, args: tuple[Any, ...]) -> None:
        name = _COUNTED.get(event)
        if name is not None:
            with self._lock:
                self._counts[name] += 1
        elif event == "read" and args[1] == "primary":
            with self._lock:
                self._counts["reads"] += 1
                if args[2] != "ok":
                    self._counts["read_errors"] += 1
        elif event == "shadow_dropped" and args[0] == "queue_full":
            with self._lock:
                self._counts["shadow_queue_full"] += 1
        elif event == "breaker_state":
            with self._lock:
                if args[0] == self._breaker:
                    return
                self._breaker = str(args[0])
                self._reason = "breaker"
            self._wake.set()

    # -- the thread: writes -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval_s)
            if self._stop.is_set():
                return
            self._wake.clear()
            with self._lock:
                reason, self._reason = self._reason, "tick"
            self._write(reason)

    def _write(self, reason: str) -> None:
        figures = self._outbox()
        with self._lock:
            counts, breaker = dict(self._counts), self._breaker
        record = replace(
            self._state, ts=self._clock.now(), reason=reason, breaker=breaker,
            reads=counts["reads"], read_errors=counts["read_errors"],
            fallbacks=counts["fallbacks"], shadow_queue_full=counts["shadow_queue_full"],
            dual_write_errors=counts["dual_write_errors"],
            dual_write_skipped=counts["dual_write_skipped"],
        )  # fmt: skip
        if figures is not None:
            record = replace(
                record,
                outbox_size=figures.size,
                outbox_oldest_age_s=figures.oldest_age_s,
                outbox_dropped=sum(figures.dropped.values()),
            )
        self._log.write(record.ts, record.to_json())

    def _outbox(self) -> OutboxFigures | None:
        if self._read_outbox is None:
            return None
        try:
            return self._read_outbox()
        except Exception as exc:  # noqa: BLE001 - unknown outbox figures, never a crash
            log.warning("outbox not read for the state record", extra={"error": str(exc)})
            return None

    def flush(self) -> None:
        """Write a record now (tests, and the rehearsal before it asks the gate)."""
        self._write("tick")

    def close(self) -> None:
        """Write the last record and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join(5.0)
        self._write("close")

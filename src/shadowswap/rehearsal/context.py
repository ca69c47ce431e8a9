"""Everything the ladder's steps share, and the moves an operator makes between them.

The steps drive the migration the way an operator would: phase moves and the rollback are
edits of the rehearsal's env file through `shadowswap.rollout` (journaled, ``.bak`` first),
and the running pieces — built once by `shadowswap.runtime.build_runtime` on an
`EnvFileSettings` source — pick each edit up by themselves, within about a second. After
every edit the step waits until the runtime's settings show it (``reload_s``), so nothing is
checked against settings not yet in force.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shadowswap.clock import Clock
from shadowswap.dualwrite.replay import Replayer, ReplayReport
from shadowswap.errors import ShadowswapError
from shadowswap.policy import plan
from shadowswap.rehearsal.data import Dataset
from shadowswap.rehearsal.display import Display
from shadowswap.rehearsal.ledger import Ledger
from shadowswap.rehearsal.options import RehearsalOptions
from shadowswap.rehearsal.timeline import Timeline
from shadowswap.rehearsal.traffic import ReadBatch
from shadowswap.rehearsal.workload import LiveWriter
from shadowswap.rehearsal.workspace import Workspace
from shadowswap.rollout.journal import Journal, JournalEntry, utc_timestamp
from shadowswap.rollout.moves import Action, MoveReport, MoveRequest, PhaseMover
from shadowswap.runtime import Runtime
from shadowswap.settings.config import Settings, load_settings
from shadowswap.settings.envfile import edit_text, read_env, write_env
from shadowswap.settings.live import EnvFileSettings
from shadowswap.settings.phase import classify
from shadowswap.shadow.observations import Observation
from shadowswap.stores.base import VectorStore
from shadowswap.sync.freshness import record_write_plan, touches_write_plan
from shadowswap.sync.progress import Progress
from shadowswap.sync.reconcile import Reconcile, ReconcileReport, save_last
from shadowswap.testing.faults import FlappingStore

log = logging.getLogger("shadowswap.rehearsal")

RELOAD_TIMEOUT_S = 10.0


class StepFailed(ShadowswapError):
    """A step's check did not hold; ``numbers`` are what the step measured before."""

    def __init__(self, reason: str, numbers: dict[str, Any] | None = None) -> None:
        self.reason = reason
        self.numbers = numbers or {}
        super().__init__(reason)


@dataclass(frozen=True)
class Outcome:
    """What a step hands back: one line, and its numbers."""

    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """The rehearsal's pieces; see the module docstring."""

    options: RehearsalOptions
    ws: Workspace
    dataset: Dataset
    primary: VectorStore  # the legacy backend (raw store, shared with the runtime)
    target: VectorStore  # the new backend (raw store)
    faulty: FlappingStore  # the target as the runtime sees it: the outage is injected here
    source: EnvFileSettings
    environ: dict[str, str]
    runtime: Runtime
    timeline: Timeline
    ledger: Ledger
    writer: LiveWriter
    mover: PhaseMover
    journal: Journal
    display: Display
    clock: Clock
    reads: dict[str, ReadBatch] = field(default_factory=dict)
    reconciles: dict[str, ReconcileReport] = field(default_factory=dict)
    observations: list[Observation] = field(default_factory=list)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    drained: dict[str, Any] = field(default_factory=dict)  # the last drain's numbers
    # the gate's window in the log (epoch seconds): from the shadow read's start to the
    # moment the reconcile had drained the writes (state records written at both ends)
    gate_window: tuple[float | None, float | None] = (None, None)
    gate: dict[str, Any] | None = None
    verdict: str = "NONE"

    @property
    def settings(self) -> Settings:
        return self.source.current()

    def store(self, kind: str) -> VectorStore:
        """The raw store of ``kind`` (primary or target)."""
        for store in (self.primary, self.target):
            if store.kind == kind:
                return store
        raise ShadowswapError(f"no store of kind {kind!r} in this rehearsal")

    def expected_kind(self, tenant: str) -> str:
        """The backend kind that should serve ``tenant``'s reads under the current settings."""
        return plan(self.settings, tenant).read_kind

    # -- operator moves -------------------------------------------------------------------------
    def move(self, action: Action, reason: str, **options: Any) -> tuple[MoveReport, float]:
        """One phase move on the env file (``--apply``), then wait until the runtime follows;
        returns the report and how long the runtime took to follow."""
        request = MoveRequest(
            env_file=self.ws.env_file,
            action=action,
            apply=True,
            operator=self.options.operator,
            reason=reason,
            **options,
        )
        report = self.mover.run(request)
        goal = report.goal.label
        return report, self.await_settings(lambda s: classify(s).label == goal, goal)

    def edit_env(self, changes: dict[str, str], reason: str) -> float:
        """Set variables in the env file the way an operator edits it by hand (``.bak`` first,
        every other line kept), journal it, and wait until the runtime follows."""
        started, t0 = self.clock.now(), self.clock.monotonic()
        snapshot = read_env(self.ws.env_file)
        write_env(snapshot, edit_text(snapshot.text, changes, str(self.ws.env_file)), backup=True)
        self.journal.append(
            JournalEntry(
                utc_timestamp(started),
                self.options.operator,
                str(self.ws.env_file),
                True,
                "success",
                round(self.clock.monotonic() - t0, 3),
                changes,
                reason,
            )
        )
        if touches_write_plan(changes):  # as the phase moves and the rollback do (issue 15)
            after = load_settings(self.ws.env_file, self.environ)
            record_write_plan(after.state_dir, after, at=self.clock.now(), by="edit by hand")
        wanted = load_settings(environ={**self.environ, **changes}).as_env(mask=False)
        return self.await_settings(
            lambda s: all(s.as_env(mask=False)[k] == wanted[k] for k in changes), reason
        )

    def await_settings(self, done: Callable[[Settings], bool], what: str) -> float:
        """Wait until the runtime's settings satisfy ``done``; returns the seconds it took."""
        started = self.clock.monotonic()
        while not done(self.source.current()):
            if self.clock.monotonic() - started > RELOAD_TIMEOUT_S:
                raise StepFailed(
                    f"the running pieces did not pick up {what} from {self.ws.env_file} "
                    f"within {RELOAD_TIMEOUT_S:.0f} s"
                )
            self.clock.sleep(0.02)
        return round(self.clock.monotonic() - started, 3)

    # -- quiet moments --------------------------------------------------------------------------
    def drain(self) -> dict[str, Any]:
        """Pause the live writes, let the dual writer apply what it holds, replay what the
        outbox still has: the stores then hold every acknowledged write."""
        started = self.clock.monotonic()
        if not self.writer.pause():
            raise StepFailed("the live writer did not pause within 30 s")
        if not self.runtime.writer.flush(30.0):
            raise StepFailed("the dual writer did not apply its pending writes within 30 s")
        report = self.replay(quiet=True)
        return {
            "replayed": report.replayed,
            "outbox_left": report.remaining,
            "drain_s": round(self.clock.monotonic() - started, 3),
        }

    def replay(self, *, quiet: bool = False) -> ReplayReport:
        """``replay-outbox`` in process. With ``quiet`` (the live writes paused and the dual
        writer flushed: no write is in progress) an item whose change the source no longer
        holds was superseded by a newer write, so no in-flight grace is needed."""
        stores: dict[str, VectorStore] = {
            self.runtime.primary.kind: self.runtime.primary,
            self.faulty.kind: self.faulty,
        }
        options: dict[str, Any] = {"grace_s": 0.0} if quiet else {}
        total = ReplayReport()
        for _ in range(3):  # a run handles the items present when it started
            report = Replayer(
                self.runtime.outbox,
                stores.__getitem__,
                self.settings,
                self.runtime.metrics,
                self.clock,
                owner=f"rehearsal-replay:{id(self)}",
                **options,
            ).run()
            total = _add(total, report)
            handled = report.replayed + report.skipped_superseded + report.failed
            if report.remaining == 0 or report.failed or handled == 0:
                break
        return total

    def reconcile(
        self, name: str, *, repair: bool = False, progress: Progress | None = None
    ) -> ReconcileReport:
        """Compare (and repair) the two stores, tenant by tenant, each against the backend
        serving its reads; the result becomes ``reconcile_last.json`` (the phase moves read
        it), with the write plan it ran under."""
        settings = self.settings
        assert settings.target_backend is not None
        options: dict[str, Any] = {"progress": progress} if progress is not None else {}
        report = Reconcile(
            self.store(settings.backend),
            self.store(settings.target_backend),
            source=lambda tenant: plan(settings, tenant).read,
            repair=repair,
            clock=self.clock,
            settings=settings,
            **options,
        ).run()
        save_last(report, self.ws.state_dir)
        self.reconciles[name] = report
        return report


def _add(total: ReplayReport, report: ReplayReport) -> ReplayReport:
    return ReplayReport(
        replayed=total.replayed + report.replayed,
        skipped_unchanged=total.skipped_unchanged + report.skipped_unchanged,
        superseded=total.superseded + report.superseded,
        failed=total.failed + report.failed,
        in_flight=report.in_flight,
        expired=total.expired + report.expired,
        remaining=report.remaining,
        duration_s=total.duration_s + report.duration_s,
        stopped=report.stopped,
    )

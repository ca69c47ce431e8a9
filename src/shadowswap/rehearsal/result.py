"""What a rehearsal found: one record per step of the ladder, and the whole result, with the
JSON document of ``shadowswap rehearse --json`` and ``rehearsal.json``.

CONTRACT §6's keys come first: ``verdict`` (the gate's, ``PROMOTE`` | ``HOLD`` |
``ROLLBACK``, or ``NONE`` when the ladder stopped before the gate), ``lost_writes``, ``drift``
(the final reconcile's), ``agreement_at_5`` and ``ndcg_at_10`` (means over the shadow
comparisons), ``duration_s`` and ``steps``; then the details.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shadowswap import __version__

Status = Literal["passed", "failed", "not run"]


@dataclass(frozen=True)
class StepRecord:
    """One step of the ladder: what it did (``summary``), its numbers, how long it took
    (``started_s`` from the start of the run), and why it failed."""

    name: str
    status: Status
    started_s: float
    duration_s: float
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "started_s": round(self.started_s, 3),
            "duration_s": round(self.duration_s, 3),
            "summary": self.summary,
            "numbers": self.numbers,
            "error": self.error,
        }


@dataclass
class RehearsalResult:
    """The whole run. ``ok``: every step passed, no lost write, no drift."""

    primary: str
    target: str
    data: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    verdict: str = "NONE"
    lost_writes: int | None = None
    drift: int | None = None
    agreement_at_5: float | None = None
    ndcg_at_10: float | None = None
    duration_s: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    writes: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            all(s.status == "passed" for s in self.steps)
            and self.lost_writes == 0
            and self.drift == 0
        )

    @property
    def failed_step(self) -> StepRecord | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "lost_writes": self.lost_writes,
            "drift": self.drift,
            "agreement_at_5": _round(self.agreement_at_5),
            "ndcg_at_10": _round(self.ndcg_at_10),
            "duration_s": round(self.duration_s, 3),
            "steps": [s.as_dict() for s in self.steps],
            "ok": self.ok,
            "primary": self.primary,
            "target": self.target,
            "data": self.data,
            "writes": self.writes,
            "gate": self.gate,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "files": self.files,
            "notes": self.notes,
            "version": __version__,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)

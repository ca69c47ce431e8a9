"""Whether the last reconcile still speaks for the stores (issue 15), and the record of the
last change of the write plan that this depends on.

A reconcile proves the two stores held the same documents while it ran. That proof lasts
only as long as every later write kept reaching both stores. A result in
``<RETRIEVAL_STATE_DIR>/reconcile_last.json`` counts (is *fresh*) when all of these hold:

1. it covers every tenant and completed (`shadowswap.sync.reconcile` writes only such runs);
2. it records the write plan it ran under (files of the older format do not: stale);
3. dual write kept the other store in step for every tenant it covered, then
   (``tenants.<t>.dual_write``): a tenant it did not cover may have had writes one store
   never saw;
4. the write plan now is the one it ran under (`shadowswap.policy.write_plan_fingerprint`),
   whatever the times: an edit by hand is caught here;
5. no change of the write plan was recorded after it started (``write_plan.json``, below):
   a rollback and the moves back to the same plan leave the fingerprint as it was, while
   writes in between went to one store only;
6. it finished at most ``max_age_s`` ago (the gate's ``reconcile_fresh`` threshold; the
   callers read it, this module keeps no number of its own).

`reconcile_freshness` is the one function that decides it; the swap (`shadowswap.rollout`),
``phase status``, the status endpoint and the gate's evidence all ask it and show its
``reasons``.

``<RETRIEVAL_STATE_DIR>/write_plan.json`` is written by every command that edits a variable of
`shadowswap.policy.WRITE_PLAN_VARIABLES` (`record_write_plan`: phase moves, the rollback,
and the rehearsal's edits), after the edit::

    {"format": 1, "changed_at": "2026-03-02T10:15:00.123Z", "by": "rollback",
     "fingerprint": "3f1c9a0b5d2e", "variables": {...},
     "history": [{"changed_at": ..., "by": ..., "fingerprint": ...}, ...]}

``history`` keeps the last `HISTORY` changes, oldest first, so a stale reconcile can name the
first change after it ("rollback at ...") and the last. The file is replaced atomically under
a lock on the state directory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from shadowswap import locks
from shadowswap.errors import StateError
from shadowswap.policy import WRITE_PLAN_VARIABLES, write_plan_fingerprint, write_plan_variables
from shadowswap.settings.config import Settings
from shadowswap.sync.reconcile import iso, last_result_path, load_last
from shadowswap.sync.statefile import read_json, write_json_atomic

WRITE_PLAN_FILE = "write_plan.json"
FORMAT = 1
HISTORY = 100
MAX_NAMED_TENANTS = 5
RERUN = "run `shadowswap reconcile`"


@dataclass(frozen=True)
class Freshness:
    """What `reconcile_freshness` found. ``drift`` is what the last reconcile reported (None
    when there is none or it is unreadable); ``known_drift`` is it only when ``fresh``."""

    fresh: bool
    age_s: float | None
    drift: int | None
    reasons: tuple[str, ...] = ()
    max_age_s: float = math.inf
    path: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    write_plan: str | None = None  # the fingerprint the reconcile ran under
    write_plan_now: str | None = None  # the current settings' (None: not given)
    plan_changed_at: str | None = None  # the last recorded change of the write plan
    plan_changed_by: str | None = None

    @property
    def known_drift(self) -> int | None:
        return self.drift if self.fresh else None

    @property
    def ready(self) -> bool:
        """Fresh and drift 0: what making the new backend primary needs."""
        return self.fresh and self.drift == 0

    @property
    def summary(self) -> str:
        """What the file says: ``drift 0, finished <time> (3 h ago, limit 24 h)``, or why
        there is nothing to say."""
        if self.drift is None:
            return "; ".join(self.reasons) or f"no usable reconcile result at {self.path}"
        limit = "no limit" if math.isinf(self.max_age_s) else f"limit {span(self.max_age_s)}"
        age = "age unknown" if self.age_s is None else f"{span(self.age_s)} ago"
        return f"drift {self.drift}, finished {self.finished_at or '?'} ({age}, {limit})"

    @property
    def detail(self) -> str:
        """One line for people: the drift, the age and, when stale, why."""
        if self.drift is None or self.fresh:
            return self.summary
        return f"{self.summary}; STALE, it does not count: " + "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fresh": self.fresh,
            "drift": self.drift,
            "age_s": None if self.age_s is None else round(self.age_s, 3),
            "max_age_s": None if math.isinf(self.max_age_s) else self.max_age_s,
            "reasons": list(self.reasons),
            "path": self.path,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "write_plan": self.write_plan,
            "write_plan_now": self.write_plan_now,
            "plan_changed_at": self.plan_changed_at,
            "plan_changed_by": self.plan_changed_by,
        }


def reconcile_freshness(
    state_dir: str | Path, settings: Settings | None, now: float, max_age_s: float
) -> Freshness:
    """Whether ``<state_dir>/reconcile_last.json`` still speaks for the stores at ``now``
    (module doc). ``settings`` are the ones in force now (None: the comparison of write
    plans, rule 4, is skipped); ``max_age_s`` may be ``math.inf``. Never raises for a
    missing or unreadable file: that is a reason."""
    try:
        document = load_last(state_dir)
    except StateError as exc:
        path = str(last_result_path(state_dir))
        return Freshness(False, None, None, (f"{exc}: {RERUN}",), max_age_s, path)
    return freshness_of(document, state_dir, settings, now, max_age_s)


def freshness_of(
    document: Mapping[str, Any] | None,
    state_dir: str | Path,
    settings: Settings | None,
    now: float,
    max_age_s: float,
) -> Freshness:
    """`reconcile_freshness` of a result already read (``None``: there is none)."""
    path = last_result_path(state_dir)
    where = str(path)
    if document is None:
        reason = f"no reconcile result at {path}: {RERUN} first"
        return Freshness(False, None, None, (reason,), max_age_s, where)
    drift = document.get("drift")
    if isinstance(drift, bool) or not isinstance(drift, int) or drift < 0:
        reason = f"{path} has no whole-number `drift`: {RERUN}"
        return Freshness(False, None, None, (reason,), max_age_s, where)
    started_text = _text(document.get("started_at"))
    finished_text = _text(document.get("finished_at"))
    started, finished = _time(started_text), _time(finished_text)
    age = None if finished is None else max(0.0, now - finished)
    plan = document.get("write_plan")
    fingerprint = plan.get("fingerprint") if isinstance(plan, Mapping) else None
    stale = Freshness(
        False,
        age,
        drift,
        (),
        max_age_s,
        where,
        started_text,
        finished_text,
        fingerprint if isinstance(fingerprint, str) else None,
        None if settings is None else write_plan_fingerprint(settings),
    )
    if document.get("complete") is False:
        reason = f"the last reconcile did not complete (stopped before the end): {RERUN}"
        return replace(stale, reasons=(reason,))
    if not isinstance(plan, Mapping) or not isinstance(fingerprint, str):
        reason = (
            f"the last reconcile ({path}) does not record the write plan it was taken under "
            f"(written by an older shadowswap): {RERUN}"
        )
        return replace(stale, reasons=(reason,))
    reasons: list[str] = []
    if age is None:
        reasons.append(f"the last reconcile has no readable finished_at, so no age: {RERUN}")
    elif age > max_age_s:
        reasons.append(f"the last reconcile is {span(age)} old (limit {span(max_age_s)}): {RERUN}")
    record: dict[str, Any] | None = None
    try:
        record = read_write_plan(state_dir)
    except StateError as exc:
        reasons.append(f"the record of write-plan changes cannot be read ({exc}): {RERUN}")
    changed = _plan_changed(plan, started, record, settings)
    if changed:
        reasons.append(changed)
    off = _dual_write_off(document.get("tenants"))
    if off:
        reasons.append(off)
    return replace(
        stale,
        fresh=not reasons,
        reasons=tuple(reasons),
        plan_changed_at=_text(record.get("changed_at")) if record else None,
        plan_changed_by=_text(record.get("by")) if record else None,
    )


def _plan_changed(
    plan: Mapping[str, Any],
    started: float | None,
    record: Mapping[str, Any] | None,
    settings: Settings | None,
) -> str | None:
    """Rules 4 and 5 of the module doc, as one reason (or None)."""
    events = _changes_after(record, started)
    differences: list[str] = []
    if settings is not None and plan.get("fingerprint") != write_plan_fingerprint(settings):
        recorded = plan.get("variables")
        then: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
        for name, value in write_plan_variables(settings).items():
            before = str(then.get(name, "?"))
            if before != value:
                differences.append(f"{name} was {before or '(empty)'}, now {value or '(empty)'}")
        if not differences:  # a fingerprint from other code: say so rather than nothing
            differences.append("its fingerprint differs from the current settings'")
    if started is None:
        events = events or "its start time is unreadable"
    if not events and not differences:
        return None
    if not events:
        events = "an edit shadowswap did not record"
    reason = f"the write plan changed after the last reconcile ({events})"
    if differences:
        reason += ": " + "; ".join(differences)
    return reason


def _changes_after(record: Mapping[str, Any] | None, started: float | None) -> str:
    """``rollback at T, then 3 more changes, the last a phase set at T2``, or ``""``."""
    if record is None or started is None:
        return ""
    history = record.get("history")
    entries = [e for e in history if isinstance(e, Mapping)] if isinstance(history, list) else []
    if not entries:
        entries = [record]
    after = []
    for entry in entries:
        at = _time(_text(entry.get("changed_at")))
        if at is None or at > started:
            after.append(entry)
    if not after:
        return ""
    first, last = after[0], after[-1]
    text = f"{first.get('by') or 'a change'} at {first.get('changed_at') or '?'}"
    more = len(after) - 1
    if more:
        text += (
            f", then {more} more change{'s' if more > 1 else ''}, the last a "
            f"{last.get('by') or 'change'} at {last.get('changed_at') or '?'}"
        )
    return text


def _dual_write_off(tenants: Any) -> str | None:
    """Rule 3 of the module doc, as a reason (or None)."""
    if not isinstance(tenants, Mapping):
        return None
    off = [
        str(t)
        for t, entry in tenants.items()
        if not (isinstance(entry, Mapping) and entry.get("dual_write") is True)
    ]
    if not off:
        return None
    named = ", ".join(off[:MAX_NAMED_TENANTS])
    if len(off) > MAX_NAMED_TENANTS:
        named += f" and {len(off) - MAX_NAMED_TENANTS} more"
    word = "tenant" if len(off) == 1 else "tenants"
    return f"dual write was off for {word} {named} when the reconcile ran"


# -- the record of write-plan changes ---------------------------------------------------------
def write_plan_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / WRITE_PLAN_FILE


def read_write_plan(state_dir: str | Path) -> dict[str, Any] | None:
    """``write_plan.json`` (module doc), or None when no change was recorded yet; raises
    `StateError` when it cannot be read."""
    return read_json(write_plan_path(state_dir))


def record_write_plan(
    state_dir: str | Path, settings: Settings | None, *, at: float, by: str
) -> Path:
    """Record that the write plan changed at ``at`` (epoch seconds) by ``by`` (``phase
    advance``, ``rollback`` ...) to the plan of ``settings`` (None when they do not load: the
    time is what matters). Raises `StateError` when the record cannot be written."""
    path = write_plan_path(state_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with locks.hold_directory(path.parent):  # one recorder at a time: no lost history
            write_json_atomic(path, _next_record(state_dir, settings, at, by))
    except OSError as exc:
        raise StateError(str(path), f"cannot lock the state directory ({exc})") from exc
    return path


def _next_record(
    state_dir: str | Path, settings: Settings | None, at: float, by: str
) -> dict[str, Any]:
    try:
        previous = read_write_plan(state_dir)
    except StateError:  # unreadable: start a new history, the new change matters more
        previous = None
    kept = previous.get("history") if previous else None
    history = [e for e in kept if isinstance(e, dict)] if isinstance(kept, list) else []
    fingerprint = None if settings is None else write_plan_fingerprint(settings)
    entry = {"changed_at": iso(at), "by": by, "fingerprint": fingerprint}
    return {
        "format": FORMAT,
        "changed_at": entry["changed_at"],
        "by": by,
        "fingerprint": fingerprint,
        "variables": None if settings is None else write_plan_variables(settings),
        "history": [*history, entry][-HISTORY:],
    }


def touches_write_plan(changes: Mapping[str, str]) -> bool:
    """Whether an edit of these variables can change where writes go."""
    return any(name in WRITE_PLAN_VARIABLES for name in changes)


# -- helpers ----------------------------------------------------------------------------------
def span(seconds: float) -> str:
    """``42 s``, ``1.5 s``, ``12 min``, ``3 h``, ``24 h``, ``3 d``."""
    for unit, size, below in (("s", 1, 60), ("min", 60, 3600), ("h", 3600, 172_800)):
        if seconds < below:
            return f"{_number(seconds / size)} {unit}"
    return f"{_number(seconds / 86400)} d"


def _number(value: float) -> str:
    return str(round(value)) if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

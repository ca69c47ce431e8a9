"""``shadowswap rehearse``: a whole migration, rehearsed on real data, with proof.

The rehearsal runs the real pieces in one process — stores, read router, dual writer,
outbox, breaker (`shadowswap.runtime.build_runtime`), backfill and reconcile
(`shadowswap.sync`), phase moves, rollback and journal (`shadowswap.rollout`), the replay
(`shadowswap.dualwrite.replay`), the gate (`shadowswap.gate`) — and walks the runbooks'
ladder: load the primary, dual write on with live writes, backfill, a target outage and its
replay, shadow read, reconcile, gate, cutover 10 -> 50 -> 100 %, swap, a rollback drill and
the way back, final reconcile, and the check of every acknowledged write in both stores.

    data.py        GloVe 6B 50-d split into tenants, held-out queries (or the user's stores)
    workspace.py   the work directory and the env file the ladder edits
    context.py     what the steps share; phase moves, drain, replay, reconcile
    steps_before.py, steps_after.py   the ladder
    workload.py    the live writes;  ledger.py  acknowledged writes and the lost-write check
    traffic.py     reads through the router;  timeline.py  events over time, for the plots
    display.py     progress on stderr;  result.py  the record;  report/  JSON and HTML
    runner.py      opens everything, walks the ladder, writes the reports

May import every layer below the CLI (runtime, rollout, gate, sync, dualwrite, read, shadow,
`shadowswap.testing` for its fault-injecting target, stores, settings, foundation); nothing
but the CLI imports it.
"""

from shadowswap.rehearsal.options import RehearsalOptions
from shadowswap.rehearsal.result import RehearsalResult, StepRecord
from shadowswap.rehearsal.runner import LADDER, STEP_NAMES, prepare_workspace, run_rehearsal

__all__ = [
    "LADDER",
    "STEP_NAMES",
    "RehearsalOptions",
    "RehearsalResult",
    "StepRecord",
    "prepare_workspace",
    "run_rehearsal",
]

"""Backfill and reconcile: copy everything between two stores, and prove they agree.

    backfill.py     resumable, idempotent, throttled copy of every tenant (checkpointed)
    reconcile.py    per-tenant comparison by content hash; repair, purge of the delta,
                    the last result in ``reconcile_last.json``
    freshness.py    whether the last reconcile still speaks for the stores (the swap's
                    check), and ``write_plan.json``, the last change of the write plan
    diff.py         the streamed sorted merge that finds missing, extra and stale documents
    converge.py     apply a batch, then verify it against concurrent writers
    checkpoint.py   where a backfill got to, per (source, destination, tenant)
    continuous.py   ``reconcile --every``: the loop and its metrics
    statefile.py    atomic JSON state files and the lock
    pacing.py, prefetch.py, progress.py, retry.py   the plumbing of long jobs

The library functions are what the CLI calls (``shadowswap backfill``, ``shadowswap
reconcile``) and what other parts use directly (the rollback calls `purge_delta`).

May import `shadowswap.policy` (which store serves a tenant), stores, settings and the
foundation; never the control plane (`shadowswap.rollout`), the read path or dual write.
"""

from shadowswap.sync.backfill import Backfill, BackfillReport, backfill
from shadowswap.sync.checkpoint import Checkpoint, FileCheckpoints, MemoryCheckpoints
from shadowswap.sync.reconcile import (
    Reconcile,
    ReconcileReport,
    TenantDrift,
    load_last,
    purge_delta,
    reconcile,
    save_last,
)

__all__ = [
    "Backfill",
    "BackfillReport",
    "Checkpoint",
    "FileCheckpoints",
    "MemoryCheckpoints",
    "Reconcile",
    "ReconcileReport",
    "TenantDrift",
    "backfill",
    "load_last",
    "purge_delta",
    "reconcile",
    "save_last",
]

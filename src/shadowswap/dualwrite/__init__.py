"""Dual write (runbook 000, phase 2): every change goes to the backend serving the tenant's
reads and, through a circuit breaker, to the other one; what cannot reach it waits in a
durable outbox, shared fairly between tenants, until the writer's applier drains it (or,
as the fallback, ``shadowswap replay-outbox``). See ``docs/dual-write.md``.

    writer.py           the dual writer: the caller's path, and the one place a write enters
    applier.py          the writer's one long-lived background applier (its own thread):
                        round robin over tenants, and the continuous drain of the outbox
    replay.py           the replay rules, idempotent and safe to run concurrently; the
                        ``replay-outbox`` run
    breaker.py          the circuit breaker (explicit state machine, injected clock)
    outbox.py           the outbox boundary: values and the `Outbox` Protocol (no implementation)
    outbox_url.py       `open_outbox`: the implementation ``RETRIEVAL_DUAL_WRITE_OUTBOX_URL`` names
    sql_outbox.py       the outbox algorithms in SQL, shared by the two SQL outboxes
    sqlite_outbox.py    the default outbox (SQLite, WAL; no document content); also the one
                        tests and demos use, in a temporary directory
    postgres_outbox.py  the shared outbox for several replicas (PostgreSQL, psycopg loaded lazily)
    figures.py          `OutboxSampler`: the outbox size and age the writer and applier
                        tell metrics listeners (the exposition reads the outbox at scrape)
    logfields.py        error fields that are safe to log

The path of one write (`DualWriter.upsert` or `delete`): the writer asks the policy once
(`shadowswap.policy.plan`) which backend is written synchronously and which is deferred;
appends the changes to the outbox (`outbox.py`, one durable commit, leased to its applier when
the breaker is closed); writes the synchronous backend; answers the caller; and hands the
items to its `Applier` (`applier.py`), which applies them on its own thread through the
breaker by the replay rules (`replay.py`) and acks them. Nothing calls back into the writer.
What the applier cannot apply at once stays in the outbox; the applier drains it whenever the
breaker lets it, and ``replay-outbox`` (the same rules, `Replayer.run`) is the fallback.

May import: the stores (`shadowswap.stores`), the policy, the settings and the foundation
(errors, values, clock, metrics, logs). Never the read path, sync, the operator's control plane
or anything above them.
"""

from shadowswap.dualwrite.breaker import (
    Breaker,
    BreakerConfig,
    BreakerStorage,
    MemoryBreakerStorage,
    State,
)
from shadowswap.dualwrite.outbox import Change, Item, Outbox, OutboxStats
from shadowswap.dualwrite.outbox_url import open_outbox
from shadowswap.dualwrite.replay import DryRun, OpenStores, Replayer, ReplayReport
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter, WriteResult

__all__ = [
    "Breaker",
    "BreakerConfig",
    "BreakerStorage",
    "Change",
    "DryRun",
    "DualWriter",
    "Item",
    "MemoryBreakerStorage",
    "OpenStores",
    "Outbox",
    "OutboxStats",
    "ReplayReport",
    "Replayer",
    "SqliteOutbox",
    "State",
    "WriteResult",
    "open_outbox",
]

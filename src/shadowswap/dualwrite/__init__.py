"""Dual write (runbook 000, phase 2): every change goes to the backend serving the tenant's
reads and, through a circuit breaker, to the other one; what cannot reach it waits in a
durable outbox until ``shadowswap replay-outbox`` applies it. See ``docs/dual-write.md``.

    breaker.py          the circuit breaker (explicit state machine, injected clock)
    applier.py          the writer's background thread that applies its own outbox items
    outbox.py           the outbox boundary: values, the Protocol, `open_outbox`
    sql_outbox.py       the outbox algorithms in SQL, shared by the two SQL outboxes
    sqlite_outbox.py    the default outbox (SQLite, WAL, fsync per commit; no document content)
    postgres_outbox.py  the shared outbox for several replicas (PostgreSQL)
    memory_outbox.py    an outbox in memory, for tests and demos
    writer.py           the dual writer
    replay.py           replay of the outbox, idempotent and safe to run concurrently
"""

from shadowswap.dualwrite.breaker import (
    Breaker,
    BreakerConfig,
    BreakerStorage,
    MemoryBreakerStorage,
    State,
)
from shadowswap.dualwrite.memory_outbox import MemoryOutbox
from shadowswap.dualwrite.outbox import Change, Item, Outbox, OutboxStats, open_outbox
from shadowswap.dualwrite.replay import DryRun, OpenStores, Replayer, ReplayReport
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
    "MemoryOutbox",
    "OpenStores",
    "Outbox",
    "OutboxStats",
    "ReplayReport",
    "Replayer",
    "State",
    "WriteResult",
    "open_outbox",
]

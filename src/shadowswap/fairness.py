"""Fair slots: a bound on work in flight, shared fairly between tenants. The gateway's write
slots (`shadowswap.service.app`) and the FAISS store's catalog writer
(`shadowswap.stores.faiss`, one slot: a tenant-fair lock) use it.

Why: the gateway bounded writes with one global semaphore of 16, refusing the 17th with 503.
One tenant running 20 concurrent 1,000-document upserts then held every slot, and 18 of 60
single-document upserts of another tenant failed (issue 16, finding 2). The global bound has
to stay (writes have no deadline of their own, so a hung primary must not take every thread),
but no tenant may spend another's share of it.

The rules, in `FairSlots`:

- at most ``total`` writes run at once, and at most ``per_tenant`` of them for one tenant;
- a write that finds no slot it may take waits in its tenant's own queue (FIFO), so a heavy
  tenant queues behind itself, not in front of others;
- a freed slot goes to the tenants with waiters in round-robin order (the tenant served last
  goes to the back of the ring), skipping tenants at their cap;
- a write waits at most ``wait_s`` (``None``: as long as it takes, for a lock); a tenant
  with ``max_waiting`` writes queued already gets no queue place. Either way only that
  tenant's write is refused (`SlotBusy`, a 503 with ``Retry-After``), never another's.

Why a fixed per-tenant cap, not a share that grows while a tenant is alone: slots cannot be
taken back from a running write. A lone tenant that took all 16 would make the next tenant
wait for one of its writes to finish (a second or more for 1,000 documents), which is the delay
the finding is about. With the cap, a tenant that arrives finds a free slot as long as fewer
than ``total // per_tenant`` tenants are saturating theirs; beyond that, tenants take turns.

Why a small class and not a library: the pieces a library offers (semaphores, priority
queues) are the easy part; the rules above (per-key cap, per-key FIFO, round-robin hand-off,
bounded waits that clean up after themselves) are the whole of it, in under 200 lines, and
tested through threads and events (tests/service/test_slots.py).

>>> slots = FairSlots(total=2, per_tenant=1, max_waiting=4, wait_s=1.0)
>>> with slots.hold("tenant-a"):
...     slots.snapshot()["tenant-a"]
Usage(running=1, waiting=0)
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple


class SlotBusy(Exception):
    """A write found no slot within its tenant's limits; ``reason`` says which limit."""

    def __init__(self, tenant: str, reason: str) -> None:
        super().__init__(f"{tenant}: {reason}")
        self.tenant = tenant
        self.reason = reason


class Usage(NamedTuple):
    """One tenant's writes: running (holding a slot) and waiting (queued)."""

    running: int
    waiting: int


@dataclass(eq=False)
class _Waiter:
    granted: bool = False
    event: threading.Event = field(default_factory=threading.Event)


class FairSlots:
    """``total`` write slots, at most ``per_tenant`` per tenant; see the module docstring."""

    def __init__(self, total: int, per_tenant: int, max_waiting: int, wait_s: float | None) -> None:
        if not 1 <= per_tenant <= total:
            raise ValueError(f"per_tenant must be within 1..total ({total}), got {per_tenant}")
        if max_waiting < 0 or (wait_s is not None and wait_s < 0):
            raise ValueError("max_waiting and wait_s must not be negative")
        self.total = total
        self.per_tenant = per_tenant
        self.max_waiting = max_waiting
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._queues: dict[str, deque[_Waiter]] = {}
        self._ring: deque[str] = deque()  # tenants with waiters, next to serve first
        self._in_use = 0

    # -- taking and giving back ------------------------------------------------------------
    def acquire(self, tenant: str, timeout: float | None = None) -> None:
        """Take a slot for ``tenant``, waiting at most ``timeout`` (default ``wait_s``; None
        waits as long as it takes) seconds in its queue; raises `SlotBusy` when it cannot."""
        with self._lock:
            if self._may_take(tenant):
                self._take(tenant)
                return
            queue = self._queues.setdefault(tenant, deque())
            if len(queue) >= self.max_waiting:
                if not queue:
                    del self._queues[tenant]
                raise SlotBusy(
                    tenant,
                    f"{self._running.get(tenant, 0)} writes of this tenant are running and "
                    f"{len(queue)} are queued (the most one tenant may queue)",
                )
            waiter = _Waiter()
            queue.append(waiter)
            if tenant not in self._ring:
                self._ring.append(tenant)
        waited = self.wait_s if timeout is None else timeout
        waiter.event.wait(waited)  # None: until granted (never times out)
        with self._lock:
            if waiter.granted:  # granted under the lock: the flag, not the wait's result
                return
            queue.remove(waiter)
            if not queue:
                del self._queues[tenant]
                self._ring.remove(tenant)
            raise SlotBusy(
                tenant,
                f"waited {waited or 0:g} s behind this tenant's own {self._running.get(tenant, 0)} "
                f"running and {len(queue)} queued writes",
            )

    def release(self, tenant: str) -> None:
        """Give back a slot ``tenant`` holds; the next waiter (round-robin) gets it."""
        with self._lock:
            held = self._running.get(tenant, 0)
            if held <= 0:
                raise RuntimeError(f"release without acquire for tenant {tenant}")
            if held == 1:
                del self._running[tenant]
            else:
                self._running[tenant] = held - 1
            self._in_use -= 1
            self._hand_off()

    @contextmanager
    def hold(self, tenant: str, timeout: float | None = None) -> Iterator[None]:
        """``with slots.hold(tenant):`` run one write in a slot."""
        self.acquire(tenant, timeout)
        try:
            yield
        finally:
            self.release(tenant)

    def snapshot(self) -> dict[str, Usage]:
        """Every tenant with a running or waiting write (for the status page and tests)."""
        with self._lock:
            tenants = set(self._running) | set(self._queues)
            return {
                t: Usage(self._running.get(t, 0), len(self._queues.get(t, ()))) for t in tenants
            }

    # -- under the lock ----------------------------------------------------------------
    def _may_take(self, tenant: str) -> bool:
        return (
            self._in_use < self.total
            and self._running.get(tenant, 0) < self.per_tenant
            and tenant not in self._queues  # FIFO: a tenant's earlier writes go first
        )

    def _take(self, tenant: str) -> None:
        self._running[tenant] = self._running.get(tenant, 0) + 1
        self._in_use += 1

    def _hand_off(self) -> None:
        """Give free slots to waiters: tenants in ring order, skipping those at their cap;
        a tenant served goes to the back of the ring."""
        while self._in_use < self.total:
            for tenant in self._ring:
                if self._running.get(tenant, 0) < self.per_tenant:
                    break
            else:
                return  # nobody waits, or every waiting tenant is at its cap
            self._ring.remove(tenant)
            queue = self._queues[tenant]
            waiter = queue.popleft()
            if queue:
                self._ring.append(tenant)
            else:
                del self._queues[tenant]
            self._take(tenant)
            waiter.granted = True
            waiter.event.set()


class FifoRLock:
    """A reentrant lock granted in arrival order: on release the longest waiter gets it.

    Why not `threading.RLock`: it is not fair. A thread that releases it and asks again at
    once (a writer going from one chunk of a large write to the next) usually gets it back
    before a waiting thread is even scheduled, so a reader or a small write of another tenant
    can wait for many chunks in a row: in the FAISS store, a single write's pre-write lookup
    waited 112 ms at p99 behind another tenant's 1,000-document writes (issue 16). Here the
    lock is handed to the first waiter on release, so it waits for the current holder only.
    Costs a few microseconds more per acquisition than an RLock, without contention.

    >>> lock = FifoRLock()
    >>> with lock:
    ...     with lock:
    ...         lock.held()
    True
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: deque[tuple[int, threading.Lock]] = deque()

    def acquire(self) -> bool:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None and not self._waiters:
                self._owner, self._depth = me, 1
                return True
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append((me, gate))
        gate.acquire()  # released by the holder that hands the lock to this thread
        return True

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release a lock held by another thread")
            self._depth -= 1
            if self._depth:
                return
            if self._waiters:
                self._owner, gate = self._waiters.popleft()
                self._depth = 1
                gate.release()
            else:
                self._owner = None

    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._owner == threading.get_ident()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()

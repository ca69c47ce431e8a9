"""`FairSlots` (issue 16, finding 2): the global bound, the per-tenant cap, FIFO within a
tenant, round-robin between tenants, bounded waits. Threads and events only: each test waits
for a state (a write queued, a slot granted), never for a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from shadowswap.fairness import FairSlots, SlotBusy, Usage

LONG = 30.0  # a wait that must end by a hand-off, never by its deadline


def wait_until(predicate: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "state not reached"
        time.sleep(0.001)


class Writer:
    """A thread that takes a slot for ``tenant``, records when it got it, and holds it until
    `finish` is called."""

    def __init__(self, slots: FairSlots, tenant: str, order: list[str], name: str) -> None:
        self.slots, self.tenant, self.order, self.name = slots, tenant, order, name
        self.granted = threading.Event()
        self.done = threading.Event()
        self.error: SlotBusy | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.slots.acquire(self.tenant, LONG)
        except SlotBusy as exc:
            self.error = exc
            self.granted.set()
            return
        self.order.append(self.name)
        self.granted.set()
        self.done.wait(LONG)
        self.slots.release(self.tenant)

    def start(self) -> Writer:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.done.set()
        self.thread.join(LONG)
        assert not self.thread.is_alive()


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    made: list[Writer] = []
    yield made
    for w in made:
        w.done.set()
        w.thread.join(LONG)


def start(made: list[Writer], slots: FairSlots, tenant: str, order: list[str], name: str) -> Writer:
    """Start a writer and wait until it holds a slot or waits in its queue."""
    before = slots.snapshot().get(tenant, Usage(0, 0))
    w = Writer(slots, tenant, order, name).start()
    made.append(w)
    wait_until(lambda: sum(slots.snapshot().get(tenant, Usage(0, 0))) == sum(before) + 1)
    return w


def test_a_tenant_runs_at_most_its_cap_and_queues_the_rest(writers: list[Writer]) -> None:
    slots = FairSlots(total=8, per_tenant=2, max_waiting=10, wait_s=LONG)
    order: list[str] = []
    for i in range(5):
        start(writers, slots, "heavy", order, f"h{i}")
    assert slots.snapshot() == {"heavy": Usage(running=2, waiting=3)}
    assert order == ["h0", "h1"]
    assert all(w.error is None for w in writers)


def test_another_tenant_gets_a_slot_at_once_while_one_floods(writers: list[Writer]) -> None:
    slots = FairSlots(total=4, per_tenant=2, max_waiting=100, wait_s=LONG)
    order: list[str] = []
    for i in range(20):
        start(writers, slots, "heavy", order, f"h{i}")
    for _ in range(3):  # never waits: timeout 0
        with slots.hold("victim", timeout=0):
            assert slots.snapshot()["victim"] == Usage(1, 0)
    assert slots.snapshot() == {"heavy": Usage(2, 18)}


def test_a_tenants_writes_are_served_in_arrival_order(writers: list[Writer]) -> None:
    slots = FairSlots(total=4, per_tenant=1, max_waiting=10, wait_s=LONG)
    order: list[str] = []
    ws = [start(writers, slots, "t", order, f"w{i}") for i in range(4)]
    for i, w in enumerate(ws[:-1]):
        w.finish()
        ws[i + 1].granted.wait(LONG)
    assert order == ["w0", "w1", "w2", "w3"]


def test_a_tenant_with_queued_writes_does_not_overtake_them() -> None:
    """A new write of a tenant with waiters queues behind them even when a slot is free."""
    slots = FairSlots(total=2, per_tenant=1, max_waiting=10, wait_s=LONG)
    slots.acquire("t")
    order: list[str] = []
    w = Writer(slots, "t", order, "first").start()
    wait_until(lambda: slots.snapshot()["t"] == Usage(1, 1))
    with pytest.raises(SlotBusy):
        slots.acquire("t", timeout=0)
    slots.release("t")
    w.granted.wait(LONG)
    assert order == ["first"]
    w.finish()
    assert slots.snapshot() == {}


def test_freed_slots_go_round_robin_between_tenants(writers: list[Writer]) -> None:
    slots = FairSlots(total=1, per_tenant=1, max_waiting=10, wait_s=LONG)
    order: list[str] = []
    first = start(writers, slots, "x", order, "x0")
    a = [start(writers, slots, "a", order, f"a{i}") for i in range(3)]
    b = [start(writers, slots, "b", order, f"b{i}") for i in range(2)]
    c = [start(writers, slots, "c", order, "c0")]
    running = first
    expected = ["x0", "a0", "b0", "c0", "a1", "b1", "a2"]
    by_name = {w.name: w for w in a + b + c}
    for name in expected[1:]:
        running.finish()
        by_name[name].granted.wait(LONG)
        running = by_name[name]
    running.finish()
    assert order == expected
    assert slots.snapshot() == {}


def test_a_tenant_at_its_cap_is_skipped_and_keeps_its_place(writers: list[Writer]) -> None:
    """total 3, cap 2: a holds 2 and waits; b holds 1 and waits. b's slot freed goes to b
    (a is at its cap); a's freed slot goes to a."""
    slots = FairSlots(total=3, per_tenant=2, max_waiting=10, wait_s=LONG)
    order: list[str] = []
    a = [start(writers, slots, "a", order, f"a{i}") for i in range(3)]
    b = [start(writers, slots, "b", order, f"b{i}") for i in range(2)]
    assert slots.snapshot() == {"a": Usage(2, 1), "b": Usage(1, 1)}
    b[0].finish()
    b[1].granted.wait(LONG)
    assert order[-1] == "b1"
    a[0].finish()
    a[2].granted.wait(LONG)
    assert order[-1] == "a2"


def test_the_global_bound_holds_and_queued_tenants_share_it(writers: list[Writer]) -> None:
    slots = FairSlots(total=4, per_tenant=2, max_waiting=10, wait_s=LONG)
    order: list[str] = []
    held = [start(writers, slots, t, order, f"{t}{i}") for t in "ab" for i in range(2)]
    late = start(writers, slots, "c", order, "c0")
    more_a = start(writers, slots, "a", order, "a2")
    assert slots.snapshot()["c"] == Usage(0, 1) and slots.snapshot()["a"] == Usage(2, 1)
    held[2].finish()  # b frees one: c was queued first, and b has no waiter
    late.granted.wait(LONG)
    assert order[-1] == "c0" and not more_a.granted.is_set()
    held[0].finish()  # a frees one: its own waiter
    more_a.granted.wait(LONG)
    assert order[-1] == "a2"


def test_a_wait_past_the_deadline_is_refused_and_leaves_no_trace() -> None:
    slots = FairSlots(total=1, per_tenant=1, max_waiting=10, wait_s=0.01)
    slots.acquire("t")
    with pytest.raises(SlotBusy) as caught:
        slots.acquire("t")
    assert caught.value.tenant == "t" and "waited 0.01 s" in caught.value.reason
    assert slots.snapshot() == {"t": Usage(1, 0)}
    slots.release("t")
    with slots.hold("t", timeout=0):
        pass
    assert slots.snapshot() == {}


def test_a_full_queue_refuses_at_once_only_that_tenant(writers: list[Writer]) -> None:
    slots = FairSlots(total=2, per_tenant=1, max_waiting=2, wait_s=LONG)
    order: list[str] = []
    for i in range(3):
        start(writers, slots, "heavy", order, f"h{i}")
    with pytest.raises(SlotBusy) as caught:
        slots.acquire("heavy", timeout=LONG)  # would wait LONG if it queued
    assert "2 are queued" in caught.value.reason
    with slots.hold("other", timeout=0):
        pass
    assert slots.snapshot() == {"heavy": Usage(1, 2)}


def test_no_queue_at_all_refuses_when_busy() -> None:
    slots = FairSlots(total=1, per_tenant=1, max_waiting=0, wait_s=LONG)
    slots.acquire("t")
    with pytest.raises(SlotBusy):
        slots.acquire("u")
    assert slots.snapshot() == {"t": Usage(1, 0)}


def test_release_without_acquire_is_a_bug() -> None:
    slots = FairSlots(total=1, per_tenant=1, max_waiting=0, wait_s=0)
    with pytest.raises(RuntimeError, match="release without acquire"):
        slots.release("t")


@pytest.mark.parametrize(
    ("total", "per_tenant", "max_waiting", "wait_s"),
    [(2, 0, 1, 1.0), (2, 3, 1, 1.0), (2, 1, -1, 1.0), (2, 1, 1, -1.0)],
)
def test_limits_are_checked(total: int, per_tenant: int, max_waiting: int, wait_s: float) -> None:
    with pytest.raises(ValueError, match="must"):
        FairSlots(total, per_tenant, max_waiting, wait_s)


def test_limits_hold_under_contention() -> None:
    """Many threads of three tenants: never more than total running, never more than the cap
    for one tenant, every write served, and nothing left behind."""
    slots = FairSlots(total=5, per_tenant=2, max_waiting=100, wait_s=LONG)
    lock = threading.Lock()
    running: dict[str, int] = {}
    peak = {"total": 0, "tenant": 0}
    served: list[str] = []

    def write(tenant: str) -> None:
        with slots.hold(tenant):
            with lock:
                running[tenant] = running.get(tenant, 0) + 1
                peak["total"] = max(peak["total"], sum(running.values()))
                peak["tenant"] = max(peak["tenant"], running[tenant])
            time.sleep(0.0005)  # let others contend; not an assertion
            with lock:
                running[tenant] -= 1
                served.append(tenant)

    threads = [
        threading.Thread(target=write, args=(t,)) for _ in range(30) for t in ("a", "b", "c")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LONG)
    assert len(served) == 90
    assert peak["tenant"] == 2 and 2 <= peak["total"] <= 5
    assert slots.snapshot() == {}

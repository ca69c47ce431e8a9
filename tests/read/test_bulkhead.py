"""The bulkhead: results and errors cross threads, deadlines free the caller, the number of
calls in flight never exceeds the limit."""

from __future__ import annotations

import threading

import pytest

from shadowswap.read.bulkhead import Bulkhead, BulkheadFull


def test_results_and_errors_reach_the_caller() -> None:
    bulkhead = Bulkhead("test", limit=2)
    try:
        assert bulkhead.call(lambda: 42, timeout_s=5) == 42
        with pytest.raises(KeyError, match="missing"):
            bulkhead.call(lambda: {}["missing"], timeout_s=5)
        assert [bulkhead.call(lambda i=i: i * i, timeout_s=5) for i in range(50)][-1] == 49 * 49
        assert bulkhead.in_flight == 0
    finally:
        bulkhead.close()


def test_a_hung_call_frees_the_caller_at_the_deadline_and_holds_its_slot() -> None:
    gate = threading.Event()
    bulkhead = Bulkhead("test", limit=2)
    try:
        for _ in range(2):
            with pytest.raises(TimeoutError, match="did not answer"):
                bulkhead.call(lambda: gate.wait(30), timeout_s=0.01)
        assert bulkhead.in_flight == 2
        with pytest.raises(BulkheadFull, match="2 calls to test are already in flight"):
            bulkhead.call(lambda: 1, timeout_s=5)
        gate.set()  # the hung calls return: their slots come back
        for _ in range(200):
            if bulkhead.in_flight == 0:
                break
            threading.Event().wait(0.01)
        assert bulkhead.call(lambda: "again", timeout_s=5) == "again"
    finally:
        gate.set()
        bulkhead.close()


def test_concurrent_callers_share_the_slots() -> None:
    bulkhead = Bulkhead("test", limit=4)
    results: list[int] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        for i in range(100):
            value = bulkhead.call(lambda i=i: n * 1000 + i, timeout_s=10)
            with lock:
                results.append(value)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    bulkhead.close()
    assert sorted(results) == sorted(n * 1000 + i for n in range(4) for i in range(100))
    with pytest.raises(RuntimeError, match="closed"):
        bulkhead.call(lambda: 1, timeout_s=1)

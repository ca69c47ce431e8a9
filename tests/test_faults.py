"""The fault-injecting stores wrap a real store: unaffected operations reach it unchanged."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from shadowswap.clock import FakeClock
from shadowswap.errors import StoreTimeout, StoreUnavailable
from shadowswap.similarity import Metric
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing import clustered_corpus
from shadowswap.testing.faults import FailingStore, FlappingStore, HangingStore, SlowStore


@pytest.fixture
def faiss(tmp_path: Path) -> FaissStore:
    store = FaissStore(tmp_path / "faiss", Metric.COSINE)
    store.upsert("acme", clustered_corpus("acme", 40, 8, seed=1).documents)
    return store


def test_failing_store_fails_only_the_chosen_operations(faiss: FaissStore) -> None:
    store = FailingStore(faiss, ops=["search"])
    with pytest.raises(StoreUnavailable, match="injected fault"):
        store.search("acme", [1.0] * 8, 3)
    assert store.count("acme") == 40 and store.kind == "faiss" and store.dimension == 8
    custom = FailingStore(faiss, error=lambda op, t: StoreTimeout("faiss", op, "slow", t))
    with pytest.raises(StoreTimeout):
        custom.count("acme")
    with pytest.raises(ValueError, match="unknown operations"):
        FailingStore(faiss, ops=["serch"])


def test_hanging_store_blocks_until_released_then_answers(faiss: FaissStore) -> None:
    store = HangingStore(faiss, ops=["search"])
    answers: list[int] = []
    thread = threading.Thread(
        target=lambda: answers.append(len(store.search("acme", [1.0] * 8, 3).hits))
    )
    thread.start()
    assert store.wait_for_waiting(1)
    assert answers == [] and store.count("acme") == 40  # other operations go through
    store.release()
    thread.join(10)
    assert answers == [3] and store.waiting == 0 and store.calls == 1
    store.hang()  # blocks again
    again = threading.Thread(target=lambda: store.search("acme", [1.0] * 8, 3))
    again.start()
    assert store.wait_for_waiting(1)
    store.release()
    again.join(10)
    assert store.waiting == 0 and store.calls == 2


def test_slow_store_spends_its_delay_on_the_clock(faiss: FaissStore) -> None:
    clock = FakeClock(start=0.0)
    store = SlowStore(faiss, 0.25, ops=["search", "count"], clock=clock)
    store.search("acme", [1.0] * 8, 3)
    store.count("acme")
    store.tenants()  # not affected
    assert clock.monotonic() == pytest.approx(0.5)


def test_flapping_store_by_rule_and_by_hand(faiss: FaissStore) -> None:
    store = FlappingStore(faiss, ops=["count"], down=lambda n: n % 2 == 0)
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(store.count("acme"))
        except StoreUnavailable:
            outcomes.append(-1)
    assert outcomes == [40, -1, 40, -1] and store.failures == 2
    store.go_down()
    with pytest.raises(StoreUnavailable):
        store.count("acme")
    store.come_up()
    assert store.count("acme") == 40

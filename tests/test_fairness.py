"""The fair lock and the FAISS store's tenant turns (issue 16): another tenant's write waits
for one chunk of a large write, not for all of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shadowswap.fairness import FairSlots, FifoRLock
from shadowswap.stores import faiss as faiss_store
from shadowswap.stores.faiss import FaissStore
from shadowswap.values import Document

WRITE_CHUNK = getattr(faiss_store, "WRITE_CHUNK", 100)  # (the old store had no chunks)


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


def test_the_lock_goes_to_waiters_in_arrival_order() -> None:
    lock = FifoRLock()
    order: list[str] = []
    lock.acquire()
    threads = []
    for name in "abc":
        thread = threading.Thread(
            target=lambda n=name: (lock.acquire(), order.append(n), lock.release())
        )
        thread.start()
        threads.append(thread)
        queued = len(threads)
        _until(lambda n=queued: len(lock._waiters) == n)
    # The releasing thread asks again at once: it queues behind the three, it does not barge.
    lock.release()
    with lock:
        order.append("me")
    for thread in threads:
        thread.join(5)
    assert order == ["a", "b", "c", "me"]


def test_the_lock_is_reentrant_and_only_its_holder_releases_it() -> None:
    lock = FifoRLock()
    with lock:
        with lock:
            assert lock.held()
        assert lock.held()
        errors: list[BaseException] = []

        def other() -> None:
            try:
                lock.release()
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(5)
        assert len(errors) == 1
    assert not lock.held()
    assert lock._owner is None


def test_slots_without_a_wait_limit_wait_until_granted() -> None:
    turns = FairSlots(total=1, per_tenant=1, max_waiting=100, wait_s=None)
    got = threading.Event()
    turns.acquire("a")

    def b() -> None:
        with turns.hold("b"):
            got.set()

    thread = threading.Thread(target=b)
    thread.start()
    _until(lambda: turns.snapshot().get("b") is not None)
    assert not got.wait(0.2)  # no timeout, no SlotBusy: it waits
    turns.release("a")
    assert got.wait(5)
    thread.join(5)


def _docs(tenant: str, n: int, prefix: str) -> list[Document]:
    vectors = np.random.default_rng(7).standard_normal((n, 8)).astype(np.float32)
    return [Document(tenant, f"{prefix}{i}", vectors[i], {"i": i}) for i in range(n)]


def test_another_tenants_write_commits_between_the_chunks_of_a_large_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a write was one transaction under one unfair lock, so tenant b's single write
    committed after all 500 of tenant a's documents (order [a, b])."""
    store = FaissStore(tmp_path / "faiss")
    store.upsert("b", _docs("b", 1, "warm"))
    commits: list[str] = []
    b_started = threading.Event()
    bump, hashes = store._bump, store._hashes

    def record(tenant: str) -> int:
        if tenant == "a" and not commits:  # a's first chunk: let b arrive meanwhile
            assert b_started.wait(10)
            time.sleep(0.05)
        commits.append(tenant)
        return bump(tenant)

    def noting(tenant: str, doc_ids: list[str]) -> dict[str, str]:
        if tenant == "b":
            b_started.set()
        return hashes(tenant, doc_ids)

    monkeypatch.setattr(store, "_bump", record)
    monkeypatch.setattr(store, "_hashes", noting)
    large = threading.Thread(target=store.upsert, args=("a", _docs("a", 5 * WRITE_CHUNK, "x")))
    large.start()
    store.upsert("b", _docs("b", 1, "single"))
    large.join(30)
    assert commits.count("a") == 5  # one transaction per chunk
    assert commits.index("b") < len(commits) - 1, commits  # b did not wait for all of a
    assert store.count("a") == 5 * WRITE_CHUNK and store.count("b") == 2
    store.close()


def test_a_large_delete_commits_in_chunks_and_removes_everything(tmp_path: Path) -> None:
    store = FaissStore(tmp_path / "faiss")
    docs = _docs("a", 3 * WRITE_CHUNK + 7, "d")
    store.upsert("a", docs)
    assert store.search("a", docs[0].vector, 1).doc_ids == ["d0"]
    assert store.delete("a", [d.doc_id for d in docs] + ["absent"]) == len(docs)
    assert store.count("a") == 0
    assert store.search("a", docs[0].vector, 1).doc_ids == []
    store.close()

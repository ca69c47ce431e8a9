"""When a tenant's synchronous backend changes (cutover step, swap, rollback): the writer
follows the kinds the settings name, and an older change still on its way to the backend that
is now written synchronously never lands after the newer write.

Found by the rehearsal (``lost writes`` 1 in CI): a delete made right after a cutover step was
undone by the applier's older upsert of the same document, then copied back to the other
store, so both stores agreed on a document the caller had deleted (drift 0, write lost).

Primary: the memory reference store; target: real FAISS. The older change is held inside the
store by `shadowswap.testing.HangingStore` so that the newer write is made while it is pending.
"""

from __future__ import annotations

import threading
from pathlib import Path

from shadowswap.clock import FakeClock
from shadowswap.dualwrite.breaker import Breaker
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.settings.config import Settings
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing.faults import FailingStore, HangingStore
from tests.dualwrite.conftest import closed_after_test, doc, settings, sqlite_outbox
from tests.metrics_helpers import RecordingMetrics


class Switch:
    """A settings source the test moves from one phase to the next."""

    def __init__(self, first: Settings) -> None:
        self.settings = first

    def current(self) -> Settings:
        return self.settings


class HoldFirst(HangingStore):
    """Holds the first affected call until `release`; later calls go through."""

    def _before(self, op: str, tenant: str | None) -> None:
        if self.calls == 1:
            super()._before(op, tenant)


def held(store: VectorStore) -> HoldFirst:
    return HoldFirst(store, ops=["upsert"])


def writer_for(
    primary: VectorStore, target: VectorStore, source: Switch, tmp_path: Path
) -> DualWriter:
    clock, sink = FakeClock(), RecordingMetrics()
    box = sqlite_outbox(tmp_path)
    return closed_after_test(
        DualWriter(primary, target, source, box, Breaker(clock, sink.breaker_state), sink, clock)
    )


def hash_of(store: VectorStore, doc_id: str) -> str | None:
    found = store.get("acme", [doc_id]).get(doc_id)
    return None if found is None else found.content_hash


def write_across_the_flip(writer: DualWriter, hold: HoldFirst, source: Switch,
                          after: Settings, newer: str) -> bool:  # fmt: skip
    """Flip the settings while the older change is held in the store, make the newer write
    (``delete`` or ``update``) on a thread, let the older change go; True when the newer
    write waited for it."""
    assert hold.wait_for_waiting(1)  # the applier is inside the older change
    source.settings = after

    def newer_write() -> None:
        if newer == "delete":
            writer.delete("acme", ["hot"])
        else:
            writer.upsert("acme", [doc("acme", "hot", 2)])

    thread = threading.Thread(target=newer_write)
    thread.start()
    thread.join(0.5)
    waited = thread.is_alive()
    hold.release()
    thread.join(10)
    assert not thread.is_alive()
    assert writer.flush(10)
    return waited


def test_a_delete_after_a_cutover_step_is_not_undone_by_an_older_upsert(tmp_path: Path) -> None:
    primary = MemoryStore()
    target = held(FaissStore(tmp_path / "target", Metric.COSINE))
    source = Switch(settings())  # acme writes the primary, the target deferred
    writer = writer_for(primary, target, source, tmp_path)
    writer.upsert("acme", [doc("acme", "hot", 1)])  # its deferred copy is held in the target
    # the next step cuts acme over: its writes now go to the target first
    waited = write_across_the_flip(
        writer, target, source, settings(RETRIEVAL_CUTOVER_TENANTS="acme"), "delete"
    )
    assert waited  # the delete waited for the older upsert to land, then removed it
    assert hash_of(target.inner, "hot") is None
    assert hash_of(primary, "hot") is None
    assert writer.outbox.stats().size == 0


def test_an_update_after_a_rollback_is_not_overwritten_by_an_older_change(
    tmp_path: Path,
) -> None:
    primary = held(MemoryStore())
    target = FaissStore(tmp_path / "target", Metric.COSINE)
    # cut over: acme writes the target first, the primary deferred (held)
    source = Switch(settings(RETRIEVAL_CUTOVER_TENANTS="acme"))
    writer = writer_for(primary, target, source, tmp_path)
    writer.upsert("acme", [doc("acme", "hot", 1)])
    # runbook 002: back to the primary alone, dual write off
    waited = write_across_the_flip(
        writer, primary, source, settings(FF_RETRIEVAL_DUAL_WRITE="OFF"), "update"
    )
    assert waited
    assert hash_of(primary.inner, "hot") == doc("acme", "hot", 2).content_hash
    # the target keeps version 1 (dual write is off): reconcile's business, not a lost write
    assert hash_of(target, "hot") == doc("acme", "hot", 1).content_hash


def test_without_a_flip_writes_never_wait_for_the_applier(tmp_path: Path) -> None:
    primary = MemoryStore()
    target = held(FaissStore(tmp_path / "target", Metric.COSINE))
    source = Switch(settings())
    writer = writer_for(primary, target, source, tmp_path)
    writer.upsert("acme", [doc("acme", "hot", 1)])
    waited = write_across_the_flip(writer, target, source, settings(), "delete")
    assert not waited  # same plan: the caller never waits for the target
    assert hash_of(primary, "hot") is None and hash_of(target.inner, "hot") is None


def test_after_a_swap_the_new_primary_is_written_synchronously(tmp_path: Path) -> None:
    """Runbook 001: the kinds exchange roles in the settings; the writer built with the old
    roles follows the kinds, so the old backend (now the target) can fail without failing a
    write."""
    legacy = FailingStore(MemoryStore(), ops=["upsert", "delete"])  # down for writes
    new = FaissStore(tmp_path / "target", Metric.COSINE)
    swapped = settings(RETRIEVAL_BACKEND="faiss", RETRIEVAL_TARGET_BACKEND="memory")
    writer = writer_for(legacy, new, Switch(swapped), tmp_path)
    result = writer.upsert("acme", [doc("acme", "a", 1)])
    assert (result.sync, result.deferred) == ("faiss", "memory")
    assert hash_of(new, "a") == doc("acme", "a", 1).content_hash
    assert writer.flush(10)
    # the change the legacy store missed waits in the outbox for it
    assert writer.outbox.stats().size == 1
    assert hash_of(legacy.inner, "a") is None

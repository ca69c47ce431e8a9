"""Make one store agree with a source on a batch of ids, safely while other writers run.

Backfill and ``reconcile --repair`` both copy documents they read a moment ago. Meanwhile
dual write may change the same documents: it writes the source of truth first, then the
other store (CONTRACT §1; through the breaker and the outbox). A naive copy could land
*after* that newer write and put an older version back. So every batch is verified after it
is written (`Converger.apply`):

1. read the batch from the source (or take the page just scanned) and write it to the
   replica (upsert; ids the source no longer has are deleted when allowed);
2. read the same ids' content hashes from the source again (`BaseStore.hashes`: no vectors
   are read); any id whose hash changed or that vanished since step 1 is read and written
   again (or deleted) with what the source holds now;
3. repeat step 2 until a re-read matches what was last written (at most ``max_rounds``).
   For ``reconcile --repair`` the replica's hashes are read back too and must match.

Hashes here are the ones the stores keep for idempotent upserts (FAISS: its catalog column;
Chroma: the ``_ss_hash`` field shadowswap writes beside each document). They catch every
change made through shadowswap; damage done to a store behind its back is what reconcile's
comparison (which recomputes hashes from content where an adapter has no catalog) is for.

Why this closes the race, for one id: suppose our last write put version V (read from the
source at time r) and the re-read after that write still shows V. Any write of another
version that reached the source after r was superseded there by V again before the re-read,
and the writer sends its versions to the replica in the order it applied them to the source,
each after the source; so the last version to reach the replica is V, ours or the writer's.
If the source changed after the re-read, the writer's own write to the replica follows that
change and is later than ours. What remains open is not this algorithm's: a writer that
reorders its writes to the replica, or an outbox item dropped by the dual-write helper. Both
leave a difference that reconcile finds (it compares every document) and repairs.

Ids still changing after ``max_rounds`` are reported ``unsettled``; documents the replica
refuses (invalid for that engine) are reported ``failed``. Transient store errors are
retried with backoff on the injected clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from shadowswap.clock import Clock
from shadowswap.errors import DimensionMismatch, InvalidInput
from shadowswap.stores.base import BaseStore, VectorStore
from shadowswap.sync.retry import NO_RETRY, Retry
from shadowswap.values import Document, WriteReport

MAX_ROUNDS = 5


@dataclass(frozen=True)
class Outcome:
    """What applying one batch did to the replica. ``failed``: refused by the replica;
    ``unsettled``: still changing after the last round; ``skipped``: left alone because the
    first round was not allowed to write (or delete) them."""

    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: tuple[str, ...] = ()
    unsettled: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.written + other.written,
            self.unchanged + other.unchanged,
            self.deleted + other.deleted,
            self.failed + other.failed,
            self.unsettled + other.unsettled,
            self.skipped + other.skipped,
        )


class Converger:
    """Applies batches of one tenant from ``source`` to ``replica`` (module docstring)."""

    def __init__(
        self,
        source: VectorStore,
        replica: VectorStore,
        tenant: str,
        *,
        clock: Clock,
        retry: Retry = NO_RETRY,
        read_back: bool = False,
        max_rounds: int = MAX_ROUNDS,
    ) -> None:
        self.source = source
        self.replica = replica
        self.tenant = tenant
        self._clock = clock
        self._retry = retry
        self._read_back = read_back
        self._max_rounds = max_rounds

    def apply(
        self,
        ids: Sequence[str],
        *,
        seed: Mapping[str, Document] | None = None,
        write: bool = True,
        delete: bool = True,
    ) -> Outcome:
        """Bring ``ids`` in the replica to the source's state, then verify (see above).

        ``seed`` is the source's documents as just read (saves the first read). ``write`` /
        ``delete`` choose what the first round may do; later rounds only redo ids this call
        already touched, so they may always write or delete.
        """
        view: dict[str, Document] = dict(seed) if seed is not None else self._read(ids)
        writes = [view[i] for i in ids if i in view] if write else []
        deletes = [i for i in ids if i not in view] if delete else []
        skipped = tuple(
            i for i in ids if (i in view and not write) or (i not in view and not delete)
        )
        outcome = self._push(writes, deletes) + Outcome(skipped=skipped)
        refused = set(outcome.failed)
        pending = [d.doc_id for d in writes if d.doc_id not in refused] + deletes
        for _ in range(self._max_rounds):
            if not pending:
                break
            now = self._hashes(pending)
            changed = [i for i in pending if now.get(i) != _digest(view.get(i))]
            if self._read_back:
                held = self._hashes(pending, replica=True)
                already = set(changed)
                changed += [i for i in pending if i not in already and held.get(i) != now.get(i)]
            if not changed:
                pending = []
                break
            fresh = self._read(changed)  # what the source holds now: the version to put
            for i in changed:
                if i in fresh:
                    view[i] = fresh[i]
                else:
                    view.pop(i, None)
            step = self._push(
                [fresh[i] for i in changed if i in fresh], [i for i in changed if i not in fresh]
            )
            outcome += Outcome(step.written, 0, step.deleted, step.failed)
            refused = set(step.failed)
            pending = [i for i in changed if i not in refused]
        return outcome + Outcome(unsettled=tuple(pending))

    # -- store calls ----------------------------------------------------------------------
    def _hashes(self, ids: Sequence[str], *, replica: bool = False) -> dict[str, str]:
        """Content hashes without vectors where the store offers them (`BaseStore.hashes`)."""
        store = self.replica if replica else self.source
        if isinstance(store, BaseStore):
            return self._retry.call(lambda: store.hashes(self.tenant, list(ids)), self._clock)
        return {i: d.content_hash for i, d in self._read(ids, replica=replica).items()}

    def _read(self, ids: Sequence[str], *, replica: bool = False) -> dict[str, Document]:
        store = self.replica if replica else self.source
        if not ids:
            return {}
        return self._retry.call(lambda: store.get(self.tenant, list(ids)), self._clock)

    def _push(self, writes: Sequence[Document], deletes: Sequence[str]) -> Outcome:
        written = unchanged = deleted = 0
        failed: list[str] = []
        if writes:
            try:
                report = self._retry.call(
                    lambda: self.replica.upsert(self.tenant, list(writes)), self._clock
                )
                written, unchanged = report.written, report.unchanged
            except DimensionMismatch:
                raise  # the stores disagree on the dimension: nothing could be copied
            except InvalidInput:
                written, unchanged, failed = self._one_by_one(writes)
        if deletes:
            deleted = self._retry.call(
                lambda: self.replica.delete(self.tenant, list(deletes)), self._clock
            )
        return Outcome(written, unchanged, deleted, tuple(failed))

    def _one_by_one(self, writes: Sequence[Document]) -> tuple[int, int, list[str]]:
        """Isolate the documents the replica refuses, so the rest of the batch still goes."""
        written = unchanged = 0
        failed: list[str] = []
        for doc in writes:
            try:
                report = self._retry.call(self._upsert_one(doc), self._clock)
            except DimensionMismatch:
                raise
            except InvalidInput:
                failed.append(doc.doc_id)
                continue
            written += report.written
            unchanged += report.unchanged
        return written, unchanged, failed

    def _upsert_one(self, doc: Document) -> Callable[[], WriteReport]:
        return lambda: self.replica.upsert(self.tenant, [doc])


def _digest(doc: Document | None) -> str | None:
    return None if doc is None else doc.content_hash

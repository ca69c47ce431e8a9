"""What a repair left: the ids it acted on, read again from both stores and compared the way
the comparison compares them.

Why a separate read (issue 16): the repair's own read-back (`shadowswap.sync.converge`) reads
the content hash a store keeps *beside* a document for idempotent upserts, which is the hash
of what shadowswap sent. A store that keeps something else than it was sent (Chroma turned
``-0.0`` into ``0.0``; a write acknowledged and lost) still reports that hash, so the repair
believed itself and recorded drift 0, while the next comparison, which hashes what the store
gives back, found the same difference again, forever. Here each store's documents are read
with ``get`` and hashed as `shadowswap.sync.diff.digest_stream` hashes that store (the stored
hash where the adapter's ``get`` and ``digests`` both serve it, FAISS; else recomputed from
what came back; recomputed everywhere with ``deep``), so what a repair reports left is what
the next reconcile would find, as of this read.
"""

from __future__ import annotations

from collections.abc import Sequence

from shadowswap.clock import Clock
from shadowswap.stores.base import BaseStore, VectorStore
from shadowswap.sync.diff import Kind
from shadowswap.sync.retry import Retry
from shadowswap.values import content_hash


def seen_hashes(
    store: VectorStore, tenant: str, ids: Sequence[str], *, deep: bool, retry: Retry, clock: Clock
) -> dict[str, str]:
    """The content hashes of those of ``ids`` that ``store`` holds, as reconcile's comparison
    sees them (module docstring)."""
    if not ids:
        return {}
    docs = retry.call(lambda: store.get(tenant, list(ids)), clock)
    if deep or not isinstance(store, BaseStore):
        return {i: content_hash(d.vector, d.metadata, d.text) for i, d in docs.items()}
    return {i: d.content_hash for i, d in docs.items()}


def still_different(
    source: VectorStore,
    replica: VectorStore,
    tenant: str,
    ids: Sequence[str],
    *,
    deep: bool,
    retry: Retry,
    clock: Clock,
) -> dict[str, Kind]:
    """Those of ``ids`` that differ now between ``source`` and ``replica``, with their kind
    (``missing``, ``extra`` or ``stale`` relative to ``source``), in the order of ``ids``."""
    ours = seen_hashes(source, tenant, ids, deep=deep, retry=retry, clock=clock)
    theirs = seen_hashes(replica, tenant, ids, deep=deep, retry=retry, clock=clock)
    left: dict[str, Kind] = {}
    for i in ids:
        mine, other = ours.get(i), theirs.get(i)
        if mine == other:
            continue
        left[i] = "missing" if other is None else "extra" if mine is None else "stale"
    return left

"""The two answers of one shadow read, put back at the same moment, and every hit the target
returned that the primary did not, judged by looking it up.

Same moment
    Documents written, changed or deleted after the primary answered (`RecentWrites`) are left
    out of both lists; a target hit among them is *late* (not a fault). Both lists are then
    cut to the same length: each is a prefix of the ranking of the documents nobody touched
    (a document added later only pushes others down; one deleted since lets one more in), so
    the prefixes of equal length are what the two stores answer for the same content. When
    nothing was left out the lists are compared as returned.

Extra hits (in the target's list, not in the primary's), each looked up in the primary for
the tenant and in the target (two batched ``hashes`` calls, on the shadow thread, within the
shadow deadline):

    foreign    absent from the tenant in the primary: a document the tenant must not see
               (another tenant's, or one deleted). A fault whatever its score.
    stale      present in the primary with another content hash: the target holds an old
               version.
    ranking    present with the same content: an ordinary ranking difference (an approximate
               index, ties).
    late       changed after the primary answered (also when seen changing during the
               lookups); left out, not a fault.
    unchecked  the lookups failed (or the target does not hold the document it returned);
               counted, not judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shadowswap.shadow.recent import RecentWrites
from shadowswap.stores.base import VectorStore
from shadowswap.values import Hit

CLASSES = ("foreign", "stale", "ranking", "late", "unchecked")


@dataclass(frozen=True)
class Judged:
    """What the comparison is made of: the two lists as of the same moment, and the classes
    of the target's extra hits (document ids)."""

    primary: tuple[Hit, ...]
    shadow: tuple[Hit, ...]
    left_out: tuple[str, ...] = ()  # changed after the primary answered: out of both lists
    late: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    ranking: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()
    looked_up: bool = False  # False: no lookup was possible (no primary store given)


def hashes(store: VectorStore, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
    """Content hashes of those of ``doc_ids`` the tenant holds in ``store``: the adapters'
    ``hashes`` (no vectors read) when the store has it, else from ``get``."""
    lookup = getattr(store, "hashes", None)  # BaseStore and the fault wrappers have it
    if callable(lookup):
        return dict(lookup(tenant, doc_ids))
    return {doc_id: doc.content_hash for doc_id, doc in store.get(tenant, doc_ids).items()}


def same_moment(
    primary: Sequence[Hit], shadow: Sequence[Hit], changed: set[str]
) -> tuple[tuple[Hit, ...], tuple[Hit, ...]]:
    """Both lists without the ``changed`` documents, cut to one length (module docstring)."""
    if not changed:
        return tuple(primary), tuple(shadow)
    p = tuple(h for h in primary if h.doc_id not in changed)
    s = tuple(h for h in shadow if h.doc_id not in changed)
    n = min(len(p), len(s))
    return p[:n], s[:n]


def judge(
    tenant: str,
    primary: Sequence[Hit],
    shadow: Sequence[Hit],
    *,
    primary_store: VectorStore | None,
    shadow_store: VectorStore,
    recent: RecentWrites | None,
    since: int,
) -> Judged:
    """Judge one shadow read (module docstring). Never raises because of a lookup."""
    ids = [h.doc_id for h in primary] + [h.doc_id for h in shadow]
    changed = recent.changed_since(tenant, ids, since) if recent is not None else set()
    in_primary = {h.doc_id for h in primary}
    extras = list(dict.fromkeys(h.doc_id for h in shadow if h.doc_id not in in_primary))
    to_check = [d for d in extras if d not in changed]
    in_primary_now: dict[str, str] = {}
    in_target: dict[str, str] = {}
    unchecked: list[str] = [] if primary_store is not None else list(to_check)
    if primary_store is not None and to_check:
        try:
            in_primary_now = hashes(primary_store, tenant, to_check)
            held = [d for d in to_check if d in in_primary_now]
            in_target = hashes(shadow_store, tenant, held) if held else {}
        except Exception:  # noqa: BLE001 - a lookup that fails judges nothing, it never raises
            in_primary_now, in_target, unchecked = {}, {}, list(to_check)
    if recent is not None:  # a write may have landed while we looked
        changed |= recent.changed_since(tenant, to_check, since)
    foreign: list[str] = []
    stale: list[str] = []
    ranking: list[str] = []
    for doc_id in to_check:
        if doc_id in changed or doc_id in unchecked:
            continue
        if doc_id not in in_primary_now:
            foreign.append(doc_id)
        elif doc_id not in in_target:
            unchecked.append(doc_id)
        elif in_target[doc_id] != in_primary_now[doc_id]:
            stale.append(doc_id)
        else:
            ranking.append(doc_id)
    p, s = same_moment(primary, shadow, changed)
    return Judged(
        p, s,
        left_out=tuple(sorted(changed)),
        late=tuple(d for d in extras if d in changed),
        foreign=tuple(foreign), stale=tuple(stale), ranking=tuple(ranking),
        unchecked=tuple(unchecked), looked_up=primary_store is not None,
    )  # fmt: skip

"""Tenants are walls: no call for tenant A ever returns or touches tenant B's documents.

Hypothesis draws sequences of operations over two tenants that share doc ids and vectors;
after every step each tenant's view must equal a model that holds only its own writes.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowswap.stores.base import BaseStore
from tests.stores.conftest import STORE_KINDS, StoreMaker

IDS = ["a", "b", "c", "d", "é", "shared id"]
VECTORS = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.3, 0.2, 0.9]]

op = st.one_of(
    st.tuples(
        st.just("upsert"),
        st.sampled_from(["A", "B"]),
        st.lists(
            st.tuples(st.sampled_from(IDS), st.sampled_from(range(len(VECTORS)))),
            min_size=1,
            max_size=4,
        ),
    ),
    st.tuples(
        st.just("delete"),
        st.sampled_from(["A", "B"]),
        st.lists(st.sampled_from(IDS), min_size=1, max_size=3),
    ),
)

_round = itertools.count()


def _check_views(store: BaseStore, names: dict[str, str], model: dict[str, dict[str, int]]) -> None:
    from shadowswap.values import Document

    for side, tenant in names.items():
        mine = model[side]
        assert store.count(tenant) == len(mine)
        scanned = {d.doc_id: d for page in store.scan(tenant, batch_size=2) for d in page}
        assert set(scanned) == set(mine)
        for doc_id, doc in scanned.items():
            assert doc.tenant == tenant
            assert doc.metadata["owner"] == side
            expect = Document(tenant, doc_id, VECTORS[mine[doc_id]], {"owner": side})
            assert doc.content_hash == store.get(tenant, [doc_id])[doc_id].content_hash
            assert doc.metadata == expect.metadata
        got = store.get(tenant, IDS)
        assert set(got) == set(mine)
        assert all(d.metadata["owner"] == side for d in got.values())
        for vec in VECTORS:
            hits = store.search(tenant, vec, 10).hits
            assert {h.doc_id for h in hits} == set(mine)
            assert all(h.metadata["owner"] == side for h in hits)
            filtered = store.search(tenant, vec, 10, {"owner": "A" if side == "B" else "B"})
            assert filtered.hits == ()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_no_call_crosses_tenants(make_store: StoreMaker, kind: str) -> None:
    store = make_store(kind)
    examples = 40 if kind in ("memory", "faiss") else 15

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
    )
    @given(st.lists(op, min_size=1, max_size=8))
    def run(ops: list[tuple[str, str, list[object]]]) -> None:
        from shadowswap.values import Document

        n = next(_round)
        names = {"A": f"iso{n}-a", "B": f"iso{n}-b"}
        model: dict[str, dict[str, int]] = {"A": {}, "B": {}}
        for action, side, args in ops:
            tenant = names[side]
            if action == "upsert":
                batch = [Document(tenant, i, VECTORS[v], {"owner": side}) for i, v in args]  # type: ignore[misc]
                store.upsert(tenant, batch)
                for i, v in args:  # type: ignore[misc]
                    model[side][i] = v
            else:
                removed = store.delete(tenant, args)  # type: ignore[arg-type]
                assert removed == len(set(args) & set(model[side]))  # type: ignore[arg-type]
                for i in args:
                    model[side].pop(i, None)  # type: ignore[call-overload]
            _check_views(store, names, model)

    run()

"""Rules `BaseStore` applies for every adapter, checked on the reference store with the engine
part instrumented (what the contract suite cannot provoke on purpose: races, round trips)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shadowswap import values
from shadowswap.errors import DimensionMismatch, IncompatibleStore, InvalidInput
from shadowswap.similarity import Metric
from shadowswap.stores import base
from shadowswap.stores.base import check_store_record, search_store
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing.faults import FaultyStore
from shadowswap.values import Document, Query, SearchResult


class CountingStore(MemoryStore):
    """Counts dimension reads; optionally another writer fixes the dimension right after the
    first read (as a second process or thread would between the read and the fix)."""

    def __init__(self, race_with: list[float] | None = None) -> None:
        super().__init__()
        self.dimension_reads = 0
        self.race_with = race_with

    def _stored_dimension(self) -> int | None:
        self.dimension_reads += 1
        held = super()._stored_dimension()
        if self.race_with is not None:
            vector, self.race_with = self.race_with, None
            MemoryStore.upsert(self, "t", [Document("t", "other", vector)])
        return held


def test_the_dimension_is_read_once_per_upsert_even_on_an_empty_store() -> None:
    store = CountingStore()
    store.upsert("t", [Document("t", "a", [1.0, 0.0])])
    assert store.dimension_reads == 1
    store.upsert("t", [Document("t", "b", [0.0, 1.0])])
    assert store.dimension_reads == 2
    store.upsert("t", [])
    assert store.dimension_reads == 2  # nothing to check: no round trip


def test_a_dimension_fixed_by_another_writer_meanwhile_refuses_the_batch() -> None:
    store = CountingStore(race_with=[1.0, 0.0])
    with pytest.raises(DimensionMismatch, match=r"3 dimensions.*2-dimensional"):
        store.upsert("t", [Document("t", "a", [1.0, 0.0, 0.0])])
    assert store.dimension == 2 and list(store.get("t", ["a", "other"])) == ["other"]
    assert store.search("t", [1.0, 0.0], 5).doc_ids == ["other"]


def test_the_same_dimension_fixed_meanwhile_is_accepted() -> None:
    store = CountingStore(race_with=[1.0, 0.0])
    assert store.upsert("t", [Document("t", "a", [0.0, 1.0])]).written == 1
    assert store.count("t") == 2


def test_a_store_record_of_another_format_or_metric_is_refused_saying_what_to_do() -> None:
    def check(info: dict[str, object]) -> None:
        check_store_record(
            "x", info, format="1", metric=Metric.COSINE, record="meta", store="/data/x",
            elsewhere="use another location",
        )  # fmt: skip

    check({"format": "1", "metric": "cosine", "dimension": 3})
    with pytest.raises(IncompatibleStore, match=r"meta has format '2'; this version reads 1"):
        check({"format": "2", "metric": "cosine"})
    with pytest.raises(
        IncompatibleStore,
        match=r"/data/x was created with metric 'l2', not 'cosine'; set RETRIEVAL_METRIC=l2 or "
        "use another location",
    ):
        check({"format": "1", "metric": "l2"})


# -- a checked query is trusted ----------------------------------------------------------------
CHECKS = ("check_tenant", "to_vector", "check_k", "check_metadata")


def forbid_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, any of the input checks raises, wherever it is called from."""

    def refuse(name: str) -> Callable[..., object]:
        def check(*_args: object, **_kwargs: object) -> object:
            raise AssertionError(f"{name} called again")

        return check

    for module in (values, base):
        for name in CHECKS:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse(name))


def filled() -> MemoryStore:
    store = MemoryStore()
    store.upsert(
        "t",
        [
            Document("t", "a", [1.0, 0.0], {"lang": "en"}),
            Document("t", "b", [0.9, 0.1], {"lang": "fr"}),
            Document("t", "c", [0.0, 1.0], {"lang": "en"}),
        ],
    )
    return store


def test_a_query_is_searched_without_checking_it_again(monkeypatch: pytest.MonkeyPatch) -> None:
    store = filled()
    raw = store.search("t", [1.0, 0.2], 2, {"lang": "en"})
    query = Query("t", [1.0, 0.2], 2, {"lang": "en"})
    forbid_checks(monkeypatch)
    assert store.search_query(query) == raw
    assert raw.doc_ids == ["a", "c"]
    assert search_store(store, query) == raw


def test_a_query_still_meets_the_stores_dimension_and_metric() -> None:
    store = filled()
    query = Query("t", [1.0, 2.0, 3.0], 1)
    with pytest.raises(DimensionMismatch) as by_query:
        store.search_query(query)
    with pytest.raises(DimensionMismatch) as by_raw:
        store.search("t", [1.0, 2.0, 3.0], 1)
    assert str(by_query.value) == str(by_raw.value)
    assert "3 dimensions" in str(by_query.value) and "2-dimensional" in str(by_query.value)
    with pytest.raises(InvalidInput, match="no direction"):  # cosine: the zero vector
        store.search_query(Query("t", [0.0, 0.0], 1))
    assert MemoryStore().search_query(Query("t", [1.0, 2.0, 3.0], 1)) == SearchResult("memory", ())


def test_raw_arguments_are_checked_by_the_store_as_before() -> None:
    store = filled()
    for args, field in [
        (("bad tenant", [1.0, 0.0], 1, None), "tenant"),
        (("t", "text", 1, None), "vector"),
        (("t", [1.0, 0.0], 0, None), "k"),
        (("t", [1.0, 0.0], 1, {"a": None}), "filter.a"),
        (("t", [1.0, 0.0], 1, []), "filter"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            store.search(*args)  # type: ignore[arg-type]
        assert caught.value.field == field, args


class Recording(FaultyStore):
    """Not a `BaseStore`: records the raw arguments its ``search`` gets."""

    def __init__(self, inner: MemoryStore) -> None:
        super().__init__(inner, ops=())
        self.searches: list[tuple[object, ...]] = []

    def search(self, *args: object, **kwargs: object) -> SearchResult:
        self.searches.append(args)
        return super().search(*args, **kwargs)  # type: ignore[arg-type]


def test_another_vector_store_gets_the_querys_raw_parts_and_checks_them_itself() -> None:
    inner = filled()
    wrapper = Recording(inner)
    query = Query("t", [1.0, 0.2], 2, {"lang": "en"})
    assert search_store(wrapper, query) == inner.search("t", [1.0, 0.2], 2, {"lang": "en"})
    ((tenant, vector, k, flt),) = wrapper.searches
    assert (tenant, k, dict(flt)) == ("t", 2, {"lang": "en"})  # type: ignore[call-overload]
    assert vector is query.vector  # the checked, read-only copy

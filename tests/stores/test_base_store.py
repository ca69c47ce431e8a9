"""Rules `BaseStore` applies for every adapter, checked on the reference store with the engine
part instrumented (what the contract suite cannot provoke on purpose: races, round trips)."""

from __future__ import annotations

import pytest

from shadowswap.errors import DimensionMismatch, IncompatibleStore
from shadowswap.similarity import Metric
from shadowswap.stores.base import check_store_record
from shadowswap.stores.memory import MemoryStore
from shadowswap.values import Document


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

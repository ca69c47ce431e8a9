"""Issue 15, findings 1 and 2: a shadow read judged under concurrent writes and against a
leaking target, on real stores (FAISS primary, LanceDB target) through the real writer and
router.

1. A client that searches and then upserts the same vector: the target's answer holds a
   document the primary's could not. It is *late*, left out, and the comparison agrees.
2. A target that answers with another tenant's documents, whatever their scores: each is
   looked up in the primary for the tenant, absent, so *foreign*.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from shadowswap.clock import SystemClock
from shadowswap.dualwrite import Breaker, SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.metrics import Metrics
from shadowswap.read.router import Router
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.shadow.executor import ExecutorSizes
from shadowswap.shadow.judge import judge, same_moment
from shadowswap.shadow.observations import MemoryObservations, Observation
from shadowswap.shadow.recent import RecentWrites
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.lancedb import LanceDBStore
from shadowswap.testing import clustered_corpus
from shadowswap.testing.faults import FaultyStore
from shadowswap.values import Document, Filter, Hit, SearchResult, VectorLike

DIM = 16
TENANTS = ("acme", "globex")


class Stores:
    def __init__(self, root: Path) -> None:
        self.primary = FaissStore(root / "faiss", Metric.COSINE)
        self.target = LanceDBStore(str(root / "lance"), Metric.COSINE)
        self.queries: dict[str, np.ndarray] = {}
        for i, tenant in enumerate(TENANTS):
            corpus = clustered_corpus(tenant, 200, DIM, queries=20, clusters=6, seed=7 + i)
            self.primary.upsert(tenant, corpus.documents)
            self.target.upsert(tenant, corpus.documents)
            self.queries[tenant] = corpus.queries

    def close(self) -> None:
        self.primary.close()
        self.target.close()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    s = Stores(tmp_path)
    yield s
    s.close()


class Live:
    """Router and writer wired as the gateway wires them (one `RecentWrites`)."""

    def __init__(self, stores: Stores, target: VectorStore, tmp: Path) -> None:
        settings = StaticSettings(
            load_settings(
                environ={
                    "RETRIEVAL_BACKEND": "faiss",
                    "RETRIEVAL_TARGET_BACKEND": "lancedb",
                    "FF_RETRIEVAL_SHADOW_READ": "ON",
                    "FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "1.0",
                    "FF_RETRIEVAL_DUAL_WRITE": "ON",
                    "RETRIEVAL_SHADOW_TIMEOUT_MS": "10000",
                }
            )
        )
        clock = SystemClock()
        metrics = Metrics.null()
        self.outbox = SqliteOutbox(tmp / "outbox.sqlite3")
        self.writer = DualWriter(
            stores.primary, stores.target, settings, self.outbox,
            Breaker(clock, metrics.breaker_state), metrics, clock,
        )  # fmt: skip
        self.observed = MemoryObservations()
        self.router = Router(
            primary=stores.primary, target=target, settings=settings, metrics=metrics,
            clock=clock, rng=random.Random(0), shadow=ExecutorSizes(nice=0),
            observations=self.observed, recent=self.writer.recent,
        )  # fmt: skip

    def close(self) -> None:
        self.router.close()
        self.writer.close()
        self.outbox.close()

    def one(self) -> Observation:
        assert self.router.executor.wait_idle(30)
        (obs,) = self.observed.items
        return obs


class WriteBeforeSearch(FaultyStore):
    """The target store, but a write of the caller lands just before its shadow search (the
    client searched, got its answer, and upserted): the deterministic form of the race."""

    def __init__(self, inner: VectorStore, write: Callable[[], None]) -> None:
        super().__init__(inner, ["search"])
        self.write = write

    def search(
        self, tenant: str, vector: VectorLike, k: int, filter: Filter | None = None
    ) -> SearchResult:
        self.write()
        return self.inner.search(tenant, vector, k, filter)


def test_a_document_written_after_the_primary_answered_is_late_not_foreign(
    stores: Stores, tmp_path: Path
) -> None:
    query = stores.queries["acme"][0]
    live: Live

    def upsert_the_query() -> None:
        live.writer.upsert("acme", [Document("acme", "new-doc", query)])
        assert live.writer.flush(10)

    live = Live(stores, WriteBeforeSearch(stores.target, upsert_the_query), tmp_path)
    try:
        served = live.router.search("acme", query, 10)
        obs = live.one()
    finally:
        live.close()
    assert "new-doc" not in [h.doc_id for h in served.hits]
    assert obs.shadow_ids[0] == "new-doc"  # the target did see it, at the top
    assert obs.looked_up and obs.late == ("new-doc",) and "new-doc" in obs.left_out
    assert obs.foreign == () and obs.stale == ()
    assert obs.agreement_at_5 == 1.0 and obs.ndcg_at_10 == 1.0 and obs.mismatch is False


def test_a_document_deleted_after_the_primary_answered_is_left_out_of_both(
    stores: Stores, tmp_path: Path
) -> None:
    query = stores.queries["acme"][1]
    top = stores.primary.search("acme", query, 10).hits[0].doc_id
    live: Live

    def delete_the_top() -> None:
        live.writer.delete("acme", [top])
        assert live.writer.flush(10)

    live = Live(stores, WriteBeforeSearch(stores.target, delete_the_top), tmp_path)
    try:
        live.router.search("acme", query, 10)
        obs = live.one()
    finally:
        live.close()
    assert obs.primary_ids[0] == top and top not in obs.shadow_ids
    assert top in obs.left_out and obs.foreign == ()
    assert obs.agreement_at_5 == 1.0 and obs.ndcg_at_10 == 1.0


def test_another_tenants_document_is_foreign_whatever_its_score(
    stores: Stores, tmp_path: Path
) -> None:
    """The leaked documents score far below the tenant's own (another cluster set): the
    score heuristic saw an approximate miss; the lookup sees a document the tenant lacks."""
    query = stores.queries["acme"][2]
    own = stores.target.search("acme", query, 10).hits
    leaked = stores.target.search("globex", query, 3).hits

    class LowLeak(FaultyStore):
        def search(
            self, tenant: str, vector: VectorLike, k: int, filter: Filter | None = None
        ) -> SearchResult:
            low = min(h.score for h in own) - 0.5
            hits = (*own[: k - 1], Hit(leaked[0].doc_id, low, {}))
            return SearchResult("lancedb", hits)

    live = Live(stores, LowLeak(stores.target, ["search"]), tmp_path)
    try:
        live.router.search("acme", query, 10)
        obs = live.one()
    finally:
        live.close()
    assert obs.foreign == (leaked[0].doc_id,)
    assert obs.stale == () and obs.late == ()


def test_a_stale_version_and_a_ranking_difference(stores: Stores) -> None:
    query = stores.queries["acme"][4]
    primary = stores.primary.search("acme", query, 5).hits
    sixth, seventh = stores.primary.search("acme", query, 7).hits[5:7]
    # the target holds an old version of the 7th document (another vector)
    old = stores.target.get("acme", [seventh.doc_id])[seventh.doc_id]
    stores.target.upsert("acme", [old.with_vector(old.vector[::-1].copy())])
    shadow = (*primary[:3], sixth, seventh)
    j = judge(
        "acme", primary, shadow, primary_store=stores.primary, shadow_store=stores.target,
        recent=RecentWrites(), since=0,
    )  # fmt: skip
    assert j.looked_up and j.ranking == (sixth.doc_id,) and j.stale == (seventh.doc_id,)
    assert j.foreign == () and j.late == () and j.unchecked == ()
    assert j.primary == tuple(primary) and j.shadow == shadow  # nothing left out: as returned


def test_a_lookup_that_fails_judges_nothing(stores: Stores) -> None:
    from shadowswap.testing.faults import FailingStore

    primary = stores.primary.search("acme", stores.queries["acme"][5], 3).hits
    shadow = (*primary[:2], Hit("globex-doc-000001", 0.1, {}))
    j = judge(
        "acme", primary, shadow, primary_store=FailingStore(stores.primary),
        shadow_store=stores.target, recent=None, since=0,
    )  # fmt: skip
    assert j.unchecked == ("globex-doc-000001",) and j.foreign == ()


def test_same_moment_cuts_both_lists_to_one_length() -> None:
    p = tuple(Hit(d, 1.0 - i / 10, {}) for i, d in enumerate("abcde"))
    s = tuple(Hit(d, 1.0 - i / 10, {}) for i, d in enumerate("xabcd"))
    left_p, left_s = same_moment(p, s, {"x"})
    assert [h.doc_id for h in left_p] == list("abcd") == [h.doc_id for h in left_s]
    assert same_moment(p, s, set()) == (p, s)


def test_recent_writes_pending_until_settled_and_bounded() -> None:
    recent = RecentWrites(max_docs=2)
    start = recent.now()
    recent.begin("acme", ["a"])
    later = recent.now()
    assert recent.changed_since("acme", ["a", "b"], later) == {"a"}  # still pending
    recent.settle("acme", ["a"])
    after = recent.now()
    assert recent.changed_since("acme", ["a"], after) == set()
    assert recent.changed_since("acme", ["a"], start) == {"a"}
    assert recent.changed_since("globex", ["a"], start) == set()  # another tenant's "a"
    for doc in ("b", "c", "d"):
        recent.begin("acme", [doc])
        recent.settle("acme", [doc])
    # "a" was forgotten: a read older than the forgetting treats everything as changed
    assert recent.changed_since("acme", ["zz"], start) == {"zz"}
    assert recent.pending() == 0


def test_a_change_left_to_the_outbox_lags_until_the_outbox_is_empty() -> None:
    """A delete the breaker kept from the target: the target still holds the document; it
    must not count as foreign while the change waits in the outbox."""
    recent = RecentWrites()
    recent.begin("acme", ["gone"])
    recent.lag("acme", ["gone"])
    recent.settle("acme", ["gone"])
    later = recent.now()
    assert recent.changed_since("acme", ["gone"], later) == {"gone"}
    assert recent.pending() == 1
    recent.caught_up()
    assert recent.changed_since("acme", ["gone"], later) == {"gone"}  # bumped after `later`
    assert recent.changed_since("acme", ["gone"], recent.now()) == set()
    assert recent.pending() == 0


def test_writes_refused_by_an_open_breaker_lag_in_the_writer(
    stores: Stores, tmp_path: Path
) -> None:
    live = Live(stores, stores.target, tmp_path)
    try:
        from shadowswap.dualwrite.breaker import BreakerConfig

        config = BreakerConfig(1, 3600)
        ticket = live.writer.breaker.attempt(config)
        assert ticket is not None
        live.writer.breaker.record(ticket, ok=False, config=config)  # open for an hour
        live.writer.delete("acme", ["acme-doc-000001"])
        start = live.writer.recent.now()
        assert live.writer.recent.changed_since("acme", ["acme-doc-000001"], start) == {
            "acme-doc-000001"
        }
        assert live.writer.outbox_stats().size == 1  # waits for replay-outbox
    finally:
        live.close()

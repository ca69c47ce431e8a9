"""What each real engine of issue 8 must keep beyond the shared contract: the exact float32
bytes it was given, its identity across a restart, filters on values engines mangle, ids that
break naive escaping, and clear errors when the engine is missing, locked or unreachable."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pytest

from shadowswap.errors import (
    ConfigError,
    DimensionMismatch,
    IncompatibleStore,
    InvalidInput,
    MissingDependency,
    StoreUnavailable,
)
from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore
from shadowswap.stores.lancedb import LanceDBStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.stores.milvus import MilvusStore
from shadowswap.stores.pgvector import PgvectorStore
from shadowswap.stores.qdrant import QdrantStore
from shadowswap.testing import clustered_corpus
from shadowswap.values import Document
from tests.helpers import ROOT, run
from tests.servers import free_port, fresh_database

KINDS = ["lancedb", "pgvector", "qdrant-local", "qdrant-edge", "milvus"]
EMBEDDED = ["lancedb", "qdrant-local", "qdrant-edge", "milvus"]
#: child processes that import this module (tests.*) as well as shadowswap
WITH_TESTS = {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
T = "acme"

Opener = Callable[..., BaseStore]


@pytest.fixture
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """``open(kind, metric, place="a")``: the same ``place`` reopens the same store."""
    opened: list[BaseStore] = []
    databases: dict[str, str] = {}

    def open_(kind: str, metric: Metric = Metric.COSINE, place: str = "a") -> BaseStore:
        where = tmp_path / f"{kind}-{place}"
        store: BaseStore
        if kind == "lancedb":
            store = LanceDBStore(str(where), metric)
        elif kind == "pgvector":
            if place not in databases:
                databases[place] = fresh_database(request.getfixturevalue("postgres_dsn"))
            store = PgvectorStore(databases[place], metric)
        elif kind == "qdrant-local":
            store = QdrantStore(f"local:{where}", metric)
        elif kind == "qdrant-edge":
            store = QdrantStore(str(where), metric)
        elif kind == "milvus":
            store = MilvusStore(f"{where}.db", metric)
        else:
            raise ValueError(kind)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _awkward_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """Full-precision float32 values: tiny, huge, subnormal, negative, every mantissa bit."""
    rng = np.random.default_rng(seed)
    out = (rng.standard_normal((n, dim)) * np.exp(rng.uniform(-20, 20, (n, 1)))).astype(np.float32)
    out[0, :4] = [np.float32(1e-40), np.float32(3.4e38), np.float32(-1.17549435e-38), 1.0]
    return out


@pytest.mark.parametrize("metric", [Metric.COSINE, Metric.DOT, Metric.L2])
@pytest.mark.parametrize("kind", KINDS)
def test_stores_return_the_exact_float32_bytes(opener: Opener, kind: str, metric: Metric) -> None:
    vectors = _awkward_vectors(40, 384, seed=7)
    if metric is not Metric.COSINE:
        vectors[0, :4] = [1e-30, 1e30, -1e-20, 1.0]  # squared norms stay finite
    docs = [Document(T, f"d{i}", v, {"i": i}) for i, v in enumerate(vectors)]
    store = opener(kind, metric)
    reference = MemoryStore(metric=metric)
    store.upsert(T, docs)
    reference.upsert(T, docs)
    got = store.get(T, [d.doc_id for d in docs])
    want = reference.get(T, [d.doc_id for d in docs])
    for doc_id, doc in want.items():
        assert got[doc_id].vector.tobytes() == doc.vector.tobytes(), doc_id
        assert got[doc_id].content_hash == doc.content_hash
    scanned = {d.doc_id: d.content_hash for page in store.scan(T) for d in page}
    assert scanned == {d: doc.content_hash for d, doc in want.items()}
    assert store.upsert(T, docs).unchanged == len(docs)  # the hashes agree: nothing rewritten


TRICKY_IDS = [
    "back\\slash",
    "\\",
    "end\\",
    'dq"inside',
    "sq'inside",
    "both'\"\\'",
    "percent%s%d",
    "brace{0}{t}",
    "[bracket]",
    "a/b/c",
    "acme/other",
    "tab\u00a0nbsp",
    "\u202eright-to-left",
    "\U0001f600" * 100,
]


@pytest.mark.parametrize("kind", KINDS)
def test_ids_that_break_naive_escaping(opener: Opener, kind: str) -> None:
    store = opener(kind)
    docs = [Document(T, d, [float(i + 1), 1.0, 0.5], {"n": i}) for i, d in enumerate(TRICKY_IDS)]
    store.upsert(T, docs)
    assert sorted(store.get(T, TRICKY_IDS)) == sorted(TRICKY_IDS)
    assert [d.doc_id for p in store.scan(T, batch_size=5) for d in p] == sorted(TRICKY_IDS)
    after = sorted(TRICKY_IDS)[3]
    assert [d.doc_id for p in store.scan(T, after=after) for d in p] == sorted(TRICKY_IDS)[4:]
    assert store.upsert(T, docs).unchanged == len(docs)
    assert store.delete(T, ["back\\slash", 'dq"inside', "missing\\"]) == 2
    assert store.count(T) == len(TRICKY_IDS) - 2
    assert store.count("acme-other") == 0  # "acme/other" is a doc id, not a tenant


MANGLED = [
    {"big": 2**62 + 1},
    {"big": float(2**62)},
    {"f": 0.1},
    {"f": 1e300},
    {"neg": -0.0},
    {"s": "x" * 300},
    {"s": "quote'\"\\ and ünïcode"},
    {"flag": True},
    {"flag": 1},
    {"n": 7, "flag": False},
]


@pytest.mark.parametrize("kind", KINDS)
def test_filters_on_values_engines_mangle(opener: Opener, kind: str) -> None:
    metas: list[dict[str, object]] = [
        {"big": 2**62 + 1, "f": 0.1, "s": "x" * 300, "flag": True, "n": 7},
        {"big": 2**62, "f": 1e300, "s": "quote'\"\\ and ünïcode", "flag": 1, "n": 7.0},
        {"big": float(2**62), "f": 0.1000000001, "neg": 0, "flag": False, "n": 7},
        {"neg": -0.0, "s": "x" * 299, "flag": 0},
    ]
    docs = [
        Document(T, f"m{i}", [1.0, float(i), 0.5], meta)  # type: ignore[arg-type]
        for i, meta in enumerate(metas)
    ]
    store, reference = opener(kind), MemoryStore()
    store.upsert(T, docs)
    reference.upsert(T, docs)
    for flt in MANGLED:
        got = store.search(T, [1.0, 1.0, 1.0], 10, flt)  # type: ignore[arg-type]
        want = reference.search(T, [1.0, 1.0, 1.0], 10, flt)  # type: ignore[arg-type]
        assert got.doc_ids == want.doc_ids, flt
    for doc_id, doc in store.get(T, [d.doc_id for d in docs]).items():
        original = next(d for d in docs if d.doc_id == doc_id)
        assert dict(doc.metadata) == dict(original.metadata)
        for key, value in original.metadata.items():
            assert type(doc.metadata[key]) is type(value), (doc_id, key)
        assert math.copysign(1, float(doc.metadata.get("neg", 1))) == math.copysign(
            1, float(original.metadata.get("neg", 1))
        )


@pytest.mark.parametrize("kind", KINDS)
def test_filtered_search_returns_k_even_when_matches_are_rare(opener: Opener, kind: str) -> None:
    """The trap of approximate engines: filter after ranking, return fewer than k."""
    corpus = clustered_corpus(T, 600, 16, queries=3, seed=8)
    rare = [
        Document(T, f"rare-{i}", corpus.queries[0] * -1 + i * 0.01, {"rare": True})
        for i in range(12)
    ]
    store = opener(kind)
    store.upsert(T, [*corpus.documents, *rare])
    hits = store.search(T, corpus.queries[0], 10, {"rare": True}).hits
    assert len(hits) == 10 and all(h.doc_id.startswith("rare-") for h in hits)


@pytest.mark.parametrize("kind", [*EMBEDDED, "pgvector"])
def test_restart_gives_identical_results(opener: Opener, kind: str) -> None:
    corpus = clustered_corpus("t1", 700, 32, queries=8, seed=4)
    store = opener(kind)
    store.upsert("t1", corpus.documents)
    store.delete("t1", [d.doc_id for d in corpus.documents[:50]])
    before = [
        store.search("t1", q, 10, {"lang": "en"} if i % 2 else None)
        for i, q in enumerate(corpus.queries)
    ]
    hashes = {d.doc_id: d.content_hash for p in store.scan("t1") for d in p}
    store.close()

    again = opener(kind)
    assert again.dimension == 32 and again.count("t1") == 650 and again.tenants() == ["t1"]
    after = [
        again.search("t1", q, 10, {"lang": "en"} if i % 2 else None)
        for i, q in enumerate(corpus.queries)
    ]
    assert [r.doc_ids for r in after] == [r.doc_ids for r in before]
    for x, y in zip(after, before, strict=True):
        assert [h.score for h in x.hits] == pytest.approx([h.score for h in y.hits], abs=1e-6)
    assert {d.doc_id: d.content_hash for p in again.scan("t1") for d in p} == hashes
    with pytest.raises(DimensionMismatch):
        again.upsert("t2", [Document("t2", "x", [1.0, 2.0])])


@pytest.mark.parametrize("kind", [*EMBEDDED, "pgvector"])
def test_reopening_with_another_metric_is_refused(opener: Opener, kind: str) -> None:
    store = opener(kind, Metric.COSINE)
    store.upsert("t1", clustered_corpus("t1", 5, 4, queries=0).documents)
    store.close()
    with pytest.raises(IncompatibleStore, match=r"created with metric 'cosine'.*RETRIEVAL_METRIC"):
        opener(kind, Metric.DOT).count("t1")
    assert opener(kind, Metric.COSINE).count("t1") == 5  # the refusal released the store


def _forget_the_metric(kind: str, store: BaseStore) -> None:
    """Delete the metric row of a closed store's record, as a store made before its adapter
    recorded the metric would hold it."""
    if kind == "lancedb":
        import lancedb

        lancedb.connect(store.location).open_table("shadowswap_meta").delete("key = 'metric'")
    else:
        with psycopg.connect(store.location, autocommit=True) as conn:
            conn.execute("DELETE FROM shadowswap_meta WHERE key = 'metric'")


@pytest.mark.parametrize("kind", ["lancedb", "pgvector"])
def test_a_store_without_a_metric_record_is_taken_as_configured_and_recorded(
    opener: Opener, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """These engines hold no metric of their own (the distance is chosen per query): a store
    with data but no metric record is accepted under RETRIEVAL_METRIC, with a warning, and
    that metric is recorded, so the next opener with another one is refused."""
    store = opener(kind, Metric.L2)
    store.upsert("t1", clustered_corpus("t1", 5, 4, queries=0).documents)
    store.close()
    _forget_the_metric(kind, store)
    assert opener(kind, Metric.L2).count("t1") == 5
    assert "no record of its metric" in caplog.text and "RETRIEVAL_METRIC=l2" in caplog.text
    with pytest.raises(IncompatibleStore, match=r"created with metric 'l2', not 'cosine'"):
        opener(kind, Metric.COSINE).count("t1")


@pytest.mark.parametrize("kind", ["lancedb", "pgvector"])
def test_a_second_handle_sees_writes_at_once(opener: Opener, kind: str) -> None:
    """LanceDB checks for new versions on every read; PostgreSQL commits each call."""
    corpus = clustered_corpus("t1", 100, 8, queries=1, seed=2)
    writer = opener(kind)
    writer.upsert("t1", corpus.documents[:50])
    reader = opener(kind)
    assert reader.count("t1") == 50
    writer.upsert("t1", corpus.documents[50:])
    writer.delete("t1", [corpus.documents[0].doc_id])
    assert len(reader.search("t1", corpus.queries[0], 500).hits) == 99


def test_lancedb_compacts_without_changing_results(
    opener: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shadowswap.stores.lancedb as module

    monkeypatch.setattr(module, "COMPACT_EVERY", 4)
    corpus = clustered_corpus(T, 200, 8, queries=3, seed=6)
    store, reference = opener("lancedb"), MemoryStore()
    for i in range(0, 200, 20):
        store.upsert(T, corpus.documents[i : i + 20])
        reference.upsert(T, corpus.documents[i : i + 20])
    store.delete(T, [corpus.documents[1].doc_id])
    reference.delete(T, [corpus.documents[1].doc_id])
    assert isinstance(store, LanceDBStore)
    stats = store._table(T, create=False).stats()
    assert stats["fragment_stats"]["num_fragments"] < 4  # 10 writes, compacted every 4
    for q in corpus.queries:
        assert store.search(T, q, 20).doc_ids == reference.search(T, q, 20).doc_ids


def test_pgvector_keeps_nul_characters_and_needs_utf8(opener: Opener, postgres_dsn: str) -> None:
    store = opener("pgvector")
    doc = Document(T, "nul", [1.0, 0.0], {"s": "a\0b"}, text="before\0after")
    store.upsert(T, [doc])
    got = store.get(T, ["nul"])["nul"]
    assert got.text == "before\0after" and got.metadata["s"] == "a\0b"
    assert got.content_hash == doc.content_hash

    latin = fresh_database(postgres_dsn, prefix="latin")
    name = urlsplit(latin).path.lstrip("/")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}"')
        conn.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' "
            "LC_CTYPE 'C' TEMPLATE template0"
        )
    with pytest.raises(IncompatibleStore, match="UTF8"):
        PgvectorStore(latin).count(T)


def test_unreachable_pgvector_is_reported_without_the_password() -> None:
    dsn = f"postgresql://app:s3cret@127.0.0.1:{free_port()}/db?connect_timeout=2"
    store = PgvectorStore(dsn)
    health = store.health()
    assert not health.reachable and "cannot reach" in health.detail
    assert "s3cret" not in health.detail
    with pytest.raises(StoreUnavailable) as err:
        store.count(T)
    assert "s3cret" not in str(err.value)


def test_unreachable_qdrant_server_is_reported() -> None:
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        QdrantStore(f"http://127.0.0.1:{free_port()}?collection=docs", timeout_s=2)
    with pytest.raises(StoreUnavailable, match="cannot reach") as err:
        QdrantStore(f"https://127.0.0.1:{free_port()}?api_key=k3y", timeout_s=2)
    assert "k3y" not in str(err.value)


def test_unreachable_milvus_server_is_reported() -> None:
    with pytest.raises(StoreUnavailable) as err:
        MilvusStore(f"http://127.0.0.1:{free_port()}?token=root:s3cret", timeout_s=2)
    assert "s3cret" not in str(err.value)


def test_qdrant_edge_directory_serves_one_process(opener: Opener) -> None:
    store = opener("qdrant-edge")
    store.upsert(T, [Document(T, "a", [1.0, 0.0])])
    with pytest.raises(StoreUnavailable, match="open in another process"):
        opener("qdrant-edge")


def test_milvus_refuses_fields_beyond_its_varchar_limit(opener: Opener) -> None:
    store = opener("milvus")
    ok = Document(T, "ok", [1.0, 0.0], text="é" * 30_000)
    too_long = Document(T, "long", [0.0, 1.0], text="é" * 40_000)
    with pytest.raises(InvalidInput, match=r"documents\[1\]\.text.*65535 bytes"):
        store.upsert(T, [ok, too_long])
    assert store.count(T) == 0
    store.upsert(T, [ok])
    assert store.get(T, ["ok"])["ok"].text == "é" * 30_000


_CRASH = """
import os, sys
from shadowswap.testing import clustered_corpus
from tests.stores.test_real_engines import open_embedded
store = open_embedded(sys.argv[1], sys.argv[2])
corpus = clustered_corpus("t1", 300, 16, queries=0)
store.upsert("t1", corpus.documents[:200])
store.upsert("t1", corpus.documents[200:])
store.delete("t1", [corpus.documents[0].doc_id])
print("acknowledged", flush=True)
os.kill(os.getpid(), 9)
"""


def open_embedded(kind: str, where: str) -> BaseStore:
    """An embedded store of ``kind`` at ``where`` (used by the crash test's child process)."""
    if kind == "lancedb":
        return LanceDBStore(where)
    if kind == "qdrant-local":
        return QdrantStore(f"local:{where}")
    if kind == "qdrant-edge":
        return QdrantStore(where)
    return MilvusStore(f"{where}.db")


@pytest.mark.parametrize("kind", EMBEDDED)
def test_acknowledged_writes_survive_a_kill(tmp_path: Path, kind: str) -> None:
    """The writing process is SIGKILLed right after its calls return; nothing is lost."""
    where = str(tmp_path / kind)
    out = run([sys.executable, "-c", _CRASH, kind, where], ROOT, WITH_TESTS)
    assert "acknowledged" in out.stdout, out.stderr
    assert out.returncode == -signal.SIGKILL
    store = open_embedded(kind, where)
    try:
        corpus = clustered_corpus("t1", 300, 16, queries=0)
        assert store.count("t1") == 299
        held = {d.doc_id: d.content_hash for p in store.scan("t1") for d in p}
        reference = MemoryStore()
        reference.upsert("t1", corpus.documents[1:])
        assert held == {d.doc_id: d.content_hash for p in reference.scan("t1") for d in p}
    finally:
        store.close()


def test_pgvector_reconnects_after_losing_its_connection(opener: Opener) -> None:
    store = opener("pgvector")
    assert isinstance(store, PgvectorStore)
    store.upsert(T, [Document(T, "a", [1.0, 0.0])])
    pid = store._exec("SELECT pg_backend_pid()")[0][0]  # the pool holds one connection
    with psycopg.connect(store.location, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreUnavailable):
        store.count(T)
    assert store.count(T) == 1  # the next call opens a new connection


@pytest.mark.parametrize(
    ("make", "variable"),
    [
        (lambda: PgvectorStore("./data/pgvector"), "RETRIEVAL_PGVECTOR_URL"),
        (lambda: QdrantStore("qdrant://host:6333"), "RETRIEVAL_QDRANT_URL"),
        (lambda: MilvusStore("milvus://host:19530"), "RETRIEVAL_MILVUS_URL"),
    ],
)
def test_a_location_of_the_wrong_form_is_a_config_error(
    make: Callable[[], BaseStore], variable: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        make()


@pytest.mark.parametrize("kind", ["lancedb", "pgvector", "qdrant", "milvus"])
def test_connection_script_checks_each_kind(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """Runbook 003's script, as a real process, on a store holding data."""
    location = {
        "lancedb": str(tmp_path / "lancedb"),
        "pgvector": fresh_database(request.getfixturevalue("postgres_dsn"))
        if kind == "pgvector"
        else "",
        "qdrant": str(tmp_path / "qdrant"),
        "milvus": str(tmp_path / "milvus.db"),
    }[kind]
    store = {
        "lancedb": lambda: LanceDBStore(location),
        "pgvector": lambda: PgvectorStore(location),
        "qdrant": lambda: QdrantStore(location),
        "milvus": lambda: MilvusStore(location),
    }[kind]()
    store.upsert("t1", clustered_corpus("t1", 25, 8, queries=0).documents)
    store.close()  # embedded engines serve one process at a time
    out = run(
        [sys.executable, str(ROOT / "scripts" / "test_vector_store_connection.py"), kind, "--json"],
        tmp_path,
        {f"RETRIEVAL_{kind.upper()}_URL": location},
    )
    assert out.returncode == 0, out.stderr
    (backend,) = json.loads(out.stdout)["backends"]
    assert (backend["kind"], backend["reachable"], backend["documents"]) == (kind, True, 25)
    assert backend["tenants"] == 1 and backend["dimension"] == 8


def test_milvus_lite_file_is_released_on_close_and_refused_while_held(tmp_path: Path) -> None:
    """Milvus Lite locks its file per process; close must unlock it for the next process."""
    where = str(tmp_path / "m.db")
    probe = (
        "import sys\n"
        "from shadowswap.errors import StoreUnavailable\n"
        "from shadowswap.stores.milvus import MilvusStore\n"
        "try:\n"
        "    store = MilvusStore(sys.argv[1])\n"
        "except StoreUnavailable as exc:\n"
        "    print('refused:', exc)\n"
        "else:\n"
        "    print('opened', store.count('t1'))\n"
        "    store.close()\n"
    )

    def other_process() -> str:
        out = run(
            [sys.executable, "-c", probe, where],
            tmp_path,
            WITH_TESTS,
        )
        return out.stdout

    first, second = MilvusStore(where), MilvusStore(where)  # one process: shared engine
    first.upsert("t1", [Document("t1", "a", [1.0, 0.0])])
    first.close()
    assert second.count("t1") == 1  # still served: another store of this process uses it
    assert "refused:" in other_process() and "one process at a time" in other_process()
    second.close()
    assert other_process().strip() == "opened 1"


def test_milvus_lite_file_names_it_cannot_take_are_config_errors(tmp_path: Path) -> None:
    for name in ("with space.db", "x" * 37 + ".db"):
        with pytest.raises(ConfigError, match=r"RETRIEVAL_MILVUS_URL.*1 to 36 characters"):
            MilvusStore(str(tmp_path / name))


@pytest.mark.parametrize("kind", KINDS)
def test_searches_from_many_threads_agree_with_the_reference(opener: Opener, kind: str) -> None:
    """The service searches from a thread pool; pgvector spreads them over its connections."""
    corpus = clustered_corpus(T, 400, 16, queries=24, seed=12)
    store, reference = opener(kind), MemoryStore()
    store.upsert(T, corpus.documents)
    reference.upsert(T, corpus.documents)
    want = [reference.search(T, q, 10).doc_ids for q in corpus.queries]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda q: store.search(T, q, 10).doc_ids, corpus.queries))
    assert got == want
    store.close()
    with pytest.raises(StoreUnavailable):
        store.search(T, corpus.queries[0], 10)


def test_a_missing_embedded_engine_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shadowswap.stores.milvus as milvus_module

    monkeypatch.setattr(milvus_module, "HAS_LITE", False)
    with pytest.raises(MissingDependency, match=r"milvus_lite.*shadowswap\[milvus\]"):
        MilvusStore(str(tmp_path / "m.db"))
    monkeypatch.setitem(sys.modules, "qdrant_edge", None)
    with pytest.raises(MissingDependency, match=r"qdrant_edge.*shadowswap\[qdrant\]"):
        QdrantStore(str(tmp_path / "q"))


def test_qdrant_edge_optimizes_without_changing_results(
    opener: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shadowswap.stores.qdrant_engines as engines

    monkeypatch.setattr(engines, "OPTIMIZE_EVERY", 3)
    calls: list[bool] = []
    corpus = clustered_corpus(T, 200, 8, queries=3, seed=6)
    store, reference = opener("qdrant-edge"), MemoryStore()
    assert isinstance(store, QdrantStore) and isinstance(store.engine, engines.EdgeEngine)
    engine = store.engine
    store.upsert(T, corpus.documents[:20])  # creates the shard
    reference.upsert(T, corpus.documents[:20])
    real = engine.shard.optimize
    monkeypatch.setattr(engine, "shard", _Spy(engine.shard, lambda: calls.append(real())))
    for i in range(20, 200, 20):
        store.upsert(T, corpus.documents[i : i + 20])
        reference.upsert(T, corpus.documents[i : i + 20])
    store.delete(T, [d.doc_id for d in corpus.documents[:30]])
    reference.delete(T, [d.doc_id for d in corpus.documents[:30]])
    assert len(calls) >= 3
    for q in corpus.queries:
        assert store.search(T, q, 20).doc_ids == reference.search(T, q, 20).doc_ids
    assert store.count(T) == 170


class _Spy:
    """Wraps a shard, replacing its ``optimize`` with a recording one."""

    def __init__(self, inner: object, optimize: Callable[[], object]) -> None:
        self._inner = inner
        self.optimize = optimize

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

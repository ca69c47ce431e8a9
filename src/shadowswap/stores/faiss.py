"""FAISS store: exact search with FAISS, durable in a SQLite catalog on local disk.

Layout of ``RETRIEVAL_FAISS_URL`` (a directory, created when missing)::

    catalog.sqlite3     every document (vector as float32 bytes, metadata, text, content
                        hash), the store's metric and dimension; WAL mode, synchronous=FULL

Why a catalog and not only ``faiss.write_index`` files: FAISS indexes are in-memory
structures, and writing an index file after every upsert costs O(size of the tenant). The
catalog commits each write in one transaction, so a write acknowledged to the caller
survives the process being killed at any instant; the FAISS indexes are rebuilt from it,
lazily, the first time a tenant is searched (about a second per million 384-d vectors).

Semantics
    tenants     one ``IndexIDMap2`` per tenant: a search only ever sees its tenant's index.
    ids         an integer id per (tenant, doc_id), kept when a document is replaced.
    metric      ``IndexFlatIP`` for cosine (on unit vectors) and dot, ``IndexFlatL2`` for l2;
                exact search, so results equal the reference store's. The indexes are rebuilt
                from the catalog with the recorded metric, so the record is the metric: a
                catalog recorded with another metric is refused.
    filters     candidates from an inverted index of metadata values, passed to FAISS as an
                ``IDSelectorBatch``: filtered search is exact too.
    delete      supported (flat indexes remove ids; HNSW would not, so it is not offered).
    digests     ``(doc_id, hash)`` pages straight from the catalog's ``(tenant, doc_id)`` index,
                without reading vectors: the hash was computed by shadowswap from the canonical
                document and written in the same statement as the content it covers.
    consistency a write is visible to searches in this process when ``upsert`` returns; other
                processes see it at their next search (``PRAGMA data_version`` is checked).
    threads     one lock per store: safe from any thread, searches do not run in parallel;
                each search runs on the calling thread alone (no OpenMP team). Writers take
                turns by tenant (`shadowswap.fairness.FairSlots` with one slot: round robin
                between tenants, FIFO within one), one transaction of at most ``WRITE_CHUNK``
                (100) documents or ids per turn. Why: SQLite has one writer at a time, and
                with one transaction per call a tenant writing 1,000 documents from four
                threads made another tenant's single write wait for all of them (p99 3 ms ->
                600 ms, issue 16). Now it waits for one chunk at most. The cost: a write of
                more than 100 documents is several transactions (a commit, an fsync each; a
                few percent of a bulk upsert, benchmarks/bench_stores.py), so it is atomic per
                chunk, not per call: a crash in the middle keeps a prefix of a write that was
                never acknowledged, and readers may see a prefix while it runs. Retrying the
                write is idempotent (upserts by id, deletes of ids).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from shadowswap.errors import (
    CorruptStore,
    StoreError,
    StoreUnavailable,
)
from shadowswap.fairness import FairSlots, FifoRLock
from shadowswap.fileio import create_private_file, make_private_dirs
from shadowswap.similarity import Metric, score_from_distance
from shadowswap.stores.base import BaseStore, check_store_record, note_unrecorded_metric
from shadowswap.values import Document, Filter, Hit, MetaValue, Vector

# faiss ships stubs that disagree with its SWIG API (remove_ids, SearchParameters(sel=)).
faiss: Any = _faiss
FORMAT = "1"
_CHUNK = 500  # bound parameters per SQL statement
#: documents (or ids) per catalog transaction: a write larger than this commits in several,
#: and other tenants' writes take their turn in between (module docstring, "threads")
WRITE_CHUNK = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    iid INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    metadata TEXT NOT NULL,
    text TEXT,
    UNIQUE (tenant, doc_id)
);
CREATE TABLE IF NOT EXISTS tenants (tenant TEXT PRIMARY KEY, generation INTEGER NOT NULL);
"""


def _value_key(value: MetaValue) -> tuple[str, Any]:
    """Key of a metadata value in the inverted index, following the filter rule.

    Numbers are keyed by themselves, not by ``float(value)``: Python's ``1 == 1.0`` (same
    hash) already gives the rule's numeric equality, and an integer near ±2**63 stays exact
    (as a float, 2**63 - 1 and 2**63 - 2 are one key, so a filter matched both)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, str):
        return ("s", value)
    return ("n", value)


class _TenantIndex:
    """The in-memory FAISS index of one tenant, with what search needs to build hits."""

    def __init__(self, dimension: int, metric: Metric, generation: int) -> None:
        flat = faiss.IndexFlatL2(dimension) if metric is Metric.L2 else faiss.IndexFlatIP(dimension)
        self.index = faiss.IndexIDMap2(flat)
        self.generation = generation
        self.docs: dict[int, tuple[str, dict[str, MetaValue]]] = {}
        self.inverted: dict[tuple[str, tuple[str, Any]], set[int]] = {}

    def add(self, rows: Sequence[tuple[int, str, np.ndarray, dict[str, MetaValue]]]) -> None:
        if not rows:
            return
        iids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        self.index.add_with_ids(np.stack([r[2] for r in rows]), iids)
        for iid, doc_id, _vec, meta in rows:
            self.docs[iid] = (doc_id, meta)
            for key, value in meta.items():
                self.inverted.setdefault((key, _value_key(value)), set()).add(iid)

    def remove(self, iids: Iterable[int]) -> None:
        present = [i for i in iids if i in self.docs]
        if not present:
            return
        self.index.remove_ids(np.asarray(present, dtype=np.int64))
        for iid in present:
            _doc_id, meta = self.docs.pop(iid)
            for key, value in meta.items():
                bucket = self.inverted.get((key, _value_key(value)))
                if bucket is not None:
                    bucket.discard(iid)
                    if not bucket:
                        del self.inverted[(key, _value_key(value))]

    def candidates(self, flt: Filter) -> set[int]:
        result: set[int] | None = None
        for key, value in flt.items():
            bucket = self.inverted.get((key, _value_key(value)), set())
            result = set(bucket) if result is None else result & bucket
            if not result:
                return set()
        return result or set()


class FaissStore(BaseStore):
    """FAISS, exact, persistent in a directory; see the module docstring."""

    kind = "faiss"

    def __init__(self, path: str | Path, metric: Metric = Metric.COSINE) -> None:
        self._dir = Path(path)
        super().__init__(str(self._dir), metric)
        self._lock = FifoRLock()  # reentrant, granted in arrival order (fairness.py)
        #: who commits next: writers take turns by tenant (module docstring, "threads")
        self._turns = FairSlots(total=1, per_tenant=1, max_waiting=sys.maxsize, wait_s=None)
        self._catalog = self._dir / "catalog.sqlite3"
        self._db = self._open()
        self._indexes: dict[str, _TenantIndex] = {}
        self._data_version = self._pragma_data_version()
        self._dim = self._read_meta_dimension()

    # -- opening ------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            make_private_dirs(self._dir)  # vectors, text, metadata: 0700 / 0600 (fileio)
            create_private_file(self._catalog)
        except OSError as exc:
            raise StoreUnavailable(self.kind, "open", f"cannot create {self._dir}: {exc}") from exc
        try:
            db = sqlite3.connect(self._catalog, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(_SCHEMA)
            self._check_identity(db)
        except sqlite3.DatabaseError as exc:
            raise CorruptStore(
                self.kind,
                "open",
                str(self._catalog),
                f"not a readable shadowswap FAISS catalog ({exc}); move the file away or point "
                "RETRIEVAL_FAISS_URL at another directory",
            ) from exc
        return db

    def _check_identity(self, db: sqlite3.Connection) -> None:
        rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if "metric" not in rows:  # a new catalog (or one whose metric was never recorded)
            if db.execute("SELECT 1 FROM docs LIMIT 1").fetchone() is not None:
                note_unrecorded_metric(self.kind, str(self._dir), self._metric)
            db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('format', ?), ('metric', ?)",
                (FORMAT, self._metric.value),
            )
            rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
        check_store_record(
            self.kind, rows, format=FORMAT, metric=self._metric, record=str(self._catalog),
            store=str(self._dir), elsewhere="use a new directory",
        )  # fmt: skip

    def _read_meta_dimension(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()
        return None if row is None else int(row[0])

    def _pragma_data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    # -- BaseStore ----------------------------------------------------------------------
    def _stored_dimension(self) -> int | None:
        if self._dim is None:
            with self._lock:
                self._dim = self._read_meta_dimension()
        return self._dim

    def _fix_dimension(self, dimension: int) -> int:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('dimension', ?)", (str(dimension),)
            )
            self._dim = self._read_meta_dimension()
            if self._dim is None:
                raise CorruptStore(self.kind, "upsert", self._location, "no dimension record")
            return self._dim

    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        # Taken in turns like the writes it comes before: a 1,000-id lookup of one tenant
        # would otherwise hold the catalog ahead of another tenant's single write.
        out: dict[str, str] = {}
        for start in range(0, len(doc_ids), WRITE_CHUNK):
            chunk = doc_ids[start : start + WRITE_CHUNK]
            marks = ",".join("?" * len(chunk))
            with self._turns.hold(tenant), self._lock:
                out.update(
                    self._db.execute(
                        f"SELECT doc_id, hash FROM docs WHERE tenant = ? AND doc_id IN ({marks})",
                        (tenant, *chunk),
                    ).fetchall()
                )
        return out

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        for start in range(0, len(documents), WRITE_CHUNK):
            with self._turns.hold(tenant):
                self._write_chunk(tenant, documents[start : start + WRITE_CHUNK])

    def _write_chunk(self, tenant: str, documents: Sequence[Document]) -> None:
        # Rows are built before the lock, and written with one executemany and one lookup of
        # the ids: each statement releases the GIL, and a lock holder that must win the GIL
        # back a hundred times behind CPU-bound threads held the catalog for 100+ ms.
        params = [
            (
                tenant,
                doc.doc_id,
                doc.content_hash,
                doc.vector.tobytes(),
                json.dumps(dict(doc.metadata), ensure_ascii=False),
                doc.text,
            )
            for doc in documents
        ]
        marks = ",".join("?" * len(documents))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO docs(tenant, doc_id, hash, vector, metadata, text) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(tenant, doc_id) DO UPDATE SET "
                    "hash = excluded.hash, vector = excluded.vector, "
                    "metadata = excluded.metadata, text = excluded.text",
                    params,
                )
                iids = dict(
                    self._db.execute(
                        f"SELECT doc_id, iid FROM docs WHERE tenant = ? AND doc_id IN ({marks})",
                        (tenant, *(doc.doc_id for doc in documents)),
                    ).fetchall()
                )
                generation = self._bump(tenant)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            rows = [
                (int(iids[doc.doc_id]), doc.doc_id, doc.vector, dict(doc.metadata))
                for doc in documents
            ]
            index = self._indexes.get(tenant)
            if index is not None:
                index.remove(r[0] for r in rows)
                index.add(rows)
                index.generation = generation

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        removed = 0
        for start in range(0, len(doc_ids), WRITE_CHUNK):
            with self._turns.hold(tenant):
                removed += self._delete_chunk(tenant, doc_ids[start : start + WRITE_CHUNK])
        return removed

    def _delete_chunk(self, tenant: str, doc_ids: Sequence[str]) -> int:
        with self._lock:
            removed: list[int] = []
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for chunk in _chunks(doc_ids):
                    marks = ",".join("?" * len(chunk))
                    removed += [
                        int(r[0])
                        for r in self._db.execute(
                            f"DELETE FROM docs WHERE tenant = ? AND doc_id IN ({marks}) "
                            "RETURNING iid",
                            (tenant, *chunk),
                        ).fetchall()
                    ]
                generation = self._bump(tenant) if removed else None
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            index = self._indexes.get(tenant)
            if index is not None and generation is not None:
                index.remove(removed)
                index.generation = generation
            return len(removed)

    def _bump(self, tenant: str) -> int:
        (generation,) = self._db.execute(
            "INSERT INTO tenants(tenant, generation) VALUES (?, 1) ON CONFLICT(tenant) "
            "DO UPDATE SET generation = generation + 1 RETURNING generation",
            (tenant,),
        ).fetchone()
        return int(generation)

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        # One query gains nothing from an OpenMP team, and a team started from a worker thread
        # spin-waits for cores other threads hold (p99 x10-20 under load). The setting is per
        # calling thread in OpenMP, so it is made here, on the thread that searches.
        faiss.omp_set_num_threads(1)
        with self._lock:
            index = self._tenant_index(tenant)
            if index is None or index.index.ntotal == 0:
                return []
            params = None
            if filter:
                cands = index.candidates(filter)
                if not cands:
                    return []
                selector = faiss.IDSelectorBatch(np.fromiter(cands, dtype=np.int64))
                params = faiss.SearchParameters(sel=selector)
            n = min(k, index.index.ntotal)
            distances, iids = index.index.search(vector.reshape(1, -1), n, params=params)
            convention = "sq_l2" if self._metric is Metric.L2 else "ip"
            hits = []
            for dist, iid in zip(distances[0], iids[0], strict=True):
                if iid < 0:
                    continue
                doc_id, meta = index.docs[int(iid)]
                hits.append(
                    Hit(doc_id, score_from_distance(float(dist), self._metric, convention), meta)
                )
            return hits

    def _tenant_index(self, tenant: str) -> _TenantIndex | None:
        """The tenant's index, (re)loaded from the catalog when missing or stale."""
        version = self._pragma_data_version()
        if version != self._data_version:  # another process committed: drop stale indexes
            self._data_version = version
            generations = dict(self._db.execute("SELECT tenant, generation FROM tenants"))
            for name, idx in list(self._indexes.items()):
                if generations.get(name) != idx.generation:
                    del self._indexes[name]
        index = self._indexes.get(tenant)
        if index is not None:
            return index
        dimension = self._stored_dimension()
        if dimension is None:
            return None
        row = self._db.execute(
            "SELECT generation FROM tenants WHERE tenant = ?", (tenant,)
        ).fetchone()
        index = _TenantIndex(dimension, self._metric, int(row[0]) if row else 0)
        cursor = self._db.execute(
            "SELECT iid, doc_id, vector, metadata FROM docs WHERE tenant = ?", (tenant,)
        )
        while batch := cursor.fetchmany(10_000):
            index.add(
                [
                    (int(iid), doc_id, np.frombuffer(vec, dtype=np.float32), json.loads(meta))
                    for iid, doc_id, vec, meta in batch
                ]
            )
        self._indexes[tenant] = index
        return index

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        out: dict[str, Document] = {}
        with self._lock:
            for chunk in _chunks(doc_ids):
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT doc_id, vector, metadata, text, hash FROM docs "
                    f"WHERE tenant = ? AND doc_id IN ({marks})",
                    (tenant, *chunk),
                ).fetchall()
                for row in rows:
                    out[row[0]] = self._document(tenant, row)
        return {d: out[d] for d in doc_ids if d in out}

    def _scan_page(self, tenant: str, after: str | None, limit: int) -> list[Document]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, vector, metadata, text, hash FROM docs "
                "WHERE tenant = ? AND doc_id > ? ORDER BY doc_id LIMIT ?",
                (tenant, "" if after is None else after, limit),
            ).fetchall()
        return [self._document(tenant, row) for row in rows]

    def _digest_pages(
        self, tenant: str, batch_size: int, after: str | None
    ) -> Iterator[list[tuple[str, str]]]:
        # The stored hash is trusted: shadowswap computed it from the canonical document and
        # wrote it in the same statement as the vector, metadata and text it covers.
        cursor = "" if after is None else after
        while True:
            with self._edge("scan", tenant), self._lock:
                page = self._db.execute(
                    "SELECT doc_id, hash FROM docs WHERE tenant = ? AND doc_id > ? "
                    "ORDER BY doc_id LIMIT ?",
                    (tenant, cursor, batch_size),
                ).fetchall()
            if not page:
                return
            yield page  # rows are (doc_id, hash) tuples
            if len(page) < batch_size:
                return
            cursor = page[-1][0]

    def _document(self, tenant: str, row: tuple[Any, ...]) -> Document:
        """A document from a catalog row, which holds only documents shadowswap validated and
        canonicalised, with the content hash computed from exactly those parts: nothing is
        checked or hashed again (a full check costs several times the read itself), except
        that the vector has the store's dimension."""
        doc_id, vec, meta, text, content_hash = row
        vector = np.frombuffer(vec, dtype=np.float32)
        dimension = self._stored_dimension()
        if vector.shape[0] != dimension:
            raise CorruptStore(
                self.kind,
                "read",
                str(self._catalog),
                f"the vector of {doc_id!r} has {vector.shape[0]} dimensions, not {dimension}",
            )
        return Document._trusted(tenant, doc_id, vector, json.loads(meta), text, content_hash)

    def _count(self, tenant: str) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM docs WHERE tenant = ?", (tenant,)
            ).fetchone()
        return int(n)

    def _tenants(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT tenant FROM docs")]

    def _close(self) -> None:
        with self._lock:
            self._indexes.clear()
            self._db.close()

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
            return StoreUnavailable(self.kind, op, "the store was closed", tenant)
        if isinstance(exc, sqlite3.OperationalError):
            return StoreUnavailable(self.kind, op, f"{self._catalog}: {exc}", tenant)
        if isinstance(exc, sqlite3.DatabaseError):
            return CorruptStore(self.kind, op, str(self._catalog), str(exc))
        if isinstance(exc, json.JSONDecodeError | ValueError):
            return CorruptStore(self.kind, op, str(self._catalog), f"unreadable row: {exc}")
        return None


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]

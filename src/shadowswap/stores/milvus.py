"""Milvus store: Milvus Lite on a local file, or a Milvus server, through pymilvus.

``RETRIEVAL_MILVUS_URL`` (default ``./data/milvus.db``): a file path runs Milvus Lite (the
engine in a child process of this one, on that file; one process at a time); a URI
(``http://host:19530``, ``https://...``) reaches a server, with ``?token=user:password``,
``?db_name=...`` and ``?collection=...`` (default ``shadowswap``) accepted.

Semantics
    tenants     one collection for every tenant, a ``tenant`` field, and ``tenant == "<id>"``
                in every search, query and count this adapter sends; reads by primary key also
                check the field. (Milvus's partition key would be the scalable layout, but
                Milvus Lite 2.5 rejects primary-key lookups on a collection that has one.)
    ids         the primary key is the VARCHAR ``<tenant>/<BLAKE2b-128 of the doc id>``; the
                doc id itself is kept in ``doc_id`` and checked on every read. Not the doc id
                itself: Milvus (Lite 2.5, and pymilvus's ``get``) splices primary keys into
                expressions without escaping, so an id with a quote breaks upserts.
    metric      a FLAT index (exact by design) with ``IP`` for cosine (on our unit vectors;
                Milvus's ``COSINE`` would normalise again) and dot: score = the inner product
                Milvus returns; ``L2`` for l2, where Milvus returns the squared distance:
                score = -distance.
    filters     ``json_contains_all(ftok["t"], [...])`` over the metadata tokens of
                `shadowswap.stores.tokens` (tokens contain no quote or backslash, so nothing
                needs escaping); a FLAT search filters before ranking, so it never returns
                fewer than k matches. The tokens are a JSON field, not an ARRAY field: with an
                ARRAY field in the schema, pymilvus 2.5 fails to decode any empty query result
                from Milvus Lite ("Unsupported data type: 0").
    fields      metadata as JSON text, text with a ``has_text`` flag (Milvus has no null
                VARCHAR in Lite), the content hash. Milvus VARCHAR holds at most 65,535 bytes:
                a document whose text or metadata JSON is longer is refused (InvalidInput) before
                anything of its batch is written.
    delete      Milvus reports the ids it was asked to delete, not those it found: ids are
                looked up first and only present ones deleted and counted.
    scan        Milvus 2.5 cannot order a query by a field: ids are listed with a query
                iterator and sorted here.
    consistency the collection is created with consistency level ``Strong``: a search waits
                until every earlier write is visible, so a write is visible when it returns.
    batches     upserts are sent 500 rows (and at most about 16 MB) per request, under the
                gRPC message limit (64 MB by default on servers).
    dimension   fixed by the collection's vector field (created with the first write); the
                metric is recorded in the collection description and checked on open, and so
                is the vector index's ``metric_type``, what Milvus actually ranks by.
    Lite files  one process at a time, and the adapter works around three Lite traps: the
                engine keeps the file locked after ``MilvusClient.close()`` (the last store on
                a file stops it); pymilvus shares one connection per URI and ``close()`` drops
                it for every client (each store has its own alias); a refused opener deletes
                the holder's lock file (the adapter probes the lock before Lite starts). File
                names: at most 36 characters from ``A-Z a-z 0-9 . - _`` (Lite's rule).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shadowswap import locks
from shadowswap.errors import (
    ConfigError,
    IncompatibleStore,
    InvalidInput,
    MissingDependency,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.fileio import make_private_dirs
from shadowswap.settings.masking import mask_secrets
from shadowswap.similarity import Metric, score_from_distance
from shadowswap.stores.base import check_engine_metric
from shadowswap.stores.paging import SortedIdScan
from shadowswap.stores.tokens import tokens
from shadowswap.values import Document, Filter, Hit, Vector

# milvus-lite 2.5 imports ``pkg_resources``, which warns that it is deprecated (and is gone
# from setuptools 81: hence the pin in pyproject.toml). A server-only install has no Lite.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
    try:
        import milvus_lite  # noqa: F401

        HAS_LITE = True
    except ImportError:
        HAS_LITE = False
    from pymilvus import DataType, MilvusClient
    from pymilvus import exceptions as milvus_errors

FORMAT = "1"
MAX_VARCHAR = 65_535
_ROWS_PER_REQUEST = 500
_BYTES_PER_REQUEST = 16 * 1024 * 1024
_GET_CHUNK = 500
#: the vector index's metric type each metric needs
METRIC_TYPES = {Metric.COSINE: ("IP",), Metric.DOT: ("IP",), Metric.L2: ("L2",)}


def description(metric: Metric) -> str:
    return f"shadowswap format={FORMAT} metric={metric.value}"


def parse_description(text: str) -> dict[str, str]:
    words = text.split()
    if not words or words[0] != "shadowswap":
        return {}
    return dict(w.split("=", 1) for w in words[1:] if "=" in w)


class MilvusStore(SortedIdScan):
    """Milvus Lite or a Milvus server, exact (FLAT); see the module docstring."""

    kind = "milvus"

    def __init__(
        self, location: str, metric: Metric = Metric.COSINE, *, timeout_s: float = 10.0
    ) -> None:
        super().__init__(location, metric)
        self._lock = threading.RLock()
        self._timeout_s = timeout_s
        self._dim: int | None = None
        self._exists = False
        self._client_obj: Any = None
        self._closed = False
        parts = urlsplit(location)
        self._remote = parts.scheme in ("http", "https", "tcp", "grpc")
        if "://" in location and not self._remote:
            raise ConfigError(
                "RETRIEVAL_MILVUS_URL",
                mask_secrets(location),
                "expected a file path for Milvus Lite (such as ./data/milvus.db) or "
                "http(s)://host:19530 for a Milvus server",
            )
        query = dict(parse_qsl(parts.query)) if self._remote else {}
        self._collection = query.pop("collection", "shadowswap")
        self._token = query.pop("token", "")
        self._db_name = query.pop("db_name", "")
        if self._remote:
            self._uri = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        else:
            self._uri = str(Path(location).expanduser().resolve())
        with self._edge("open", None):
            self._client()

    # -- connection ---------------------------------------------------------------------
    def _client(self) -> Any:
        with self._lock:
            if self._closed:
                raise StoreUnavailable(self.kind, "use", "the store was closed")
            if self._client_obj is None:
                if not self._remote:
                    if not HAS_LITE:
                        raise MissingDependency(self.kind, "milvus", "milvus_lite")
                    make_private_dirs(Path(self._uri).parent)  # documents: 0700 (fileio)
                    _lite_users.acquire(self._uri)
                try:
                    self._client_obj = MilvusClient(
                        uri=self._uri,
                        token=self._token,
                        db_name=self._db_name,
                        timeout=self._timeout_s,
                        # pymilvus shares one connection per URI between clients, and
                        # close() drops it for all of them: each store gets its own.
                        alias=f"shadowswap-{uuid.uuid4().hex}",
                    )
                    self._load_identity()
                except BaseException:  # release Milvus Lite's file for the next opener
                    if self._client_obj is not None:
                        self._drop_client()
                    elif not self._remote:
                        _lite_users.release(self._uri)
                    raise
            return self._client_obj

    def _load_identity(self) -> None:
        client = self._client_obj
        if not client.has_collection(self._collection):
            self._exists = False
            return
        # the index's metric type is what Milvus ranks by: checked before the record
        indexes = client.list_indexes(self._collection, field_name="vector")
        if indexes:
            held = client.describe_index(self._collection, indexes[0]).get("metric_type")
            check_engine_metric(
                self.kind, None if held is None else str(held), metric=self._metric,
                accepted=METRIC_TYPES,
                what=f"collection {self._collection!r} at {self._shown()}",
                setting="index metric_type",
                elsewhere="point RETRIEVAL_MILVUS_URL at another file or ?collection=",
            )  # fmt: skip
        info = client.describe_collection(self._collection)
        identity = parse_description(str(info.get("description", "")))
        if identity.get("format") != FORMAT:
            raise IncompatibleStore(
                self.kind,
                "open",
                f"collection {self._collection!r} at {self._shown()} was not created by this "
                "version of shadowswap; use ?collection= to pick another",
            )
        if identity.get("metric") != self._metric.value:
            raise IncompatibleStore(
                self.kind,
                "open",
                f"{self._shown()} was created with metric {identity.get('metric')!r}, not "
                f"{self._metric.value!r}; set RETRIEVAL_METRIC={identity.get('metric')} or use "
                "another location",
            )
        for field in info.get("fields", []):
            if field.get("name") == "vector":
                self._dim = int(field["params"]["dim"])
        self._exists = True

    def _ready(self) -> bool:
        """Whether the collection exists (another handle may have created it meanwhile)."""
        if not self._exists:
            with self._lock:
                self._client()
                self._load_identity()
        return self._exists

    def _shown(self) -> str:
        return mask_secrets(self._location)

    # -- BaseStore ----------------------------------------------------------------------
    def _stored_dimension(self) -> int | None:
        if self._dim is None:
            with self._lock:
                self._client()
                self._load_identity()
        return self._dim

    def _fix_dimension(self, dimension: int) -> int:
        with self._lock:
            client = self._client()
            data_type = DataType
            schema = MilvusClient.create_schema(
                auto_id=False, enable_dynamic_field=False, description=description(self._metric)
            )
            schema.add_field("pk", data_type.VARCHAR, is_primary=True, max_length=2048)
            schema.add_field("tenant", data_type.VARCHAR, max_length=64)
            schema.add_field("doc_id", data_type.VARCHAR, max_length=2048)
            schema.add_field("vector", data_type.FLOAT_VECTOR, dim=dimension)
            schema.add_field("meta", data_type.VARCHAR, max_length=MAX_VARCHAR)
            schema.add_field("text", data_type.VARCHAR, max_length=MAX_VARCHAR)
            schema.add_field("has_text", data_type.BOOL)
            schema.add_field("hash", data_type.VARCHAR, max_length=64)
            schema.add_field("ftok", data_type.JSON)
            index = client.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type=METRIC_TYPES[self._metric][0])
            if not client.has_collection(self._collection):
                client.create_collection(
                    self._collection,
                    schema=schema,
                    index_params=index,
                    consistency_level="Strong",
                )
            self._load_identity()
            if self._dim is None:
                self._dim = dimension
            return self._dim

    def _pk(self, tenant: str, doc_id: str) -> str:
        return primary_key(tenant, doc_id)

    def _rows(self, tenant: str, doc_ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        if not self._ready():
            return []
        client = self._client()
        out = []
        for start in range(0, len(doc_ids), _GET_CHUNK):
            chunk = doc_ids[start : start + _GET_CHUNK]
            wanted = set(chunk)
            got = client.get(
                self._collection,
                ids=[self._pk(tenant, d) for d in chunk],
                output_fields=["tenant", "doc_id", *fields],
            )
            out += [r for r in got if r.get("tenant") == tenant and r.get("doc_id") in wanted]
        return out

    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        return {r["doc_id"]: r["hash"] for r in self._rows(tenant, doc_ids, ["hash"])}

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        rows = [self._row(tenant, i, d) for i, d in enumerate(documents)]
        client = self._client()
        for batch in _batches(rows):
            client.upsert(self._collection, batch)

    def _row(self, tenant: str, i: int, doc: Document) -> dict[str, Any]:
        meta = json.dumps(dict(doc.metadata), ensure_ascii=False)
        for field, value in (("metadata", meta), ("text", doc.text or "")):
            size = len(value.encode("utf-8"))
            if size > MAX_VARCHAR:
                raise InvalidInput(
                    f"documents[{i}].{field}",
                    f"{size} bytes in UTF-8; Milvus keeps at most {MAX_VARCHAR} bytes per field",
                )
        return {
            "pk": self._pk(tenant, doc.doc_id),
            "tenant": tenant,
            "doc_id": doc.doc_id,
            "vector": doc.vector,
            "meta": meta,
            "text": doc.text or "",
            "has_text": doc.text is not None,
            "hash": doc.content_hash,
            "ftok": {"t": tokens(doc.metadata)},
        }

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        with self._lock:
            present = [r["doc_id"] for r in self._rows(tenant, doc_ids, [])]
            if present:
                self._client().delete(self._collection, ids=[self._pk(tenant, d) for d in present])
            return len(present)

    def _expr(self, tenant: str, flt: Filter) -> str:
        expr = f'tenant == "{tenant}"'
        wanted = tokens(flt)
        if wanted:
            expr += (
                ' and json_contains_all(ftok["t"], [' + ", ".join(f'"{t}"' for t in wanted) + "])"
            )
        return expr

    def _search(self, tenant: str, vector: Vector, k: int, filter: Filter) -> list[Hit]:
        if not self._ready():
            return []
        result = self._client().search(
            self._collection,
            data=[vector.tolist()],
            filter=self._expr(tenant, filter),
            limit=k,
            output_fields=["tenant", "doc_id", "meta"],
            search_params={"metric_type": METRIC_TYPES[self._metric][0]},
        )
        convention = "sq_l2" if self._metric is Metric.L2 else "ip"
        hits = []
        for found in result[0]:
            entity = found["entity"]
            if entity.get("tenant") != tenant:  # never: the expression filtered on it
                continue
            score = score_from_distance(float(found["distance"]), self._metric, convention)
            hits.append(Hit(entity["doc_id"], score, json.loads(entity["meta"])))
        hits.sort(key=lambda h: (-h.score, h.doc_id))
        return hits

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        out = {}
        for r in self._rows(tenant, doc_ids, ["vector", "meta", "text", "has_text"]):
            out[r["doc_id"]] = Document(
                tenant,
                r["doc_id"],
                r["vector"],
                json.loads(r["meta"]),
                r["text"] if r["has_text"] else None,
            )
        return {d: out[d] for d in doc_ids if d in out}

    def _iterate(self, expr: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        iterator = self._client().query_iterator(
            self._collection, batch_size=1000, filter=expr, output_fields=fields
        )
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    def _all_ids(self, tenant: str) -> list[str]:
        if not self._ready():
            return []
        return [r["doc_id"] for r in self._iterate(self._expr(tenant, {}), ["doc_id"])]

    def _count(self, tenant: str) -> int:
        if not self._ready():
            return 0
        rows = self._client().query(
            self._collection, filter=self._expr(tenant, {}), output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"])

    def _tenants(self) -> list[str]:
        if not self._ready():
            return []
        return sorted({r["tenant"] for r in self._iterate('tenant != ""', ["tenant"])})

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_client()

    def _drop_client(self) -> None:
        with self._lock:
            if self._client_obj is not None:
                self._client_obj.close()
                self._client_obj = None
                if not self._remote:
                    _lite_users.release(self._uri)

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        if not isinstance(exc, milvus_errors.MilvusException):
            return None
        text = str(exc)
        if "Open local milvus failed" in text or ("already" in text and "lock" in text):
            return StoreUnavailable(
                self.kind,
                op,
                f"{self._shown()} cannot be opened; Milvus Lite serves a file to one process "
                "at a time (use a Milvus server to share it)",
                tenant,
            )
        if isinstance(exc, milvus_errors.MilvusUnavailableException) or (
            "Fail connecting" in text or "UNAVAILABLE" in text
        ):
            return StoreUnavailable(self.kind, op, f"cannot reach {self._shown()}", tenant)
        if "DEADLINE_EXCEEDED" in text or "timeout" in text.lower():
            return StoreTimeout(self.kind, op, f"{self._shown()}: no answer in time", tenant)
        return StoreError(self.kind, op, f"Milvus: {exc.message}", tenant)


class _LiteUsers:
    """Milvus Lite runs one engine process per file for the whole Python process (pymilvus
    keeps them in a process-wide manager) and keeps it, and the file's lock, until exit, even
    after ``MilvusClient.close()``. Counting the open stores per file lets the last ``close``
    stop the engine, so another process (a CLI command, a restarted service) can open the file.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[str, int] = {}

    def acquire(self, path: str) -> None:
        """Count one more store on ``path``; the first one checks no other process holds it.

        Milvus Lite's own check is unsafe: when it finds the file locked, the failed opener
        deletes the lock file (``Server.__del__``), so a third process then opens the same file
        beside the first. Probing the lock here first means Lite never starts in that case.
        """
        with self._lock:
            if self._count.get(path, 0) == 0:
                _probe_lite_lock(path)
            self._count[path] = self._count.get(path, 0) + 1

    def release(self, path: str) -> None:
        with self._lock:
            left = self._count.get(path, 0) - 1
            if left > 0:
                self._count[path] = left
                return
            self._count.pop(path, None)
            try:
                from milvus_lite.server_manager import server_manager_instance  # noqa: PLC0415
            except ImportError:  # pragma: no cover - a path location needs Milvus Lite
                return
            server_manager_instance.release_server(path)


_lite_users = _LiteUsers()


def _probe_lite_lock(path: str) -> None:
    """Raise `StoreUnavailable` when another process holds Milvus Lite's lock on ``path``.

    Only called when this process holds no store on the file: POSIX locks belong to the
    process, so probing a file this process has locked would release its lock.
    """
    db = Path(path)
    if not _LITE_NAME.fullmatch(db.name):
        raise ConfigError(
            "RETRIEVAL_MILVUS_URL",
            path,
            "Milvus Lite needs a file name of 1 to 36 characters from A-Z a-z 0-9 . - _",
        )
    lock = db.parent / f".{db.name}.lock"
    if not lock.exists():
        return
    if locks.probe_posix_lock(lock):
        raise StoreUnavailable(
            "milvus",
            "open",
            f"{path} is open in another process; Milvus Lite serves a file to one process "
            "at a time (use a Milvus server to share it)",
        )


_LITE_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,36}")


def primary_key(tenant: str, doc_id: str) -> str:
    """``<tenant>/<128-bit BLAKE2b of the doc id>``: only characters Milvus expressions take
    unquoted (Milvus builds expressions from primary keys internally, without escaping)."""
    return f"{tenant}/{hashlib.blake2b(doc_id.encode('utf-8'), digest_size=16).hexdigest()}"


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row_size = 4 * len(row["vector"]) + len(row["meta"]) + len(row["text"]) + 256
        if batch and (len(batch) >= _ROWS_PER_REQUEST or size + row_size > _BYTES_PER_REQUEST):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch

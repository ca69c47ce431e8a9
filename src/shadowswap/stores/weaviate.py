"""Weaviate store through the official v4 client (``weaviate-client``), REST and gRPC.

Tested here at the wire level only (no Weaviate runs on this machine): the client talks REST
to a scripted HTTP stub and gRPC to a scripted gRPC stub; see ``docs/stores-http.md`` for
exactly what that does and does not prove.

Location: ``RETRIEVAL_WEAVIATE_URL=https://host:8080?api_key=KEY&grpc_port=50051`` (options
``grpc_host`` (default: the URL's host), ``grpc_port`` (default 50051, or 443 for https with
``grpc_host``), ``collection`` (default ``Shadowswap``)). gRPC is TLS when the URL is https.

Which calls go where (client 4.24): schema, tenant existence and server metadata over REST;
searches, fetches by id, batch imports, batch deletes, counts (aggregate) and tenant listing
over gRPC. The client has no switch to do those over REST, so both transports are tested.

Semantics
    tenants     Weaviate's native multi-tenancy: one collection (``Shadowswap``) with a tenant
                per shadowswap tenant (Weaviate tenant names follow the very rule of our tenant
                ids: ``[A-Za-z0-9_-]{1,64}``). Every data call is made through
                ``collection.with_tenant(t)``, which puts the tenant in each request; a tenant is
                created on its first write (``autoTenantCreation``) and reactivated when used
                (``autoTenantActivation``). Reads of a tenant Weaviate does not know return
                nothing (checked with ``HEAD /v1/schema/<collection>/tenants/<t>``).
    ids         Weaviate object ids are UUIDs: ``uuid5(NAMESPACE, tenant + "\\0" + doc_id)``, so an
                id is the same in every process and never collides across tenants; the doc id is
                kept in the ``doc_id`` property and returned from there.
    store info  the collection's ``description`` holds ``{"shadowswap": format, "metric",
                "dimension"}``, written when the collection is created at the first write.
    metric      cosine and dot -> Weaviate's ``dot`` distance (``-x``; on our unit vectors that
                is minus the cosine: Weaviate's ``cosine`` distance would renormalise stored
                vectors), l2 -> ``l2-squared``. Score = ``-distance``, exactly. An existing
                collection's vector index ``distance`` is checked against ``RETRIEVAL_METRIC``
                before its store record is.
    vectors     sent and returned as float32 bytes over gRPC, so they round-trip bit for bit.
    fields      ``doc_id``, ``ss_hash``, ``ss_meta`` (canonical JSON), ``ss_text``,
                ``ss_has_text`` (Weaviate does not keep ``""`` apart from absent), none indexed;
                ``ss_tokens`` (``text[]``, ``field`` tokenization, filterable): the filter tokens.
    filters     ``ss_tokens`` contains all the filter's tokens, inside the vector search, so
                Weaviate returns the top k among matches (it pre-filters, and searches flat when
                the filter is selective); hits are re-checked against the exact metadata.
    scan        Weaviate's cursor pages by UUID, not by doc id: ``scan`` lists a tenant's
                (uuid, doc id) pairs once (memory grows with the number of ids, not vectors),
                sorts them by doc id and fetches the documents in batches of 1,000.
    consistency a batch import or delete is visible to searches when the call returns
                (single node; with replication, at the client's default consistency level).
    batches     imports of at most 500 objects and 8 MiB per gRPC call (the server's default
                message limit is 10 MB), fetches and deletes of at most 1,000 ids (below the
                server's ``QUERY_MAXIMUM_RESULTS``, 10,000 by default).
    failures    the client retries a gRPC call that fails with UNAVAILABLE with 1, 2, 4, 8, 16
                and 32 s pauses before giving up (about a minute, not configurable). To keep a
                dead server from stalling every call that long, the adapter checks that the
                gRPC port accepts connections when it connects, and after any connection-type
                failure it drops the client, so the next call reconnects and fails fast. A
                server that dies between that check and a call still costs one such stall.
                Connecting skips the client's start-up checks, which would also query PyPI.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grpc
import httpx
import weaviate
import weaviate.exceptions as wex
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, MetadataQuery

from shadowswap.errors import (
    ConfigError,
    IncompatibleStore,
    InvalidInput,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.similarity import Metric
from shadowswap.stores.base import check_engine_metric, check_store_record, matches
from shadowswap.stores.paging import SortedIdScan
from shadowswap.stores.remote import (
    FORMAT,
    chunks,
    corrupt,
    error_for_status,
    json_size,
    metadata_from_json,
    metadata_to_json,
    parse_endpoint,
    short,
    sized_chunks,
    vector_to_floats,
)
from shadowswap.stores.tokens import tokens
from shadowswap.values import Document, Hit, Vector
from shadowswap.values import Filter as EqFilter

log = logging.getLogger("shadowswap.stores.weaviate")

#: uuid5 namespace of object ids; changing it would orphan every stored object
NAMESPACE = uuid.UUID("407c2c69-f3da-5522-b017-78544cb1fa03")
VECTOR = "default"
IMPORT_MAX_OBJECTS = 500
IMPORT_MAX_BYTES = 8 * 1024 * 1024
IDS_MAX = 1000
COLLECTION_RE = re.compile(r"[A-Z][_0-9A-Za-z]{0,200}")
PROPERTIES = ["doc_id", "ss_hash", "ss_meta", "ss_text", "ss_has_text"]
OPTIONS = {
    "grpc_host": "gRPC host, default the URL's host",
    "grpc_port": "gRPC port, default 50051",
    "collection": "collection name, default Shadowswap",
}
_DISTANCE = {
    Metric.COSINE: VectorDistances.DOT,
    Metric.DOT: VectorDistances.DOT,
    Metric.L2: VectorDistances.L2_SQUARED,
}
#: the vector index distance of an existing collection each metric runs on
DISTANCES = {metric: (str(distance.value),) for metric, distance in _DISTANCE.items()}


def vector_distance(config: Any) -> str | None:
    """The distance a collection's vector index ranks by: that of our named vector (else of
    its only named vector, else of its legacy unnamed one); None when it has none."""
    named = getattr(config, "vector_config", None) or {}
    if named:
        vector = named.get(VECTOR) or (next(iter(named.values())) if len(named) == 1 else None)
        index = getattr(vector, "vector_index_config", None)
    else:
        index = getattr(config, "vector_index_config", None)
    distance = getattr(index, "distance_metric", None)
    return None if distance is None else str(getattr(distance, "value", distance))


def object_id(tenant: str, doc_id: str) -> uuid.UUID:
    """The Weaviate object id of a document: the same everywhere, unique per tenant."""
    return uuid.uuid5(NAMESPACE, f"{tenant}\0{doc_id}")


class WeaviateStore(SortedIdScan):
    """Weaviate 1.27+ with multi-tenancy; see the module docstring."""

    kind = "weaviate"

    def __init__(
        self, location: str, metric: Metric = Metric.COSINE, *, timeout_s: float = 10.0
    ) -> None:
        self._endpoint = parse_endpoint(self.kind, location, OPTIONS)
        super().__init__(self._endpoint.shown, metric)
        self._collection_name = self._endpoint.option("collection", "Shadowswap")
        if not COLLECTION_RE.fullmatch(self._collection_name):
            raise ConfigError(
                self._endpoint.variable,
                f"{self._endpoint.shown}?collection={self._collection_name}",
                "collection must be a capitalised name of letters, digits and _",
            )
        self._grpc_host = self._endpoint.option("grpc_host", self._endpoint.host)
        port = self._endpoint.option("grpc_port", "50051")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                self._endpoint.variable,
                f"{self._endpoint.shown}?grpc_port={port}",
                "grpc_port must be a port number",
            )
        self._grpc_port = int(port)
        self._timeout_s = timeout_s
        self._lock = threading.RLock()
        self._client_obj: Any = None
        self._dim: int | None = None
        self._tenants_known: set[str] = set()

    # -- connection ------------------------------------------------------------------------
    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                self._check_grpc_port()
                ep = self._endpoint
                self._client_obj = weaviate.connect_to_custom(
                    http_host=ep.host,
                    http_port=ep.port or (443 if ep.secure else 80),
                    http_secure=ep.secure,
                    grpc_host=self._grpc_host,
                    grpc_port=self._grpc_port,
                    grpc_secure=ep.secure,
                    auth_credentials=Auth.api_key(ep.api_key) if ep.api_key else None,
                    skip_init_checks=True,
                    additional_config=AdditionalConfig(
                        timeout=Timeout(
                            init=self._timeout_s, query=self._timeout_s, insert=self._timeout_s
                        )
                    ),
                )
            return self._client_obj

    def _check_grpc_port(self) -> None:
        """Fail fast when the gRPC port is closed (see "failures" in the module docstring)."""
        target = f"{self._grpc_host}:{self._grpc_port}"
        channel = (
            grpc.secure_channel(target, grpc.ssl_channel_credentials())
            if self._endpoint.secure
            else grpc.insecure_channel(target)
        )
        settled = threading.Event()
        seen: list[grpc.ChannelConnectivity] = []
        final = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE)

        def watch(state: grpc.ChannelConnectivity) -> None:
            if state in final:
                seen.append(state)
                settled.set()

        channel.subscribe(watch, try_to_connect=True)
        try:
            settled.wait(min(self._timeout_s, 5.0))
        finally:
            channel.unsubscribe(watch)
            channel.close()
        if not seen or seen[0] is not grpc.ChannelConnectivity.READY:
            why = "connection refused" if seen else "no answer"
            raise StoreUnavailable(
                self.kind, "connect", f"cannot reach the gRPC port of Weaviate at {target} ({why})"
            )

    def _drop_client(self) -> None:
        with self._lock:
            client, self._client_obj = self._client_obj, None
        if client is not None:
            try:
                client.close()
            except Exception:
                log.debug("closing a failed weaviate client raised", exc_info=True)

    def _collection(self) -> Any:
        return self._client().collections.use(self._collection_name)

    def _tenant(self, tenant: str, create: bool = False) -> Any | None:
        """The collection scoped to ``tenant``; None when Weaviate does not know it (reads)."""
        if self._stored_dimension() is None:
            return None
        col = self._collection()
        if not create and tenant not in self._tenants_known and not col.tenants.exists(tenant):
            return None
        self._tenants_known.add(tenant)
        return col.with_tenant(tenant)

    # -- store info ------------------------------------------------------------------------
    def _stored_dimension(self) -> int | None:
        if self._dim is None:
            with self._lock:
                client = self._client()
                if client.collections.exists(self._collection_name):
                    info = self._read_config(self._collection().config.get())
                    self._dim = info["dimension"]
        return self._dim

    def _read_config(self, config: Any) -> dict[str, Any]:
        """The store record of an existing collection, once its distance (what Weaviate ranks
        by) and its record are found to fit our metric."""
        check_engine_metric(
            self.kind, vector_distance(config), metric=self._metric, accepted=DISTANCES,
            what=f"collection {self._collection_name} at {self._endpoint.shown}",
            setting="distance",
            elsewhere=f"pick another collection= in {self._endpoint.variable}",
        )  # fmt: skip
        return self._read_info(config.description)

    def _read_info(self, description: object) -> dict[str, Any]:
        text = description if isinstance(description, str) else ""
        try:
            info = json.loads(text[text.index("{") :])
            dimension = info["dimension"]
        except (ValueError, KeyError, TypeError):
            raise IncompatibleStore(
                self.kind,
                "open",
                f"collection {self._collection_name} was not created by shadowswap (its "
                "description carries no store record); set collection= to another name",
            ) from None
        where = f"collection {self._collection_name}"
        check_store_record(
            self.kind, info, format=FORMAT, metric=self._metric, record=where, store=where,
            elsewhere="another collection=", format_key="shadowswap",
        )  # fmt: skip
        if not isinstance(dimension, int) or isinstance(dimension, bool) or dimension < 1:
            raise corrupt(self.kind, "open", self._collection_name, "bad dimension record")
        return dict(info)

    def _fix_dimension(self, dimension: int) -> int:
        with self._lock:
            client = self._client()
            record = {"shadowswap": FORMAT, "metric": self._metric.value, "dimension": dimension}
            try:
                client.collections.create(
                    self._collection_name,
                    description="shadowswap store " + json.dumps(record, sort_keys=True),
                    properties=_properties(),
                    vector_config=Configure.Vectors.self_provided(
                        name=VECTOR,
                        vector_index_config=Configure.VectorIndex.hnsw(
                            distance_metric=_DISTANCE[self._metric]
                        ),
                    ),
                    multi_tenancy_config=Configure.multi_tenancy(
                        enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
                    ),
                )
            except wex.UnexpectedStatusCodeError as exc:
                if exc.status_code != 422 or "already exists" not in str(exc):
                    raise
                held = self._read_config(self._collection().config.get())["dimension"]
                if held != dimension:
                    return int(held)
            self._dim = dimension
            return dimension

    # -- BaseStore -------------------------------------------------------------------------
    def _hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        return {
            str(props.get("doc_id")): str(props.get("ss_hash", ""))
            for props, _vec in self._fetch(tenant, doc_ids, ["doc_id", "ss_hash"], False)
        }

    def _fetch(
        self, tenant: str, doc_ids: Sequence[str], props: list[str], vectors: bool
    ) -> Iterator[tuple[Mapping[str, Any], Any]]:
        scoped = self._tenant(tenant)
        if scoped is None:
            return
        for chunk in chunks(doc_ids, IDS_MAX):
            ids = [object_id(tenant, d) for d in chunk]
            res = scoped.query.fetch_objects(
                filters=Filter.by_id().contains_any(ids),
                limit=len(ids),
                return_properties=props,
                include_vector=vectors,
            )
            for obj in res.objects:
                yield obj.properties, obj.vector

    def _write(self, tenant: str, documents: Sequence[Document]) -> None:
        scoped = self._tenant(tenant, create=True)
        if scoped is None:  # pragma: no cover - _prepare fixed the dimension first
            raise StoreError(self.kind, "upsert", "the collection does not exist", tenant)
        objects = [
            DataObject(
                uuid=object_id(tenant, d.doc_id),
                properties={
                    "doc_id": d.doc_id,
                    "ss_hash": d.content_hash,
                    "ss_meta": metadata_to_json(d.metadata),
                    "ss_text": d.text or "",
                    "ss_has_text": d.text is not None,
                    "ss_tokens": tokens(d.metadata),
                },
                vector={VECTOR: vector_to_floats(d.vector)},
            )
            for d in documents
        ]
        sizes = [
            json_size(o.properties) + 4 * len(d.vector)
            for o, d in zip(objects, documents, strict=True)
        ]
        for chunk in sized_chunks(objects, sizes, IMPORT_MAX_OBJECTS, IMPORT_MAX_BYTES):
            result = scoped.data.insert_many(list(chunk))
            if result.errors:
                first = next(iter(result.errors.values()))
                raise StoreError(
                    self.kind,
                    "upsert",
                    f"{len(result.errors)} of {len(chunk)} objects were refused; first: "
                    f"{getattr(first, 'message', first)}",
                    tenant,
                )

    def _delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        scoped = self._tenant(tenant)
        if scoped is None:
            return 0
        removed = 0
        for chunk in chunks(doc_ids, IDS_MAX):
            ids = [object_id(tenant, d) for d in chunk]
            result = scoped.data.delete_many(where=Filter.by_id().contains_any(ids))
            if result.failed:
                raise StoreError(
                    self.kind, "delete", f"{result.failed} of {len(ids)} deletes failed", tenant
                )
            removed += int(result.successful)
        return removed

    def _search(self, tenant: str, vector: Vector, k: int, filter: EqFilter) -> list[Hit]:
        scoped = self._tenant(tenant)
        if scoped is None:
            return []
        where = Filter.by_property("ss_tokens").contains_all(tokens(filter)) if filter else None
        res = scoped.query.near_vector(
            near_vector=vector_to_floats(vector),
            limit=k,
            filters=where,
            target_vector=VECTOR,
            return_metadata=MetadataQuery(distance=True),
            return_properties=["doc_id", "ss_meta"],
        )
        hits = []
        for obj in res.objects:
            metadata = self._metadata(obj.properties)
            distance = obj.metadata.distance
            if distance is None:
                raise corrupt(self.kind, "search", self._collection_name, "a hit has no distance")
            if matches(metadata, filter):
                hits.append(Hit(str(obj.properties.get("doc_id")), -float(distance), metadata))
        hits.sort(key=lambda h: -h.score)
        return hits

    def _metadata(self, props: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return metadata_from_json(str(props["ss_meta"]))
        except (KeyError, ValueError, InvalidInput) as exc:
            raise corrupt(
                self.kind, "read", f"object of {props.get('doc_id')!r}", f"bad ss_meta ({exc})"
            ) from exc

    def _get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        out: dict[str, Document] = {}
        for props, vectors in self._fetch(tenant, doc_ids, PROPERTIES, True):
            doc_id = str(props.get("doc_id"))
            vector = (vectors or {}).get(VECTOR)
            if vector is None:
                raise corrupt(self.kind, "get", f"object of {doc_id!r}", "no vector")
            text = str(props.get("ss_text") or "") if props.get("ss_has_text") else None
            out[doc_id] = Document(tenant, doc_id, vector, self._metadata(props), text)
        return {d: out[d] for d in doc_ids if d in out}

    def _all_ids(self, tenant: str) -> list[str]:
        scoped = self._tenant(tenant)
        if scoped is None:
            return []
        out: list[str] = []
        cursor = None
        while True:
            res = scoped.query.fetch_objects(
                limit=IDS_MAX, after=cursor, return_properties=["doc_id"]
            )
            out.extend(str(o.properties.get("doc_id")) for o in res.objects)
            if len(res.objects) < IDS_MAX:
                return out
            cursor = res.objects[-1].uuid

    def _count(self, tenant: str) -> int:
        scoped = self._tenant(tenant)
        if scoped is None:
            return 0
        return int(scoped.aggregate.over_all(total_count=True).total_count or 0)

    def _tenants(self) -> list[str]:
        if self._stored_dimension() is None:
            return []
        names = list(self._collection().tenants.get())
        self._tenants_known.update(names)
        return [t for t in names if self._count(t) > 0]

    def _close(self) -> None:
        self._drop_client()
        self._tenants_known.clear()

    def _translate(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        mapped = self._map(exc, op, tenant)
        if isinstance(mapped, StoreUnavailable | StoreTimeout):
            self._drop_client()
        return mapped

    def _map(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        rpc = _rpc_error(exc)
        if rpc is not None:
            return self._map_grpc(rpc, op, tenant)
        if isinstance(exc, wex.UnexpectedStatusCodeError):
            return error_for_status(
                self.kind,
                op,
                tenant,
                status=exc.status_code,
                reason=_body_reason(exc),
                endpoint=self._endpoint,
            )
        return self._map_transport(exc, op, tenant)

    def _map_transport(self, exc: Exception, op: str, tenant: str | None) -> StoreError | None:
        where = self._endpoint.shown
        if isinstance(exc, wex.WeaviateRetryError):
            return StoreUnavailable(
                self.kind, op, f"{where}: gRPC unavailable ({short(exc)})", tenant
            )
        if isinstance(exc, httpx.TimeoutException | wex.WeaviateTimeoutError):
            return StoreTimeout(
                self.kind, op, f"{where}: no answer in {self._timeout_s:g} s", tenant
            )
        unreachable = httpx.TransportError | wex.WeaviateConnectionError | wex.WeaviateStartUpError
        if isinstance(exc, unreachable):
            return StoreUnavailable(self.kind, op, f"cannot reach {where} ({short(exc)})", tenant)
        if isinstance(exc, wex.WeaviateBaseError):
            return StoreError(self.kind, op, f"{type(exc).__name__}: {short(exc)}", tenant)
        return None

    def _map_grpc(self, rpc: grpc.RpcError, op: str, tenant: str | None) -> StoreError:
        code = rpc.code() if isinstance(rpc, grpc.Call) else None
        details = (rpc.details() if isinstance(rpc, grpc.Call) else "") or ""
        target = f"{self._grpc_host}:{self._grpc_port}"
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return StoreTimeout(self.kind, op, f"gRPC {target}: no answer in time", tenant)
        if code is grpc.StatusCode.UNAVAILABLE:
            return StoreUnavailable(
                self.kind, op, f"cannot reach gRPC {target} ({details})", tenant
            )
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return StoreUnavailable(
                self.kind,
                op,
                f"gRPC {target} refused the credentials ({code.name}: {details}); check "
                f"api_key in {self._endpoint.variable}",
                tenant,
            )
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return StoreUnavailable(
                self.kind, op, f"gRPC {target} is overloaded ({details})", tenant
            )
        name = code.name if code is not None else "error"
        return StoreError(self.kind, op, f"gRPC {target} {name}: {details}", tenant)


def _properties() -> list[Property]:
    def plain(name: str, kind: DataType) -> Property:
        return Property(name=name, data_type=kind, index_filterable=False, index_searchable=False)

    return [
        plain("doc_id", DataType.TEXT),
        plain("ss_hash", DataType.TEXT),
        plain("ss_meta", DataType.TEXT),
        plain("ss_text", DataType.TEXT),
        plain("ss_has_text", DataType.BOOL),
        Property(
            name="ss_tokens",
            data_type=DataType.TEXT_ARRAY,
            tokenization=Tokenization.FIELD,
            index_filterable=True,
            index_searchable=False,
        ),
    ]


def _rpc_error(exc: BaseException) -> grpc.RpcError | None:
    """The gRPC error behind a client exception (the client raises from inside ``except``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, grpc.RpcError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _body_reason(exc: wex.UnexpectedStatusCodeError) -> str:
    body = getattr(exc, "error", None)
    if isinstance(body, Mapping):
        errors = body.get("error")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            return str(errors[0].get("message", ""))
    return short(exc)

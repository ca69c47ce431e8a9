"""Request and response bodies of the HTTP service (CONTRACT §4), as pydantic models.

The models check the *shape* strictly (unknown fields refused, numbers must be JSON numbers,
no NaN or Infinity, bounded lists); the *rules* of values (tenant and doc id syntax,
metadata keys and values, float32 range, dimension) are checked by the library's own
validators (`shadowswap.values.Query` and `Document`, the stores' dimension), so the HTTP API
and the Python API refuse exactly the same things with the same messages. The OpenAPI
document generated from these models is what the schema-driven fuzz test (schemathesis)
works from.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shadowswap.values import MAX_DIMENSION, MAX_K, MAX_META_KEYS

MAX_DOCUMENTS = 1000
MAX_DOC_IDS = 10_000

_META_VALUE_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
}
_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_META_KEYS,
    "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$"},
    "additionalProperties": _META_VALUE_SCHEMA,
}

Tenant = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Tenant id: 1 to 64 characters from A-Z a-z 0-9 _ -.",
        examples=["acme"],
    ),
]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Vector = Annotated[
    list[Number],
    Field(
        min_length=1,
        max_length=MAX_DIMENSION,
        description="The embedding: finite numbers, as many as the store's dimension.",
    ),
]
Metadata = Annotated[
    dict[str, Any],
    WithJsonSchema(_META_SCHEMA),
    Field(description="Flat key/value pairs: strings, numbers or booleans (no null)."),
]
DocId = Annotated[
    str,
    Field(min_length=1, max_length=512, description="Document id: 1 to 512 bytes in UTF-8."),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchRequest(_Strict):
    """``POST /internal/retrieval/search``."""

    tenant: Tenant
    vector: Vector
    k: Annotated[int, Field(strict=True, ge=1, le=MAX_K, description="How many hits, 1 to 1000.")]
    filter: Annotated[
        Metadata | None,
        Field(description="Equality filter on metadata: every key must match."),
    ] = None


class DocumentIn(_Strict):
    doc_id: DocId
    vector: Vector
    metadata: Metadata | None = None
    text: Annotated[str | None, Field(max_length=1_000_000)] = None


class UpsertRequest(_Strict):
    """``POST /internal/retrieval/upsert``."""

    tenant: Tenant
    documents: Annotated[list[DocumentIn], Field(min_length=1, max_length=MAX_DOCUMENTS)]


class DeleteRequest(_Strict):
    """``POST /internal/retrieval/delete``."""

    tenant: Tenant
    doc_ids: Annotated[list[DocId], Field(min_length=1, max_length=MAX_DOC_IDS)]


# -- responses (documentation and the fuzz test's conformance check) ----------------------------
class HitOut(BaseModel):
    doc_id: str
    score: float = Field(description="Similarity: higher is better, whatever the backend.")
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    hits: list[HitOut]
    backend: str = Field(description="The backend kind that served this read.")
    trace_id: str
    fallback: bool = Field(description="True when the other backend answered (runbook 003).")


class DualWriteOut(BaseModel):
    backend: str = Field(description="The backend kept in step in the background.")
    outcome: str = Field(description="none, deferred, queued, dropped or unrecorded.")
    queued: int
    dropped: int


class UpsertResponse(BaseModel):
    tenant: str
    backend: str = Field(description="The backend written synchronously.")
    written: int
    unchanged: int
    dual_write: DualWriteOut | None
    trace_id: str


class DeleteResponse(BaseModel):
    tenant: str
    backend: str
    deleted: int
    dual_write: DualWriteOut | None
    trace_id: str


class ErrorItem(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: str = Field(description="A stable code: invalid_input, unauthorized, ...")
    detail: str = Field(description="What is wrong, in words.")
    field: str | None = None
    errors: list[ErrorItem] | None = None
    trace_id: str | None


class Health(BaseModel):
    status: str
    detail: str | None = None

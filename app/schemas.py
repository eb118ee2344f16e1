"""Pydantic models for every request and response body (they also make the OpenAPI docs at /docs).

Request models are strict (no "10" for 10, no 1 for "1") and forbid unknown fields, so a typo in a
client surfaces as a 422 naming the field instead of being silently ignored. Limits that come from
the settings (length, top_k maximum, batch size) are checked in ``app.limits``, not here, because a
model class cannot see the settings of the app that validates it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Mode = Literal["dense", "hybrid"]
ResultField = Literal["title", "text", "metadata", "dense_score"]  # id and score are always returned
RESULT_FIELDS: tuple[ResultField, ...] = ("dense_score", "title", "text", "metadata")
Tower = Literal["query", "document"]
FilterValue = str | int | float | bool


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _utf8(v: str) -> str:
    # JSON may spell an unpaired surrogate ("\ud800"); such a string cannot be encoded as UTF-8 (not by
    # the featurizer, not by SQLite, not in our response), so it is refused here as bad input.
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains an unpaired surrogate (not valid Unicode text)") from None
    return v


def _check_fields(v: dict[str, Any], what: str) -> dict[str, Any]:
    """Field names and string values valid Unicode, numbers finite (a filter, a document's metadata)."""
    for key, value in v.items():
        _utf8(key)
        if isinstance(value, str):
            _utf8(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{what} value for {key!r} must be a finite number, got {value}")
    return v


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty or whitespace only")
    return _utf8(v)


def _check_texts(v: str | list[str]) -> str | list[str]:
    """The input checks of both embedding routes (same messages, same error type)."""
    if isinstance(v, str):
        return _not_blank(v)
    if not v:
        raise ValueError("must not be an empty list")
    for i, t in enumerate(v):
        if not t.strip():
            raise ValueError(f"item {i} must not be empty or whitespace only")
        try:
            _utf8(t)
        except ValueError as e:
            raise ValueError(f"item {i} {e}") from None
    return v


# ---- /search -------------------------------------------------------------------------------------


class SearchRequest(_Request):
    query: str = Field(description="Free text; searched with the query tower.", examples=["what causes glaucoma"])
    top_k: int = Field(10, ge=1, description="Number of results (1..max_top_k, default limit 100).")
    offset: int = Field(0, ge=0, description=(
        "Skip this many results (paging: page p of size k is offset (p-1)·k, top_k k). offset + top_k is "
        "at most max_top_k; pages within the first 100 results are disjoint slices of one ranking, "
        "approximate indexes included."))
    # allow_inf_nan=False: NaN would silently match nothing and ±Infinity everything or nothing (422).
    min_score: float | None = Field(None, allow_inf_nan=False,
                                    description="Drop results whose cosine (dense_score) is below this.")
    mode: Mode = Field("dense", description="dense: cosine ranking; hybrid: dense fused with BM25.")
    filter: dict[str, FilterValue] | None = Field(
        None, description="Keep only documents whose metadata fields equal these values.",
        examples=[{"aspect": "treatment"}],
    )
    fields: list[ResultField] | None = Field(None, description=(
        "What each result carries besides id and score (default: all of dense_score, title, text, "
        "metadata). [] returns ids and scores only: no document text (~12 KB per 10 results) to send."),
        examples=[["title"]])

    _check_query = field_validator("query")(_not_blank)

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, v: dict[str, FilterValue] | None) -> dict[str, FilterValue] | None:
        return None if v is None else _check_fields(v, "filter")


class SearchResult(BaseModel):
    """``dense_score``, ``title``, ``text`` and ``metadata`` are present unless the request's ``fields`` left them out."""

    id: str
    score: float = Field(description="What ranks: the cosine (dense) or the fused score (hybrid).")
    dense_score: float | None = Field(None, description="Always the cosine between query and document.")
    title: str = ""
    text: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    query: str
    results: list[SearchResult]
    took_ms: float
    model: str
    index: str


# ---- /embed --------------------------------------------------------------------------------------


class EmbedRequest(_Request):
    input: str | list[str] = Field(description="One text or a list of texts.")
    tower: Tower = Field("query", description="query: for queries; document: what the index holds.")

    @field_validator("input")
    @classmethod
    def _check_input(cls, v: str | list[str]) -> str | list[str]:
        return _check_texts(v)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian float32 (OpenAI).")


class EmbedResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    dim: int
    tower: Tower


# ---- /v1/embeddings (OpenAI-compatible) ----------------------------------------------------------


class OpenAIEmbeddingRequest(BaseModel):
    # Not strict: OpenAI clients send exactly these fields; token-id input is accepted by the schema
    # only so that the service can answer it with a clear message instead of a union error.
    model_config = ConfigDict(extra="forbid")

    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = Field(None, description="Accepted and ignored; the response names the served model.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, description="If given, must equal the model's dimension.")
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _check_input(cls, v: str | list[str] | list[int] | list[list[int]]) -> object:
        # The same checks, messages and error type (validation_error) as /embed's input: one client
        # mistake, one answer on both routes.
        if isinstance(v, list) and v and not all(isinstance(t, str) for t in v):
            raise ValueError("token-id input is not supported: this model reads text; send strings")
        return _check_texts(v)  # type: ignore[arg-type]  # only str / list[str] reach here


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


# ---- operations ----------------------------------------------------------------------------------


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    reason: str | None = None
    model: str | None = None
    index: str | None = None


class InfoResponse(BaseModel):
    ready: bool
    reason: str | None
    model: dict[str, Any] | None
    index: dict[str, Any] | None
    service: dict[str, Any]
    versions: dict[str, str]


class ReloadRequest(_Request):
    model_dir: str | None = Field(None, description="Model folder to load; default: the one being served.")
    index_dir: str | None = Field(None, description="Index folder to load; default: the one being served.")

    @field_validator("model_dir", "index_dir")
    @classmethod
    def _check_dir(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "\x00" in v):
            raise ValueError("must be a non-empty path without NUL characters")
        return None if v is None else _utf8(v)


class ReloadResponse(BaseModel):
    status: Literal["reloaded"] = "reloaded"
    model: str
    index: str
    took_ms: float
    previous: dict[str, str | None]


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


# ---- /documents (the live index) ------------------------------------------------------------------

MetadataValue = str | int | float | bool
ID_MAX_CHARS = 512


def check_id(v: object) -> str:
    """A document id: a string of 1..512 characters (valid Unicode). Raises ValueError."""
    if not isinstance(v, str):
        raise ValueError("must be a string")
    if not v:
        raise ValueError("must not be empty")
    if len(v) > ID_MAX_CHARS:
        raise ValueError(f"is {len(v)} characters long; the limit is {ID_MAX_CHARS}")
    return _utf8(v)


def _check_metadata(v: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
    return _check_fields(v, "metadata")


class DocumentBody(_Request):
    """A document as ``PUT /documents/{id}`` takes it (the id is in the path)."""

    title: str = Field("", description="Optional; the model and BM25 read title + ' ' + text.")
    text: str = Field(description="The document's text (not empty).")
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict, description="A flat object of strings, numbers and booleans (filterable).",
        examples=[{"aspect": "treatment"}],
    )

    _check_text = field_validator("text")(_not_blank)
    _check_title = field_validator("title")(_utf8)
    _check_meta = field_validator("metadata")(_check_metadata)


class DocumentIn(DocumentBody):
    id: str = Field(description="1..512 characters.")

    _check_doc_id = field_validator("id")(check_id)


class UpsertBatchRequest(_Request):
    documents: list[DocumentIn] = Field(description="At most max_batch documents; all or none are written.")

    @field_validator("documents")
    @classmethod
    def _check_documents(cls, v: list[DocumentIn]) -> list[DocumentIn]:
        if not v:
            raise ValueError("must not be an empty list")
        return v


class DeleteRequest(_Request):
    ids: list[str] = Field(description="At most max_batch ids; unknown ids are skipped.")

    @field_validator("ids")
    @classmethod
    def _check_ids(cls, v: list[str]) -> list[str]:
        for i, x in enumerate(v):
            try:
                check_id(x)
            except ValueError as e:
                raise ValueError(f"item {i} {e}") from None
        return v


class Document(BaseModel):
    id: str
    title: str
    text: str
    metadata: dict[str, Any]


class UpsertResponse(BaseModel):
    id: str
    result: Literal["created", "replaced"]
    seq: int = Field(description="The write's sequence number in the index's log.")


class UpsertBatchResponse(BaseModel):
    created: int
    replaced: int
    seq: int


class DeleteResponse(BaseModel):
    id: str
    deleted: bool
    seq: int


class DeleteBatchResponse(BaseModel):
    deleted: int = Field(description="How many of the ids existed and were deleted.")
    seq: int


class CompactResponse(BaseModel):
    status: str
    documents: int
    segment: str
    folded: int
    purged: int
    took_ms: float

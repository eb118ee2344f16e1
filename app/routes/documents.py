"""The live index's document API: ``PUT/GET/DELETE /documents/{id}``, ``POST /documents`` (a batch,
all or none) and ``POST /documents/delete``.

A write answers only after its transaction is fsynced (acknowledged = durable) and the new snapshot is
published (read-your-writes). Writes run on their own thread (``Services.writer``), so encoding the
documents never queues behind searches on the compute pool, nor searches behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Request, Response

from app.bodies import documented, read_body
from app.deps import services
from app.errors import DocumentNotFoundError, InvalidInputError
from app.limits import check_batch
from app.schemas import (
    DeleteBatchResponse,
    DeleteRequest,
    DeleteResponse,
    Document,
    DocumentBody,
    ErrorResponse,
    UpsertBatchRequest,
    UpsertBatchResponse,
    UpsertResponse,
    check_id,
)
from app.security import require_read, require_write
from index.live import LiveIndex

router = APIRouter(tags=["documents"])

_WRITE_ERRORS: dict[int | str, dict[str, object]] = {
    r: {"model": ErrorResponse} for r in (400, 401, 403, 404, 409, 413, 422, 503, 507)
}
_READ_ERRORS: dict[int | str, dict[str, object]] = {r: {"model": ErrorResponse} for r in (401, 403, 404, 422, 503)}
T = TypeVar("T")
DocId = Annotated[str, Path(description="The document id (1..512 characters).")]


def _valid_id(doc_id: str) -> str:
    try:
        return check_id(doc_id)
    except ValueError as e:
        raise InvalidInputError(f"id {e}") from None


async def _write(request: Request, fn: Callable[[LiveIndex], T]) -> T:
    svc = services(request)
    with svc.holder.write_lease() as backend:
        live = backend.live  # 409 with the reason when the index is served read-only
        with backend.pinned():  # the writer thread's own lease, as the compute threads take theirs
            return await asyncio.get_running_loop().run_in_executor(svc.writer, fn, live)


@router.put("/documents/{doc_id:path}", response_model=UpsertResponse, status_code=200, responses={
    201: {"model": UpsertResponse}, **_WRITE_ERRORS}, dependencies=[Depends(require_write)],
    openapi_extra=documented(DocumentBody))
async def put_document(doc_id: DocId, request: Request, response: Response) -> UpsertResponse:
    """Insert (201) or replace (200) one document; searchable as soon as this answers."""
    did = _valid_id(doc_id)
    body = await read_body(request, DocumentBody)
    applied = await _write(request, lambda idx: idx.upsert([(did, body.title, body.text, dict(body.metadata))]))
    response.status_code = 201 if applied.created[0] else 200
    return UpsertResponse(id=did, result="created" if applied.created[0] else "replaced", seq=applied.seq)


@router.post("/documents", response_model=UpsertBatchResponse, responses=_WRITE_ERRORS,
             dependencies=[Depends(require_write)], openapi_extra=documented(UpsertBatchRequest))
async def post_documents(request: Request) -> UpsertBatchResponse:
    """Upsert up to ``max_batch`` documents in one transaction: all of them or none."""
    body = await read_body(request, UpsertBatchRequest)
    check_batch(len(body.documents), services(request).settings, "documents")
    seen: set[str] = set()
    for d in body.documents:
        if d.id in seen:
            raise InvalidInputError(f"documents: id {d.id!r} appears more than once in the batch")
        seen.add(d.id)
    docs = [(d.id, d.title, d.text, dict(d.metadata)) for d in body.documents]
    applied = await _write(request, lambda idx: idx.upsert(docs))
    created = sum(applied.created)
    return UpsertBatchResponse(created=created, replaced=len(docs) - created, seq=applied.seq)


@router.get("/documents/{doc_id:path}", response_model=Document, responses=_READ_ERRORS,
            dependencies=[Depends(require_read)])
async def get_document(doc_id: DocId, request: Request) -> Document:
    """The stored document (as last written), or 404."""
    did = _valid_id(doc_id)
    with services(request).holder.lease() as backend:
        hit = (await asyncio.to_thread(backend.index.documents, [did]))[0]
    if hit is None:
        raise DocumentNotFoundError(f"no document with id {did!r}")
    return Document(id=hit.id, title=hit.title, text=hit.text, metadata=hit.metadata)


@router.delete("/documents/{doc_id:path}", response_model=DeleteResponse, responses=_WRITE_ERRORS,
               dependencies=[Depends(require_write)])
async def delete_document(doc_id: DocId, request: Request) -> DeleteResponse:
    """Delete one document (200), or 404 when there is none with this id."""
    did = _valid_id(doc_id)
    applied = await _write(request, lambda idx: idx.delete([did]))
    if not applied.deleted:
        raise DocumentNotFoundError(f"no document with id {did!r}")
    return DeleteResponse(id=did, deleted=True, seq=applied.seq)


@router.post("/documents/delete", response_model=DeleteBatchResponse, responses=_WRITE_ERRORS,
             dependencies=[Depends(require_write)], openapi_extra=documented(DeleteRequest))
async def delete_documents(request: Request) -> DeleteBatchResponse:
    """Delete several documents in one transaction; answers how many existed."""
    body = await read_body(request, DeleteRequest)
    check_batch(len(body.ids), services(request).settings, "ids")
    applied = await _write(request, lambda idx: idx.delete(body.ids))
    return DeleteBatchResponse(deleted=applied.deleted, seq=applied.seq)


"""``POST /admin/reload``: swap in a new model/index pair without downtime; ``POST /admin/compact``:
fold the live index's growing segment and deletions into a new sealed segment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi import APIRouter, Depends, Request

from app.bodies import read_body
from app.deps import services
from app.errors import ReloadUnsupportedError, ServiceError
from app.schemas import CompactResponse, ErrorResponse, ReloadRequest, ReloadResponse
from app.security import require_admin

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


async def _reload_body(request: Request) -> ReloadRequest:
    """The body, parsed only now: after the key check (the router's dependency), so a client without
    the key gets 401/403 whatever it sends, never a parse error that shows the body was read."""
    raw = await request.body()
    if raw.strip() in (b"", b"null"):  # no body, or JSON null: reload the served folders
        return ReloadRequest()
    return await read_body(request, ReloadRequest)  # the same path as every keyed body (app/bodies.py)


@router.post(
    "/admin/reload", response_model=ReloadResponse,
    responses={r: {"model": ErrorResponse} for r in (400, 401, 403, 404, 409, 413, 415, 422)},
    # The body is read by _reload_body (after authentication), so it is documented here by hand.
    openapi_extra={"requestBody": {"required": False, "content": {"application/json": {
        "schema": ReloadRequest.model_json_schema()}}}},
)
async def reload(request: Request) -> ReloadResponse:
    """Load the pair (the served folders, or those named) aside, check it, swap; in-flight requests finish
    on the old pair. A failure leaves the old pair serving and says why (422)."""
    start = time.perf_counter()
    svc = services(request)
    holder, metrics = svc.holder, svc.metrics
    body = await _reload_body(request)
    if svc.settings.workers > 1:
        raise ReloadUnsupportedError(
            f"this is one of {svc.settings.workers} server processes (scripts/serve.py --workers): a reload would "
            "reach this one only; restart the service, or run one process per replica and reload each")
    try:
        new, old = await holder.reload(
            Path(body.model_dir) if body.model_dir else None, Path(body.index_dir) if body.index_dir else None
        )
    except ServiceError:
        metrics.reloads.labels("failed").inc()
        raise
    metrics.reloads.labels("ok").inc()
    metrics.index_size.set(new.index.size)
    metrics.ready.set(1)
    return ReloadResponse(
        model=new.model_name, index=new.index_name, took_ms=round((time.perf_counter() - start) * 1000, 1),
        previous={"model": old.model_name if old else None, "index": old.index_name if old else None},
    )


@router.post("/admin/compact", response_model=CompactResponse,
             responses={r: {"model": ErrorResponse} for r in (401, 403, 404, 409, 503, 507)})
async def compact(request: Request) -> CompactResponse:
    """Fold the growing segment and the deletions into a new sealed FAISS segment, atomically, while
    searches and writes go on (on a thread of its own); 409 when the index is not live."""
    svc = services(request)
    if svc.settings.workers > 1:  # the other processes would keep serving segments this one replaced
        raise ReloadUnsupportedError(
            f"this is one of {svc.settings.workers} server processes (scripts/serve.py --workers): compaction "
            "would change the index under the others; run dssm-compact offline, or serve it with --workers 1")
    with svc.holder.write_lease() as backend:  # a reload waits for it; it never blocks searches
        live = backend.live
        with backend.pinned():
            report = await asyncio.to_thread(live.compact)
    return CompactResponse(**{k: report[k] for k in ("status", "documents", "segment", "folded", "purged", "took_ms")})

"""``POST /admin/reload``: swap in a new model/index pair without downtime; ``POST /admin/compact``:
fold the live index's growing segment and deletions into a new sealed segment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from app.deps import services
from app.errors import ServiceError
from app.schemas import CompactResponse, ErrorResponse, ReloadRequest, ReloadResponse
from app.security import require_admin

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


@router.post(
    "/admin/reload", response_model=ReloadResponse,
    responses={r: {"model": ErrorResponse} for r in (400, 401, 403, 404, 409, 413, 422)},
)
async def reload(request: Request, body: Annotated[ReloadRequest | None, Body()] = None) -> ReloadResponse:
    """Load the pair (the served folders, or those named) aside, check it, swap; in-flight requests finish
    on the old pair. A failure leaves the old pair serving and says why (422)."""
    start = time.perf_counter()
    svc = services(request)
    holder, metrics = svc.holder, svc.metrics
    body = body or ReloadRequest()
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
    with svc.holder.write_lease() as backend:  # a reload waits for it; it never blocks searches
        live = backend.live
        with backend.pinned():
            report = await asyncio.to_thread(live.compact)
    return CompactResponse(**{k: report[k] for k in ("status", "documents", "segment", "folded", "purged", "took_ms")})

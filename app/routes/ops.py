"""Operations: liveness, readiness, and what is being served (``/metrics`` is added by the instrumentator)."""

from __future__ import annotations

import platform
from importlib import metadata

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.deps import services
from app.schemas import HealthResponse, InfoResponse, ReadyResponse

router = APIRouter(tags=["operations"])


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    """Liveness: 200 while the process runs, whether or not a model is loaded."""
    return HealthResponse()


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(request: Request) -> JSONResponse | ReadyResponse:
    """Readiness: 200 only with a loaded, consistent model/index pair; else 503 and the reason."""
    holder = services(request).holder
    b = holder.current
    if b is None:
        return JSONResponse(ReadyResponse(ready=False, reason=holder.reason).model_dump(), status_code=503)
    return ReadyResponse(ready=True, model=b.model_name, index=b.index_name)


@router.get("/info", response_model=InfoResponse)
async def info(request: Request) -> InfoResponse:
    """Model fingerprint, dimension and language; index type, size and build time; versions and limits."""
    svc = services(request)
    holder, settings = svc.holder, svc.settings
    b = holder.current
    return InfoResponse(
        ready=b is not None,
        reason=None if b is not None else holder.reason,
        model=b.model_info() if b is not None else None,
        index=b.index_info() if b is not None else None,
        service={
            "version": _version("lstm-dssm-search"),
            "loaded_at": b.loaded_at if b is not None else None,
            "limits": {
                "max_query_chars": settings.max_query_chars, "max_body_bytes": settings.max_body_bytes,
                "max_batch": settings.max_batch, "max_top_k": settings.max_top_k,
            },
            "micro_batching": settings.micro_batching, "batch_wait_ms": settings.batch_wait_ms,
            "admin_enabled": settings.api_key is not None,
            "writes_enabled": svc.holder.writes,
            "read_key_required": settings.read_key is not None and bool(settings.read_key.get_secret_value()),
        },
        versions={
            "python": platform.python_version(), "torch": _version("torch"), "faiss": _version("faiss-cpu"),
            "numpy": _version("numpy"), "fastapi": _version("fastapi"), "uvicorn": _version("uvicorn"),
        },
    )

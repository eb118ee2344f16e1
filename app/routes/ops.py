"""Operations: liveness, readiness, and what is being served (``/metrics`` is added with the metrics, ``app/metrics.py``)."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from importlib import metadata
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.deps import services
from app.schemas import HealthResponse, InfoResponse, ReadyResponse
from app.security import configured, has_admin_key

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


# HEAD for load balancers and uptime checks: the same handlers (same status), no body (the server drops
# it). Not in the schema: it documents each operation once.
router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(request: Request) -> JSONResponse | ReadyResponse:
    """Readiness: 200 only with a loaded, consistent model/index pair; else 503 and the reason."""
    holder = services(request).holder
    b = holder.current
    if b is None:
        return JSONResponse(ReadyResponse(ready=False, reason=holder.reason).model_dump(), status_code=503)
    return ReadyResponse(ready=True, model=b.model_name, index=b.index_name)


router.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False, response_model=ReadyResponse)


# Keys whose values are file-system locations (model, index, corpus folders, dev data): shown by /info
# only to a caller with the admin key, since they tell an outsider how the host is laid out.
_PATH_KEYS = {"path", "dir", "model_dir", "index_dir", "corpus", "dev_data"}


def _without_paths(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items()
                if not (isinstance(v, str) and (k in _PATH_KEYS or os.path.isabs(v)))}
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    return value


@router.get("/info", response_model=InfoResponse)
async def info(request: Request) -> InfoResponse:
    """Model fingerprint, dimension and language; index type, size and build time; versions and limits.
    File-system paths only with the admin key (``Authorization: Bearer``)."""
    svc = services(request)
    holder, settings = svc.holder, svc.settings
    b = holder.current
    keep: Callable[[Any], Any] = (lambda v: v) if has_admin_key(request) else _without_paths
    return InfoResponse(
        ready=b is not None,
        reason=None if b is not None else holder.reason,
        model=keep(b.model_info()) if b is not None else None,
        index=keep(b.index_info()) if b is not None else None,
        service={
            "version": _version("lstm-dssm-search"),
            "pid": os.getpid(),  # which server process answered (scripts/serve.py --workers N)
            "loaded_at": b.loaded_at if b is not None else None,
            "limits": {
                "max_query_chars": settings.max_query_chars, "max_body_bytes": settings.max_body_bytes,
                "max_batch": settings.max_batch, "max_top_k": settings.max_top_k,
                "max_filter_fields": settings.max_filter_fields, "max_filter_chars": settings.max_filter_chars,
                "max_header_bytes": settings.max_header_bytes, "header_timeout_s": settings.header_timeout_s,
                "body_timeout_s": settings.body_timeout_s, "keep_alive_s": settings.keep_alive_s,
            },
            "micro_batching": settings.micro_batching, "batch_wait_ms": settings.batch_wait_ms,
            "inline_lone_queries": settings.inline_lone_queries,
            "admin_enabled": settings.api_key is not None,
            "writes_enabled": svc.holder.writes,
            "read_key_required": configured(settings.read_key),
        },
        versions={
            "python": platform.python_version(), "torch": _version("torch"), "faiss": _version("faiss-cpu"),
            "onnxruntime": _version("onnxruntime"),
            "numpy": _version("numpy"), "fastapi": _version("fastapi"), "uvicorn": _version("uvicorn"),
        },
    )

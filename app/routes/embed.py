"""``POST /embed`` and the OpenAI-compatible ``POST /v1/embeddings``."""

from __future__ import annotations

import asyncio
import base64
import time

import numpy as np
from fastapi import APIRouter, Depends, Request

from app.backend import Backend
from app.deps import Services, services
from app.errors import InvalidInputError
from app.limits import check_texts
from app.metrics import ServiceMetrics
from app.schemas import (
    Embedding,
    EmbedRequest,
    EmbedResponse,
    ErrorResponse,
    OpenAIEmbeddingRequest,
    OpenAIEmbeddingResponse,
    Usage,
)
from app.security import require_read
from models.featurizer import split_words

router = APIRouter(tags=["embeddings"], dependencies=[Depends(require_read)])

_ERRORS: dict[int | str, dict[str, object]] = {r: {"model": ErrorResponse} for r in (400, 413, 422, 503)}


def _encode(backend: Backend, texts: list[str], tower: str, metrics: ServiceMetrics) -> np.ndarray:
    with backend.pinned():  # the compute thread's own lease (see app.backend)
        t0 = time.perf_counter()
        # The same call, tower and batch size as index building, and the same re-normalisation it
        # applies (index/build.py), so document vectors equal the index's — to float32 rounding, since
        # CPU matrix kernels may round the last bit differently for another batch shape.
        v = backend.encoder.encode(texts, tower=tower)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        metrics.encode_seconds.labels(tower).observe(time.perf_counter() - t0)
        return v


async def _embed(svc: Services, texts: list[str], tower: str) -> tuple[np.ndarray, Backend]:
    with svc.holder.lease() as backend:
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(svc.executor, _encode, backend, texts, tower, svc.metrics)
        return vectors, backend


@router.post("/embed", response_model=EmbedResponse, responses=_ERRORS)
async def embed(body: EmbedRequest, request: Request) -> EmbedResponse:
    """L2-normalised vectors; ``tower="document"`` on ``title + " " + text`` gives what the index holds."""
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    svc = services(request)
    check_texts(texts, svc.settings)
    vectors, backend = await _embed(svc, texts, body.tower)
    return EmbedResponse(
        data=[Embedding(index=i, embedding=v.tolist()) for i, v in enumerate(vectors)],
        model=backend.model_name, dim=backend.encoder.dim, tower=body.tower,
    )


@router.post("/v1/embeddings", response_model=OpenAIEmbeddingResponse, responses=_ERRORS)
async def openai_embeddings(body: OpenAIEmbeddingRequest, request: Request) -> OpenAIEmbeddingResponse:
    """OpenAI's embeddings API: any ``model`` is accepted, the served model is named in the response.

    Queries use the query tower (what a client embeds to search with); ``/embed`` offers the other.
    """
    # Blank, empty and token-id input were refused by the schema (validation_error, as on /embed).
    texts: list[str] = [body.input] if isinstance(body.input, str) else [t for t in body.input if isinstance(t, str)]
    svc = services(request)
    check_texts(texts, svc.settings)
    vectors, backend = await _embed(svc, texts, "query")
    if body.dimensions is not None and body.dimensions != backend.encoder.dim:
        # Checked after encoding so the check and the vectors come from the same pair (a reload may swap it).
        raise InvalidInputError(f"dimensions must be {backend.encoder.dim} for this model (got {body.dimensions})")
    if body.encoding_format == "base64":
        data = [Embedding(index=i, embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()) for i, v in enumerate(vectors)]
    else:
        data = [Embedding(index=i, embedding=v.tolist()) for i, v in enumerate(vectors)]
    n_tokens = sum(len(split_words(t)) for t in texts)  # "tokens" = words as the featurizer splits them
    return OpenAIEmbeddingResponse(data=data, model=backend.model_name, usage=Usage(prompt_tokens=n_tokens, total_tokens=n_tokens))

"""``POST /search`` (JSON body) and ``GET /search?q=…`` (browsers, curl): the same search."""

from __future__ import annotations

import math
import re
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.deps import services
from app.limits import check_filter, check_texts, check_top_k
from app.schemas import ErrorResponse, Mode, SearchRequest, SearchResponse, SearchResult
from app.search import SearchQuery
from app.security import require_read

router = APIRouter(tags=["search"], dependencies=[Depends(require_read)])

_ERRORS: dict[int | str, dict[str, object]] = {r: {"model": ErrorResponse} for r in (400, 413, 422, 503)}


async def _search(body: SearchRequest, request: Request) -> SearchResponse:
    start = time.perf_counter()
    svc = services(request)
    settings = svc.settings
    check_texts([body.query], settings, what="query")
    check_filter(body.filter, settings)
    top_k = body.top_k
    if "top_k" in body.model_fields_set:
        check_top_k(top_k, settings)
    else:
        top_k = min(top_k, settings.max_top_k)  # the default never exceeds a lower configured maximum
    q = SearchQuery(body.query, top_k, body.mode, body.min_score, body.filter or None)
    with svc.holder.lease() as backend:
        hits = await svc.searcher.search(backend, q)
        return SearchResponse(
            query=body.query,
            results=[
                SearchResult(id=h.id, score=h.score, dense_score=h.dense_score, title=h.title, text=h.text,
                             metadata=h.metadata)
                for h in hits
            ],
            took_ms=round((time.perf_counter() - start) * 1000, 3),
            model=backend.model_name,
            index=backend.index_name,
        )


@router.post("/search", response_model=SearchResponse, responses=_ERRORS)
async def search_post(body: SearchRequest, request: Request) -> SearchResponse:
    """Search the index; results best first. ``score`` ranks, ``dense_score`` is the cosine."""
    return await _search(body, request)


# URL numbers are read as JSON numbers: Python's int()/float() (and so a lax parse) would also take
# "1_0" (10), "nan", "inf", " 5" or "+5".
_JSON_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def _url_number(name: str, raw: str | None, integer: bool) -> int | float | None:
    if raw is None:
        return None
    pattern, what = (_JSON_INT, "an integer") if integer else (_JSON_NUMBER, "a finite number")
    value: int | float | None = None
    if pattern.fullmatch(raw):
        value = int(raw) if integer else float(raw)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        raise RequestValidationError([{
            "type": "int_parsing" if integer else "finite_number", "loc": ("query", name),
            "msg": f"Input should be {what} written as in JSON (e.g. {'5' if integer else '0.5'})", "input": raw,
        }])
    return value


@router.get("/search", response_model=SearchResponse, responses=_ERRORS)
async def search_get(
    request: Request,
    q: Annotated[str, Query(description="The query text.")],
    top_k: Annotated[str | None, Query(description="Integer, default 10.", pattern=f"^{_JSON_INT.pattern}$")] = None,
    min_score: Annotated[str | None, Query(description="A finite number.", pattern=f"^{_JSON_NUMBER.pattern}$")] = None,
    mode: Annotated[Mode, Query()] = "dense",
) -> SearchResponse:
    """The same search from a URL: ``/search?q=glaucoma&top_k=5``."""
    k = _url_number("top_k", top_k, integer=True)
    score = _url_number("min_score", min_score, integer=False)
    try:
        given = {"query": q, "min_score": score, "mode": mode} | ({} if k is None else {"top_k": k})
        body = SearchRequest.model_validate(given)
    except ValidationError as e:
        # Report the URL parameter names (q, not the body's "query") under the "query" location.
        errors = [{**err, "loc": ("query", *("q" if x == "query" else x for x in err["loc"]))} for err in e.errors()]
        raise RequestValidationError(errors) from e
    return await _search(body, request)

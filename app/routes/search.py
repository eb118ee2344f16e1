"""``POST /search`` (JSON body) and ``GET /search?q=…`` (browsers, curl): the same search."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.deps import services
from app.limits import check_filter, check_texts, check_top_k
from app.schemas import RESULT_FIELDS, ErrorResponse, Mode, SearchRequest, SearchResponse, SearchResult
from app.search import SearchQuery
from app.security import require_read
from index import Hit

router = APIRouter(tags=["search"], dependencies=[Depends(require_read)])

_ERRORS: dict[int | str, dict[str, object]] = {r: {"model": ErrorResponse} for r in (400, 413, 422, 503)}


async def _search(body: SearchRequest, request: Request) -> Response:
    start = time.perf_counter()
    svc = services(request)
    settings = svc.settings
    check_texts([body.query], settings, what="query")
    check_filter(body.filter, settings)
    # An explicit top_k is checked; the default never exceeds a lower configured maximum.
    top_k = body.top_k if "top_k" in body.model_fields_set else min(body.top_k, settings.max_top_k)
    check_top_k(top_k, settings, body.offset)
    fields = RESULT_FIELDS if body.fields is None else tuple(dict.fromkeys(body.fields))
    q = SearchQuery(body.query, top_k, body.mode, body.min_score, body.filter or None, body.offset)
    with svc.holder.lease() as backend:
        hits = await svc.searcher.search(backend, q)
        took_ms = round((time.perf_counter() - start) * 1000, 3)
        return Response(response_json(body.query, hits, fields, took_ms, backend.model_name, backend.index_name),
                        media_type="application/json")


def response_json(query: str, hits: Sequence[Hit], fields: Sequence[str], took_ms: float, model: str,
                  index: str) -> str:
    """The /search answer, serialised once by pydantic's Rust serialiser (unset = the fields the request
    left out): returning the model would have FastAPI validate it again before serialising it."""
    return SearchResponse(
        query=query,
        results=[SearchResult(id=h.id, score=h.score, **{f: getattr(h, f) for f in fields}) for h in hits],
        took_ms=took_ms, model=model, index=index,
    ).model_dump_json(exclude_unset=True)


@router.post("/search", response_model=SearchResponse, responses=_ERRORS)
async def search_post(body: SearchRequest, request: Request) -> Response:
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
    offset: Annotated[str | None, Query(description="Integer, default 0.", pattern=f"^{_JSON_INT.pattern}$")] = None,
    fields: Annotated[str | None, Query(description="Comma-separated: of dense_score, title, text, metadata "
                                                    "(default all; empty: ids and scores only).")] = None,
) -> Response:
    """The same search from a URL: ``/search?q=glaucoma&top_k=5&offset=5&fields=title``."""
    k = _url_number("top_k", top_k, integer=True)
    score = _url_number("min_score", min_score, integer=False)
    skip = _url_number("offset", offset, integer=True)
    try:
        given = ({"query": q, "min_score": score, "mode": mode} | ({} if k is None else {"top_k": k})
                 | ({} if skip is None else {"offset": skip})
                 | ({} if fields is None else {"fields": [f.strip() for f in fields.split(",") if f.strip()]}))
        body = SearchRequest.model_validate(given)
    except ValidationError as e:
        # Report the URL parameter names (q, not the body's "query") under the "query" location.
        errors = [{**err, "loc": ("query", *("q" if x == "query" else x for x in err["loc"]))} for err in e.errors()]
        raise RequestValidationError(errors) from e
    return await _search(body, request)

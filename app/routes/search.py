"""``POST /search`` (JSON body) and ``GET /search?q=…`` (browsers, curl): the same search."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError

from app.deps import Services, services
from app.limits import check_filter, check_texts, check_top_k
from app.schemas import RESULT_FIELDS, ErrorResponse, Mode, SearchRequest, SearchResponse
from app.search import SearchQuery
from app.security import require_read
from index import Hit

router = APIRouter(tags=["search"], dependencies=[Depends(require_read)])

_ERRORS: dict[int | str, dict[str, object]] = {r: {"model": ErrorResponse} for r in (400, 413, 422, 503)}


async def search_answer(svc: Services, body: SearchRequest) -> bytes:
    """A valid search request → its answer's JSON: the limits (domain errors, 4xx), the search, the
    answer. The one implementation behind ``POST /search``, ``GET /search`` and the fast path
    (``app.fastpath``)."""
    start = time.perf_counter()
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
        return response_json(body.query, hits, fields, took_ms, backend.model_name, backend.index_name)


async def _search(body: SearchRequest, request: Request) -> Response:
    return Response(await search_answer(services(request), body), media_type="application/json")


def response_json(query: str, hits: Sequence[Hit], fields: Sequence[str], took_ms: float, model: str,
                  index: str) -> bytes:
    """The /search answer (the ``SearchResponse`` schema; the fields the request left out are absent),
    serialised once: by orjson from plain dicts, 60 -> 9 µs for ten full hits (returning the model would
    have FastAPI validate it again before serialising it). A value orjson refuses (an integer past 64 bits
    in a document's metadata) goes through pydantic's serialiser instead, which writes the same JSON."""
    keep = [f for f in RESULT_FIELDS if f in fields]  # the schema's order, whatever the request's
    results = [{"id": h.id, "score": h.score, **{f: getattr(h, f) for f in keep}} for h in hits]
    answer = {"query": query, "results": results, "took_ms": took_ms, "model": model, "index": index}
    try:
        return orjson.dumps(answer)
    except orjson.JSONEncodeError:
        return SearchResponse.model_validate(answer).model_dump_json(exclude_unset=True).encode()


@router.post("/search", response_model=SearchResponse, responses=_ERRORS)
async def search_post(body: SearchRequest, request: Request) -> Response:
    """Search the index; results best first. ``score`` ranks, ``dense_score`` is the cosine."""
    return await _search(body, request)


# The route a fast-path answer is labelled with (app.fastpath puts it in the scope, as the router does).
SEARCH_POST_ROUTE = next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is search_post)


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

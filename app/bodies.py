"""Request bodies read by the route itself, *after* authentication: a client without the key gets 401/403
whatever it sends, never a parse error that shows the body was read (the same order as ``POST
/admin/reload``, app/routes/admin.py). Errors take the common path of app/errors.py: a wrong Content-Type
415, not JSON (or nested past the parser's limit) 400, no body or a bad field 422 naming it."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.errors import UnsupportedMediaTypeError
from app.middleware import is_json_content_type

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, model: type[M]) -> M:
    """The body as ``model``. json.loads, as FastAPI parses every other body (it takes escapes such as
    a lone surrogate, which the schema then refuses by name, where a stricter parser would call it
    invalid JSON)."""
    raw = await request.body()  # cached by Starlette: a caller may have read it already
    ctype = request.headers.get("content-type")
    if ctype is not None and not is_json_content_type(ctype.encode("latin-1")):
        raise UnsupportedMediaTypeError(
            f"Content-Type {ctype[:100]!r} is not supported; send the body as application/json")
    if not raw:  # no body at all is a missing body, as FastAPI reports one it parses (not a JSON error)
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: nesting too deep
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": str(e)}}]) from e
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from e


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body that the route reads itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}

"""Domain errors and the one table that turns them (and framework errors) into JSON HTTP responses.

Every error body has the same shape, ``{"error": {"type", "message"}}``, so clients parse one format;
anything unforeseen becomes a 500 with that shape too, never an HTML page or a stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from index import IndexLoadError
from index.errors import IndexFullError, IndexReadOnlyError, IndexWriteError

log = logging.getLogger("app.errors")


class ServiceError(Exception):
    """Base of the errors this service raises on purpose; the message is shown to the client."""

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class NotReadyError(ServiceError):
    """No model/index pair is loaded (yet, or the last load failed)."""


class InputTooLongError(ServiceError):
    """A query or text longer than ``max_query_chars``."""


class TopKOutOfRangeError(ServiceError):
    """``top_k`` outside 1..``max_top_k``."""


class BatchTooLargeError(ServiceError):
    """More texts in one call than ``max_batch``."""


class BodyTooLargeError(ServiceError):
    """A request body over ``max_body_bytes``."""


class BadRequestError(ServiceError):
    """A request that breaks HTTP framing (bad request line, headers or chunk sizes)."""


class BadContentLengthError(BadRequestError):
    """A ``Content-Length`` header that is not a non-negative integer."""


class UnsupportedMediaTypeError(ServiceError):
    """A body sent as something other than JSON (text/plain, a form, multipart …)."""


class BodyTimeoutError(ServiceError):
    """The body did not arrive within ``body_timeout_s`` of the headers (a slow or stalled sender)."""


class HeaderTooLargeError(ServiceError):
    """Request line plus headers over ``max_header_bytes`` (answered by the HTTP protocol, app.protocol)."""


class HeaderTimeoutError(ServiceError):
    """The request line and headers did not arrive within ``header_timeout_s`` (app.protocol)."""


class ClientClosedError(ServiceError):
    """The client went away (or broke the framing) before its request was read: not a server fault."""


class FilterTooLargeError(ServiceError):
    """A ``/search`` filter with more fields, or longer names/values, than the limits allow."""


class InvalidInputError(ServiceError):
    """Well-formed JSON that the service still cannot use (e.g. token ids instead of text)."""


class AdminDisabledError(ServiceError):
    """Admin routes exist only when an API key is configured."""


class AuthMissingError(ServiceError):
    """No ``Authorization: Bearer`` header."""


class AuthInvalidError(ServiceError):
    """A bearer token that is not the configured key."""


class ReloadFailedError(ServiceError):
    """The new model/index pair did not load or validate; the old pair keeps serving."""


class ReloadInProgressError(ServiceError):
    """Another reload is running; reloads are serialised."""


class ReloadUnsupportedError(ServiceError):
    """A reload asked of one of several server processes (``--workers N``): it would reload that one only."""


class DocumentNotFoundError(ServiceError):
    """GET or DELETE of a document id the index does not hold."""


class IndexNotLiveError(ServiceError):
    """A write or compaction on an index served read-only (no write key, or a read-only volume)."""


# The table: domain error → (HTTP status, error type). Subclasses not listed fall back to their base.
ERROR_TABLE: dict[type[ServiceError], tuple[int, str]] = {
    NotReadyError: (503, "not_ready"),
    InputTooLongError: (422, "input_too_long"),
    TopKOutOfRangeError: (422, "top_k_out_of_range"),
    InvalidInputError: (422, "invalid_input"),
    BatchTooLargeError: (413, "batch_too_large"),
    BodyTooLargeError: (413, "body_too_large"),
    BadRequestError: (400, "bad_request"),
    UnsupportedMediaTypeError: (415, "unsupported_media_type"),
    BodyTimeoutError: (408, "body_timeout"),
    HeaderTooLargeError: (431, "header_too_large"),
    HeaderTimeoutError: (408, "header_timeout"),
    # 499 (nginx's "client closed request"): logged and counted apart from 5xx, so a 5xx alert means a
    # server fault; the client never sees it (it is gone).
    ClientClosedError: (499, "client_closed_request"),
    FilterTooLargeError: (422, "filter_too_large"),
    AdminDisabledError: (404, "not_found"),
    AuthMissingError: (401, "unauthorized"),
    AuthInvalidError: (403, "forbidden"),
    ReloadFailedError: (422, "reload_failed"),
    ReloadInProgressError: (409, "reload_in_progress"),
    ReloadUnsupportedError: (409, "reload_unsupported"),
    DocumentNotFoundError: (404, "document_not_found"),
    IndexNotLiveError: (409, "index_read_only"),
}

# Errors of other packages that can surface while serving (e.g. a damaged page of the document store
# read for the first time): the request fails cleanly, the service keeps running.
# Order matters: the first class an error is an instance of decides (subclasses first).
FOREIGN_ERROR_TABLE: dict[type[Exception], tuple[int, str]] = {
    IndexLoadError: (503, "index_unavailable"),
    IndexReadOnlyError: (409, "index_read_only"),  # a write on a read-only volume: never a 500
    IndexFullError: (507, "insufficient_storage"),  # disk full: rolled back, not acknowledged
    IndexWriteError: (503, "write_failed"),
}

# Framework errors (404 route, 405 method, 400 unparsable body …) keep their status with a named type.
HTTP_STATUS_TYPES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
}


def error_body(err_type: str, message: str) -> dict[str, Any]:
    return {"error": {"type": err_type, "message": message}}


def error_response(status: int, err_type: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(err_type, message), status_code=status, headers=headers)


def status_of(exc: ServiceError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return 500, "internal_error"


def error_bytes(exc: ServiceError) -> tuple[int, bytes]:
    """(status, JSON body) of a domain error, for code below the framework (the HTTP protocol) that
    writes raw bytes but must still answer from this table."""
    status, err_type = status_of(exc)
    return status, json.dumps(error_body(err_type, exc.message)).encode()


def service_error_response(exc: ServiceError) -> JSONResponse:
    status, err_type = status_of(exc)
    return error_response(status, err_type, exc.message, exc.headers)


def _loc(loc: tuple[Any, ...]) -> str:
    # ("body", "top_k") → "top_k": the location prefix (body, query string) is noise for a client.
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    parts = [str(p) for p in loc]
    return ".".join(parts) or "body"


def validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    """One readable line per problem; malformed JSON is a 400, not a schema error."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        e = next(e for e in errors if e.get("type") == "json_invalid")
        return 400, "invalid_json", f"request body is not valid JSON: {e.get('ctx', {}).get('error', e.get('msg'))}"
    msgs = []
    for e in errors:
        msg = str(e.get("msg", "invalid value"))
        if e.get("type") == "extra_forbidden":
            msg = "unknown field"
        msgs.append(f"{_loc(tuple(e.get('loc', ())))}: {msg}")
    return 422, "validation_error", "; ".join(msgs)


def install_error_handlers(app: FastAPI) -> None:
    async def on_service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return service_error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        status, err_type, message = validation_message(exc)
        return error_response(status, err_type, message)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        err_type = HTTP_STATUS_TYPES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:
            # FastAPI's message for a body it could not decode (e.g. bytes that are not UTF-8).
            err_type, message = "invalid_body", "request body could not be decoded (JSON in UTF-8 expected)"
        return error_response(exc.status_code, err_type, message, getattr(exc, "headers", None))

    async def on_foreign_error(request: Request, exc: Exception) -> JSONResponse:
        status, err_type = next(v for k, v in FOREIGN_ERROR_TABLE.items() if isinstance(exc, k))
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        return error_response(status, err_type, str(exc))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error (see the server log)")

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    for exc_type in FOREIGN_ERROR_TABLE:
        app.add_exception_handler(exc_type, on_foreign_error)
    app.add_exception_handler(Exception, on_unexpected)

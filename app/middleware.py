"""Pure ASGI middleware: request ids with an access log line, and the request body size limit.

Pure ASGI (not BaseHTTPMiddleware) so they add no task per request and do not buffer responses.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import (
    BadContentLengthError,
    BodyTimeoutError,
    BodyTooLargeError,
    ClientClosedError,
    ServiceError,
    UnsupportedMediaTypeError,
    service_error_response,
)
from .logging_setup import request_id_var

log = logging.getLogger("app.access")

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_NO_ACCESS_LOG = {"/health", "/ready", "/metrics"}  # probes and scrapes would drown the log


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v
    return None


class RequestContextMiddleware:
    """Takes ``X-Request-ID`` from the client (if sane) or makes one; echoes it; logs one line per request
    and hands its status and duration to ``observe`` (the HTTP metrics), so one wrapper does both."""

    def __init__(self, app: ASGIApp, observe: Callable[[Scope, int, float], None] | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = (_header(scope, b"x-request-id") or b"").decode("latin-1")
        # Not uuid4: it reads os.urandom per request (~60 µs under load); an id needs uniqueness, not secrecy.
        rid = given if _VALID_ID.match(given) else f"{random.getrandbits(128):032x}"
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            if self.observe is not None:
                self.observe(scope, status, seconds)
            path = scope.get("path", "")
            if path not in _NO_ACCESS_LOG or status >= 400:
                ms = seconds * 1000
                log.info("%s %s %d %.1fms", scope.get("method"), path, status, ms,
                         extra={"method": scope.get("method"), "path": path, "status": status, "ms": round(ms, 2)})
            request_id_var.reset(token)


def is_json_content_type(content_type: bytes) -> bool:
    # FastAPI's test (email.message): one "/" exactly, main type application, subtype json or *+json;
    # anything else FastAPI would not parse as JSON, so it is refused here (415) rather than half-read.
    media = content_type.split(b";", 1)[0].strip().lower()
    if media.count(b"/") != 1:
        return False
    main, sub = media.split(b"/")
    return main == b"application" and (sub == b"json" or sub.endswith(b"+json"))


class BodyLimitMiddleware:
    """Reads the request body under its limits before any parsing; every refusal comes from the error table.

    - a ``Content-Length`` that is not a number: 400; one over ``max_bytes``: 413 without reading;
    - a body that is not JSON by its ``Content-Type`` (text/plain, a form, multipart): 415 naming the
      expected type (no ``Content-Type`` at all is read as JSON, as FastAPI does). ``/admin/`` routes
      check it themselves, after the key, so that an unauthenticated client learns nothing first;
    - otherwise the body is read (at most the limit, which also covers chunked uploads without a
      length) within ``body_timeout_s`` of the headers (408, so a stalled sender cannot hold the
      request open), and replayed to the app, so an oversize body never reaches JSON parsing;
    - a client that leaves (or breaks the framing) before its body is read gets a 499: the response
      goes nowhere, but every outer layer (access log, metrics) records a client event, not a 5xx.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout_s: float = 30.0,
                 on_disconnect: Callable[[], None] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s
        self.on_disconnect = on_disconnect

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: ServiceError, close: bool = True) -> None:
        if close:
            # The rest of the body (if any) stays unread: the connection cannot carry another request.
            exc.headers = {**(exc.headers or {}), "Connection": "close"}
        await service_error_response(exc)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():  # int() would take "+5", " 5", "1_0"
                await self._refuse(scope, receive, send, BadContentLengthError("invalid Content-Length header"))
                return
            n = int(text)
            if n > self.max_bytes:
                await self._refuse(scope, receive, send, BodyTooLargeError(
                    f"request body is {n} bytes; the limit is {self.max_bytes}"))
                return
        has_body = (declared is not None and declared.strip() != b"0") or _header(scope, b"transfer-encoding") is not None
        ctype = _header(scope, b"content-type")
        if has_body and ctype is not None and not is_json_content_type(ctype) and not scope.get("path", "").startswith("/admin/"):
            await self._refuse(scope, receive, send, UnsupportedMediaTypeError(
                f"Content-Type {ctype.decode('latin-1')[:100]!r} is not supported; send the body as application/json"))
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        if self.on_disconnect is not None:
                            self.on_disconnect()
                        await self._refuse(scope, receive, send, ClientClosedError(
                            "the client closed the connection before its request body was read"), close=False)
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        await self._refuse(scope, receive, send, BodyTooLargeError(
                            f"request body is more than {self.max_bytes} bytes; the limit is {self.max_bytes}"))
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self._refuse(scope, receive, send, BodyTimeoutError(
                f"the request body did not arrive within {self.body_timeout_s:g} s ({size} bytes received)"))
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for disconnect as usual

        await self.app(scope, replay, send)

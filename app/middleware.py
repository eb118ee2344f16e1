"""Pure ASGI middleware: request ids with an access log line, and the request body size limit.

Pure ASGI (not BaseHTTPMiddleware) so they add no task per request and do not buffer responses.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .logging_setup import request_id_var

log = logging.getLogger("app.access")

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_NO_ACCESS_LOG = {"/health", "/ready", "/metrics"}  # probes and scrapes would drown the log


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any], extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": data})


class RequestContextMiddleware:
    """Takes ``X-Request-ID`` from the client (if sane) or makes one; echoes it; logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            path = scope.get("path", "")
            if path not in _NO_ACCESS_LOG or status >= 400:
                ms = (time.perf_counter() - start) * 1000
                log.info("%s %s %d %.1fms", scope.get("method"), path, status, ms,
                         extra={"method": scope.get("method"), "path": path, "status": status, "ms": round(ms, 2)})
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Rejects bodies over ``max_bytes`` with 413 before any parsing.

    A declared Content-Length over the limit is refused without reading; otherwise the body is read
    (at most the limit, which also covers chunked uploads without a length) and replayed to the app,
    so an oversize body never reaches JSON parsing and never becomes a 400 or 500.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, n: int | str) -> dict[str, Any]:
        return error_body("body_too_large", f"request body is {n} bytes; the limit is {self.max_bytes}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                await _send_json(send, 400, error_body("bad_request", "invalid Content-Length header"))
                return
            if n > self.max_bytes:
                await _send_json(send, 413, self._too_large(n), [(b"connection", b"close")])
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_json(send, 413, self._too_large(f"more than {self.max_bytes}"), [(b"connection", b"close")])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for disconnect as usual

        await self.app(scope, replay, send)

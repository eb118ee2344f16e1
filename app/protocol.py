"""The HTTP/1.1 protocol that ``scripts/serve.py`` runs: uvicorn's httptools protocol with a header
size limit and a header timeout, which httptools and uvicorn lack (uvicorn#157).

Why here and not elsewhere: a bare ``scripts/serve.py`` on a port must not be stallable by one client.
httptools parses any header length (one 100 MB header took 14.5 s of the event loop and +780 MB RSS,
while ``/health`` waited seconds), and uvicorn arms no timer on a fresh connection, so a socket that
sends nothing, or half its headers, stays open forever. uvicorn's h11 parser has a size limit
(``h11_max_incomplete_event_size``) but serves 1.5-1.8x fewer requests per second here; this keeps
httptools' speed and adds only a byte count and a timer per request (README, "Limits").

- request line + headers over ``max_header_bytes``: 431 and the connection closed. Bytes are counted as
  they arrive, so memory stays bounded by the limit plus one socket read, whatever the client sends;
- request line + headers not complete within ``header_timeout_s`` of the connection opening, or of the
  first byte of the next request on a keep-alive connection: 408 and closed;
- a request that breaks HTTP framing: uvicorn's 400, but with the service's JSON error body.

The body timeout is the app's (``app.middleware.BodyLimitMiddleware``), so it also holds under any
other server. Every body written here comes from the error table (``app.errors``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .errors import BadRequestError, HeaderTimeoutError, HeaderTooLargeError, ServiceError, error_bytes
from .settings import Settings

log = logging.getLogger("app.protocol")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """httptools + limits. Class attributes are the defaults; :func:`guarded_protocol` sets them from Settings."""

    max_header_bytes: int = 16384
    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head = True  # reading a request line + headers (or waiting for the first one)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._head_started = self.loop.time()
        # A fresh connection must send its request in time, even if it sends nothing at all.
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._on_head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, exc: ServiceError) -> None:
        """Write an error response and close; the parser is not fed any more bytes of this connection."""
        self._refused = True
        if self.transport.is_closing():
            return
        status, body = error_bytes(exc)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(), b"\r\n",
                 b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        self._cancel_head_timer()

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            log.warning("closing %s: request headers not complete within %g s (%d bytes)",
                        self.client, self.header_timeout_s, self._head_bytes)
            self._refuse(HeaderTimeoutError(
                f"request line and headers did not arrive within {self.header_timeout_s:g} s"))

    def _too_large(self) -> None:
        log.warning("closing %s: request headers over %d bytes", self.client, self.max_header_bytes)
        self._refuse(HeaderTooLargeError(
            f"request line and headers are over {self.max_header_bytes} bytes; the limit is {self.max_header_bytes}"))

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return
        if self._in_head:
            if self._head_bytes >= self.max_header_bytes:
                self._too_large()  # never hand the parser more than one read past the limit
                return
            if self._head_bytes == 0:
                self._head_started = self.loop.time()  # the first byte of a request starts its clock
            self._head_bytes += len(data)  # may include the start of a body sent in the same read
        super().data_received(data)
        if self._in_head and self._head_bytes and not self._refused:
            # Still inside the headers after this read: everything counted so far is header bytes.
            if self._head_bytes > self.max_header_bytes:
                self._too_large()
            elif self._head_timer is None:
                # Armed only for a head that did not arrive in one read, so the common request costs
                # no timer; the deadline still counts from its first byte.
                left = self.header_timeout_s - (self.loop.time() - self._head_started)
                self._head_timer = self.loop.call_later(max(left, 0.0), self._on_head_timeout)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's framing errors (bad chunk sizes, invalid request lines …) answered from the error table.
        self._refuse(BadRequestError("invalid HTTP request (malformed request line, headers or chunked body)"))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        self._head_bytes = 0
        if size > self.max_header_bytes:
            # Headers that completed within the read that crossed the limit: still refused.
            self._too_large()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:  # the parser may still call back within the read that got refused
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._in_head = True  # what comes next on this connection is the next request's head

    # Called once the connection has ended (app.workers: the supervisor counts each process's connections).
    on_connection_lost: Callable[[], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)
        if self.on_connection_lost is not None:
            self.on_connection_lost()


class EnvGuardedHttpToolsProtocol(GuardedHttpToolsProtocol):
    """The same protocol with the limits of ``Settings()`` (the DSSM_* environment): uvicorn's worker
    processes (``--workers N``) import their protocol by name, so it cannot be a class made at run time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.max_header_bytes, self.header_timeout_s = _env_limits()
        super().__init__(*args, **kwargs)


@functools.cache
def _env_limits() -> tuple[int, float]:
    s = Settings()
    return s.max_header_bytes, s.header_timeout_s


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with this service's limits (uvicorn instantiates it once per connection)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "max_header_bytes": settings.max_header_bytes, "header_timeout_s": settings.header_timeout_s,
    })

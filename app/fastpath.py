"""``POST /search`` without FastAPI's per-request layers, for requests that will get a 200.

Under load a /search call spent more of its event-loop time in the framework (routing, the request
object, dependency resolution, body parsing and validation wrappers, the exception and telemetry
layers) than in its own work (issue 11's profile in the README). This ASGI layer answers a POST /search
whose body is JSON, valid and allowed, by the same code the route runs (``search_answer``: the same
limits, search and answer bytes). Anything else — bad JSON, a validation error, a limit, a missing or
wrong key, a service not ready, an error while searching — is handed to the FastAPI route with the
body replayed, so every refusal still comes from the one error table and the OpenAPI schema still
describes the route: this layer only ever answers 200s. It sits inside the request-id, metrics, CORS
and body-limit middleware, so those see its requests as any other (``DSSM_SEARCH_FAST_PATH=false``
turns it off, for comparison).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .deps import Services
from .middleware import is_json_content_type
from .routes.search import SEARCH_POST_ROUTE, search_answer
from .schemas import SearchRequest
from .security import bearer_token, configured, read_token_accepted

_JSON = [(b"content-type", b"application/json")]


def _route_path(scope: Scope) -> str:
    # The path the router matches: without the root path a proxy mounts the service under.
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class SearchFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _route_path(scope) != "/search":
            await self.app(scope, receive, send)
            return
        # The body-limit middleware has read the whole body under its limits: it comes as one message.
        first = await receive()
        answer = await self._answer(scope, first)
        if answer is None:
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return first
                return await receive()

            await self.app(scope, replay, send)
            return
        # What the router would have put in the scope: the metrics label requests by route template.
        scope["route"] = SEARCH_POST_ROUTE
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode()), *_JSON]})
        await send({"type": "http.response.body", "body": answer})

    @staticmethod
    async def _answer(scope: Scope, message: Message) -> bytes | None:
        """The 200 answer's bytes, or None: the route answers (whatever it answers)."""
        if message["type"] != "http.request" or message.get("more_body", False):
            return None
        svc: Services | None = getattr(scope["app"].state, "services", None)
        if svc is None or not svc.settings.search_fast_path:
            return None
        headers: dict[bytes, bytes] = {}
        for k, v in scope["headers"]:
            headers.setdefault(k, v)  # the first of repeated headers, as Starlette's Headers.get
        # FastAPI parses a body as JSON only by its Content-Type (none: no parse, a 422).
        if not is_json_content_type(headers.get(b"content-type", b"")):
            return None
        if configured(svc.settings.read_key) and not read_token_accepted(
                svc.settings, bearer_token(headers.get(b"authorization", b"").decode("latin-1"))):
            return None
        try:
            obj: Any = json.loads(message.get("body", b""))  # what FastAPI does (Request.json)
            body = SearchRequest.model_validate(obj)
        except (ValueError, RecursionError, ValidationError):  # bad JSON (or UTF-8), too deep, invalid
            return None
        try:
            return await search_answer(svc, body)
        except Exception:
            # A limit (a domain error) or a failure while searching: the route runs it again and
            # answers from the error table, logging what it logs.
            return None

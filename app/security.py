"""Bearer-key check for admin routes: 404 when no key is configured, 401 without a key, 403 wrong key."""

from __future__ import annotations

import hmac

from fastapi import Request

from .errors import AdminDisabledError, AuthInvalidError, AuthMissingError


async def require_admin(request: Request) -> None:
    # async: a plain def dependency would run in FastAPI's thread pool for no reason.
    key = request.app.state.settings.api_key
    if key is None or not key.get_secret_value():
        # Without a key there is no admin surface at all: look like a missing route, reveal nothing.
        raise AdminDisabledError("Not Found")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthMissingError("missing 'Authorization: Bearer <key>' header", headers={"WWW-Authenticate": "Bearer"})
    # compare_digest on bytes: constant time in the key's content, so timing reveals no prefix.
    if not hmac.compare_digest(token.strip().encode(), key.get_secret_value().encode()):
        raise AuthInvalidError("invalid API key")

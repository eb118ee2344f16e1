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
    token = _bearer(request)
    if not token:
        raise AuthMissingError("missing 'Authorization: Bearer <key>' header", headers={"WWW-Authenticate": "Bearer"})
    if not _matches(token, key.get_secret_value()):
        raise AuthInvalidError("invalid API key")


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _matches(token: str, key: str) -> bool:
    # compare_digest on bytes: constant time in the key's content, so timing reveals no prefix.
    return hmac.compare_digest(token.encode(), key.encode())


def has_admin_key(request: Request) -> bool:
    """True when the request carries the configured admin key (for routes open to all that show more to admins)."""
    key = request.app.state.settings.api_key
    if key is None or not key.get_secret_value():
        return False
    token = _bearer(request)
    return bool(token) and _matches(token, key.get_secret_value())

"""Bearer-key checks, constant-time: admin (``DSSM_API_KEY``), writes (``DSSM_WRITE_KEY``), reads
(``DSSM_READ_KEY``). A route whose key is not configured answers 404 (admin, writes: no such surface) or
is open (reads); without a bearer token 401, with a wrong one 403."""

from __future__ import annotations

import hmac

from fastapi import Request
from pydantic import SecretStr

from .errors import AdminDisabledError, AuthInvalidError, AuthMissingError
from .settings import Settings


def configured(key: SecretStr | None) -> bool:
    """A key is set, and not to the empty string (which switches it off)."""
    return key is not None and bool(key.get_secret_value())


def _required_token(request: Request) -> str:
    token = _bearer(request)
    if not token:
        raise AuthMissingError("missing 'Authorization: Bearer <key>' header", headers={"WWW-Authenticate": "Bearer"})
    return token


async def require_admin(request: Request) -> None:
    # async: a plain def dependency would run in FastAPI's thread pool for no reason.
    key = request.app.state.settings.api_key
    if key is None or not key.get_secret_value():
        # Without a key there is no admin surface at all: look like a missing route, reveal nothing.
        raise AdminDisabledError("Not Found")
    token = _required_token(request)
    if not _matches(token, key.get_secret_value()):
        raise AuthInvalidError("invalid API key")


async def require_write(request: Request) -> None:
    key = request.app.state.settings.write_key
    if not configured(key):
        raise AdminDisabledError("Not Found")  # writes disabled: the routes do not exist
    token = _required_token(request)
    if not _matches(token, key.get_secret_value()):
        raise AuthInvalidError("invalid write key")


async def require_read(request: Request) -> None:
    settings = request.app.state.settings
    if not configured(settings.read_key):
        return
    if not read_token_accepted(settings, _required_token(request)):
        raise AuthInvalidError("invalid read key")


def read_token_accepted(settings: Settings, token: str) -> bool:
    """The bearer token opens reads: it is the read key or the write key (``require_read`` and the
    /search fast path). Both keys compared, no early exit: timing does not say which one matched."""
    if not token or settings.read_key is None:
        return False
    ok = _matches(token, settings.read_key.get_secret_value())
    if configured(settings.write_key):
        assert settings.write_key is not None
        ok = _matches(token, settings.write_key.get_secret_value()) | ok
    return ok


def _bearer(request: Request) -> str:
    return bearer_token(request.headers.get("authorization", ""))


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value, or ""."""
    scheme, _, token = authorization.partition(" ")
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

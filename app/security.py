"""Bearer-key checks, constant-time: admin (``DSSM_API_KEY``), writes (``DSSM_WRITE_KEY``), reads
(``DSSM_READ_KEY``). A route whose key is not configured answers 404 (admin, writes: no such surface) or
is open (reads); without a bearer token 401, with a wrong one 403."""

from __future__ import annotations

import hmac

from fastapi import Request
from pydantic import SecretStr

from .errors import AdminDisabledError, AuthInvalidError, AuthMissingError


def _configured(key: SecretStr | None) -> bool:
    return key is not None and bool(key.get_secret_value())


def _token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthMissingError("missing 'Authorization: Bearer <key>' header", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def _matches(token: str, *keys: SecretStr | None) -> bool:
    # compare_digest on bytes: constant time in the key's content, so timing reveals no prefix. Every
    # configured key is compared (no early exit), so timing does not say which one matched either.
    ok = False
    for key in keys:
        if _configured(key):
            assert key is not None
            ok |= hmac.compare_digest(token.encode(), key.get_secret_value().encode())
    return ok


async def require_admin(request: Request) -> None:
    # async: a plain def dependency would run in FastAPI's thread pool for no reason.
    key = request.app.state.settings.api_key
    if not _configured(key):
        # Without a key there is no admin surface at all: look like a missing route, reveal nothing.
        raise AdminDisabledError("Not Found")
    if not _matches(_token(request), key):
        raise AuthInvalidError("invalid API key")


async def require_write(request: Request) -> None:
    key = request.app.state.settings.write_key
    if not _configured(key):
        raise AdminDisabledError("Not Found")  # writes disabled: the routes do not exist
    if not _matches(_token(request), key):
        raise AuthInvalidError("invalid write key")


async def require_read(request: Request) -> None:
    settings = request.app.state.settings
    if not _configured(settings.read_key):
        return
    if not _matches(_token(request), settings.read_key, settings.write_key):
        raise AuthInvalidError("invalid read key")

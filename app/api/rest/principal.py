"""The caller of a REST request, and the budget envelope that key-authenticated calls get."""

from __future__ import annotations

from typing import cast

from starlette.requests import Request

from app.api.rest.http import ApiError
from app.auth import AuthError, Principal, Role, authorization
from app.keys.access import caller_key
from app.keys.caps import envelope
from app.runtime import Runtime


def runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


async def require(request: Request, *roles: Role) -> Principal:
    """The authenticated caller; 401 without credentials, 403 when its role may not do this."""
    try:
        principal = await runtime(request).auth.authenticate(authorization(request.headers))
    except AuthError as error:
        raise ApiError(error.status, error.message) from None
    if roles and principal.role not in roles:
        raise ApiError(403, f"the {principal.role} role may not do this", code="forbidden")
    return principal


async def key_headers(rt: Runtime, principal: Principal) -> dict[str, str]:
    """The envelope headers for an API-key caller (none for JWT callers).

    Also re-checks the key against its row: a rotated, revoked or expired key is refused.
    """
    if principal.api_key_id is None:
        return {}
    try:
        wallet, key = await caller_key(rt, principal)
    except AuthError as error:
        raise ApiError(error.status, error.message, code=error.code) from None
    return envelope(wallet, key, rt.clock.now()).headers()

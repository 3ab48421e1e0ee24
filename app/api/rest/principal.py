"""The caller of a REST request, and the budget envelope that key-authenticated calls get."""

from __future__ import annotations

from typing import cast

from starlette.requests import Request

from app.api.rest.http import ApiError
from app.auth import AuthError, Principal, Role, authorization
from app.keys.access import envelope_of
from app.runtime import Runtime


def runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


async def require(request: Request, *roles: Role) -> Principal:
    """The authenticated caller; 401 without credentials, 403 when its role may not do this.

    An API key is re-checked against its row (a rotated, revoked or expired key is
    refused), and what that read says is the envelope of every answer to the request
    (``key_headers``), its errors included (``main._api_error``).
    """
    rt = runtime(request)
    try:
        principal = await rt.auth.authenticate(authorization(request.headers))
        if principal.api_key_id is not None:
            request.state.envelope = await envelope_of(
                rt, principal.organization_id, principal.api_key_id, principal.secret_hash
            )
    except AuthError as error:
        raise ApiError(error.status, error.message, code=error.code) from None
    if roles and principal.role not in roles:
        raise ApiError(403, f"the {principal.role} role may not do this", code="forbidden")
    return principal


def key_headers(request: Request) -> dict[str, str]:
    """The envelope headers of the request's API key (none for other callers), for its
    answer: a copy, as answers add their own headers."""
    return dict(getattr(request.state, "envelope", {}))

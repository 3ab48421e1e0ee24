"""Which browser origins may call: CORS for HTTP, Strawberry's Origin check for WebSockets.

Dashboards served from another origin (``CREDITGRAPH_CORS_ORIGINS``) call the API with
bearer tokens, never cookies. HTTP gets Starlette's CORS middleware. Browsers apply no
CORS to WebSockets, so the GraphQL view (Strawberry's ``allowed_origins``) refuses with
403 a handshake whose ``Origin`` is neither the server's own nor listed; clients that
are not browsers send no ``Origin`` and are not affected.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

# How long browsers may cache a preflight's answer, in seconds.
PREFLIGHT_MAX_AGE = 600


def cors_middleware(origins: tuple[str, ...]) -> list[Middleware]:
    """Starlette's CORS for these origins (``*``: any); preflights from others get 400.
    None without origins: no page elsewhere may call, and no request pays for the check
    (a preflight then gets the 405 of a path that takes no OPTIONS)."""
    if not origins:
        return []
    cors = Middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=["authorization", "x-api-key", "content-type", "accept"],
        max_age=PREFLIGHT_MAX_AGE,
    )
    return [cors]

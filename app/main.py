"""The Starlette application: routes, error shapes and the process's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute

from app import console, signin
from app.api.rest import documents, exports, gateway, me, openapi
from app.api.rest.http import ApiError, JSONResponse, error_response
from app.api.rest.principal import key_headers
from app.api.rest.stripe_webhook import stripe_webhook
from app.clock import Clock
from app.cors import cors_middleware
from app.graphql import ide
from app.graphql.response_cache import ResponseCache
from app.graphql.schema import schema
from app.graphql.view import GraphQLView
from app.ledger.writer import WriterClosed
from app.logs import AccessLog
from app.metrics import RequestMetrics, metrics_endpoint
from app.ratelimit import RateLimiter
from app.routing import App
from app.runtime import Runtime
from app.settings import Settings
from app.statements import RECEIPTS_PATH, STATEMENTS_PATH

log = logging.getLogger(__name__)


async def health(_request: Request) -> Response:
    """Liveness: the process serves requests (restart it if not)."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness: the database and the event bus answer and the writer takes writes;
    503 otherwise (send no traffic here), including while shutting down."""
    runtime: Runtime = request.app.state.runtime
    checks = await runtime.readiness()
    ok = all(checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    """An expected failure; to an API key, with the envelope its request already read."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.code, key_headers(request) | exc.headers)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else "http_error"
    return error_response(exc.status_code, str(exc.detail), code, dict(exc.headers or {}))


async def _writer_closed(_request: Request, _exc: Exception) -> Response:
    return error_response(503, "the server is shutting down; retry", "unavailable")


def create_app(
    settings: Settings | None = None,
    clock: Clock | None = None,
    access_log: AccessLog | None = None,
    sign_in: signin.SignInCodes | None = None,
) -> Starlette:
    """The application; ``access_log`` gets a line per HTTP request (``creditgraph serve``
    gives one), ``sign_in`` holds the demo's sign-in codes (``serve --demo`` gives them)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, clock)
        app.state.runtime = runtime
        writing = asyncio.create_task(access_log.run()) if access_log is not None else None
        try:
            yield
        finally:
            await runtime.stop()
            if writing is not None:
                writing.cancel()  # it writes what is left as it stops
                with contextlib.suppress(asyncio.CancelledError):
                    await writing

    limiter = RateLimiter(settings.graphql_rate_per_second, settings.graphql_burst)
    keep_for = timedelta(seconds=settings.graphql_cache_seconds)
    graphql = GraphQLView(
        schema,
        limiter=limiter,
        answers=ResponseCache(settings.graphql_cache_bytes, keep_for) if keep_for else None,
        allowed_origins=settings.cors_origins,
        max_subscriptions_per_connection=settings.graphql_ws_subscriptions_per_connection,
    )
    routes = [  # matched in order: the busiest first
        Route("/api/v1/authorize", gateway.authorize, methods=["POST"]),
        Route("/api/v1/usage", gateway.record_usage, methods=["POST"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", health),
        Route("/readyz", ready),
        Route("/metrics", metrics_endpoint),
        Mount(ide.PREFIX, ide.Assets()),
        Route("/api/v1/me/account", me.account),
        Route("/api/v1/me/usage", me.usage),
        Route("/v1/usage", me.usage),  # the path ByteSpike's pages give for the usage log
        Route("/api/v1/me/usage.csv", exports.usage_csv),
        Route("/api/v1/me/billing/transactions", me.transactions),
        Route("/api/v1/me/billing/transactions.csv", exports.transactions_csv),
        Route("/api/v1/me/ledger.csv", exports.ledger_csv),
        Route(f"{RECEIPTS_PATH}/{{id}}.{{format}}", documents.receipt),
        Route(f"{STATEMENTS_PATH}/{{month}}.{{format}}", documents.statement),
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route(signin.PATH, signin.exchange, methods=["POST"]),
        Route(openapi.PATH, openapi.serve),
    ]
    if settings.console:
        routes += [Route("/", console.to_console), Mount(console.PREFIX, console.Console(settings))]
    paths = {route.path for route in routes if isinstance(route, Route | WebSocketRoute)}

    def route_of(path: str) -> str:
        if path in paths:
            return path
        for prefix in (ide.PREFIX, console.PREFIX):
            if path.startswith(prefix):
                return prefix
        return "other"

    app = App(
        routes,
        lifespan=lifespan,
        middleware=[
            Middleware(RequestMetrics, routes=route_of, access_log=access_log),
            *cors_middleware(settings.cors_origins),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            WriterClosed: _writer_closed,
        },
    )
    app.state.sign_in = sign_in
    app.state.openapi = openapi.render(settings)
    return app

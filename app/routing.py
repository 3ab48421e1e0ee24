"""Starlette's routing, with the app's fixed paths found by a dict lookup.

Starlette tries each route's pattern in turn; every request paid a regular expression
per route listed before its own (three for ``/graphql``). Routes without path
parameters are looked up by path here first, and matched as Starlette would match them
(their method check included); anything else goes through Starlette's router as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send


class FixedPathRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], **options: Any) -> None:
        super().__init__(list(routes), **options)
        self._fixed: dict[tuple[str, str], BaseRoute] = {}
        for route in routes:
            kind = "http" if isinstance(route, Route) else "websocket"
            if isinstance(route, Route | WebSocketRoute) and not route.param_convertors:
                self._fixed.setdefault((kind, route.path), route)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._fixed.get((scope["type"], scope.get("path", "")))  # lifespan: none
        if route is not None:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.setdefault("router", self)
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)


class App(Starlette):
    """Starlette, routing with ``FixedPathRouter``."""

    def __init__(self, routes: Sequence[BaseRoute], **options: Any) -> None:
        lifespan = options.get("lifespan")
        super().__init__(routes=routes, **options)
        self.router = FixedPathRouter(routes, lifespan=lifespan)

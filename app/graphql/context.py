"""What every resolver gets: the runtime and the authenticated caller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

# PEOPLE (the dashboards' roles) is the REST endpoints' too: defined beside the roles.
from app.auth import PEOPLE as PEOPLE
from app.auth import AuthError, Principal, Role
from app.graphql.errors import Code, error
from app.runtime import Runtime

K = TypeVar("K")
V = TypeVar("V")

# Roles that may change things; viewers and API keys only read.
WRITERS = (Role.OWNER, Role.ADMIN, Role.MEMBER)
ADMINS = (Role.OWNER, Role.ADMIN)


@dataclass
class Context:
    runtime: Runtime
    request: Request | WebSocket
    response: Response | None
    principal: Principal | None = None
    auth_error: AuthError | None = None
    # Set by the WebSocket handler from the connection_init payload.
    connection_params: dict[str, Any] | None = field(default=None)
    _loaders: dict[str, DataLoader[Any, Any]] = field(default_factory=dict)
    # Until when the answer being built may be served again (``response_cache.py``);
    # None when it will not be kept.
    cache_until: datetime | None = None
    # When an HTTP request is stopped (``view.py``); None over a WebSocket.
    deadline: asyncio.Timeout | None = None

    def loader(
        self, name: str, load: Callable[[list[K]], Awaitable[Sequence[V]]]
    ) -> DataLoader[K, V]:
        """The request's DataLoader called ``name``: the lookups that a query's fields make
        one by one (a key per usage row, say) are batched into one call of ``load``."""
        loader = self._loaders.get(name)
        if loader is None:
            loader = self._loaders[name] = DataLoader(load_fn=load)
        return cast(DataLoader[K, V], loader)

    def changes_at(self, when: datetime) -> None:
        """A value of the answer moves with the clock alone at ``when``: a kept answer
        must not be served from then on."""
        if self.cache_until is not None and when < self.cache_until:
            self.cache_until = when

    def caller(self, *roles: Role) -> Principal:
        """The signed-in caller, if its role is among ``roles`` (any role when none given)."""
        if self.principal is None:
            message = (
                self.auth_error.message
                if self.auth_error
                else "sign in: send Authorization: Bearer <token>"
            )
            raise error(Code.UNAUTHENTICATED, message)
        if roles and self.principal.role not in roles:
            raise error(Code.FORBIDDEN, f"the {self.principal.role} role may not do this")
        return self.principal


Info = strawberry.Info[Context, None]

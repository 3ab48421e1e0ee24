"""What every resolver gets: the runtime and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from app.auth import AuthError, Principal, Role
from app.graphql.errors import Code, error
from app.runtime import Runtime

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

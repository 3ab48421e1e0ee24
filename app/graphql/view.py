"""The ASGI view at ``/graphql``: HTTP GET and POST, WebSocket, GraphiQL."""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UnsetType

from app.auth import AuthError, Principal
from app.graphql.context import Context
from app.keys.access import caller_key
from app.runtime import Runtime


async def authenticate(runtime: Runtime, authorization: str | None) -> Principal:
    """The caller of ``authorization``; an API key is re-checked against its row."""
    principal = await runtime.auth.authenticate(authorization)
    if principal.api_key_id is not None:
        await caller_key(runtime, principal)
    return principal


class GraphQLView(GraphQL[Context, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        runtime = cast(Runtime, request.app.state.runtime)
        context = Context(runtime, request, response if isinstance(response, Response) else None)
        if isinstance(request, Request):
            authorization = request.headers.get("authorization")
            if authorization:
                try:
                    context.principal = await authenticate(runtime, authorization)
                except AuthError as exc:
                    context.auth_error = exc
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate from ``connection_init``'s ``{"authorization": "Bearer ..."}``."""
        params: dict[str, Any] = context.connection_params or {}
        authorization = params.get("authorization") or params.get("Authorization")
        try:
            context.principal = await authenticate(
                context.runtime, authorization if isinstance(authorization, str) else None
            )
        except AuthError as exc:
            raise ConnectionRejectionError({"message": exc.message}) from None
        return None

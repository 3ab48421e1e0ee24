"""The ASGI view at ``/graphql``: HTTP GET and POST, WebSocket, GraphiQL.

The HTTP rules (CSRF, size limit, media types and status codes) are in ``http.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema import Schema
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from app.auth import AuthError, Principal, authorization
from app.graphql import prepared
from app.graphql.context import Context
from app.graphql.errors import Code
from app.graphql.http import (
    GRAPHQL_RESPONSE,
    JSON,
    HTTPRequest,
    RequestError,
    check_content_type,
    error_response,
    read_body,
    replay,
    response_media_type,
)
from app.graphql.ide import graphiql_html
from app.graphql.limits import check_variables
from app.graphql.prepared import admitted_request
from app.graphql.response_cache import Answer, ResponseCache
from app.graphql.schema import DOCUMENTS
from app.keys.access import envelope_of
from app.ratelimit import RateLimiter, retry_after
from app.runtime import Runtime


async def authenticate(
    runtime: Runtime, authorization: str | None
) -> tuple[Principal, dict[str, str]]:
    """The caller of ``authorization`` and, for an API key (re-checked against its row),
    the envelope headers that read gives."""
    principal = await runtime.auth.authenticate(authorization)
    if principal.api_key_id is None:
        return principal, {}
    headers = await envelope_of(
        runtime, principal.organization_id, principal.api_key_id, principal.secret_hash
    )
    return principal, headers


# Where a WebSocket's state names the caller whose slot it holds (``Sockets``).
SOCKET_CALLER = "socket_caller"


def _media_type(request: Request | WebSocket) -> str:
    return response_media_type(request.headers.get("accept"))


def _timed_out(request: Request, seconds: float) -> Response:
    """The answer to a query stopped at its deadline: an execution's error, so 200 with
    ``data`` null in either media type (the GraphQL over HTTP spec: a request error is
    4xx, a response with data, null included, 2xx)."""
    message = (
        f"the query ran longer than {seconds:g} s and was stopped: ask for less "
        "(smaller pages, fewer fields) or retry later"
    )
    body = {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": Code.TIMEOUT.value}}],
    }
    return Response(orjson.dumps(body), media_type=_media_type(request))


def _failed_before_execution(result: ExecutionResult) -> bool:
    """Parsing, validation or the variables failed: a field's error has a path, these not."""
    return result.data is None and all(e.path is None for e in result.errors or ())


class TextFrames(ASGIWebSocketAdapter):
    """Sends each WebSocket message as a text frame. Strawberry sends bytes as binary
    frames (``encode_json`` is orjson's bytes); a browser hands those to graphql-ws as a
    Blob, which it cannot parse, and it closes the socket (4004)."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        data = self.view.encode_json(message)
        try:
            await self.ws.send_text(data if isinstance(data, str) else data.decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

    async def close(self, code: int, reason: str) -> None:
        # A refusal naming its own close code (``on_ws_connect``'s 4429) closes with it,
        # not with Strawberry's 4403 for every refusal (1011 in the legacy protocol).
        code, reason = getattr(self.ws.state, "close", (code, reason))
        await super().close(code, reason)


class Sockets:
    """The WebSockets each caller holds open (per process, as the rate limits are)."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def take(self, caller: str, most: int) -> bool:
        if self._open[caller] >= most:
            return False
        self._open[caller] += 1
        return True

    def give_back(self, caller: str) -> None:
        self._open[caller] -= 1
        if not self._open[caller]:
            del self._open[caller]


class GraphQLView(GraphQL[Context, None]):
    websocket_adapter_class = TextFrames

    def __init__(
        self,
        schema: Schema,
        *,
        limiter: RateLimiter,
        answers: ResponseCache | None,
        **options: Any,
    ) -> None:
        super().__init__(schema, **options)
        self.limiter = limiter
        self.executable = schema  # as a Schema: the fast path needs its graphql-core one
        self.answers = answers  # None: no answer is kept
        self.sockets = Sockets()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await super().__call__(scope, receive, send)
            finally:  # the socket's slot, if its connection_init took one
                caller = scope.get("state", {}).get(SOCKET_CALLER)
                if caller is not None:
                    self.sockets.give_back(caller)
            return
        request: Request = HTTPRequest(scope, receive)
        runtime = cast(Runtime, request.app.state.runtime)
        envelope: dict[str, str] = {}
        try:
            self._limit(request)
            # Checked before authenticating, so a refused request costs no lookup (and,
            # not authenticated, gets no envelope).
            body: bytes | None = None
            if request.method == "POST":
                check_content_type(request.headers.get("content-type"))
                body = await read_body(request, runtime.settings.max_body_bytes)
            envelope = await self._authenticate(request, runtime)
            # Lifted for a mutation once Strawberry knows it is one (``limits.Limits``).
            request.state.deadline = deadline = asyncio.timeout(
                runtime.settings.graphql_timeout_seconds
            )
            try:
                async with deadline:
                    response = None if body is None else await self._run_admitted(request, body)
                    if response is None:
                        if body is not None:
                            request = HTTPRequest(scope, replay(body, receive))
                        response = await self._run(request)
            except TimeoutError:
                if not deadline.expired():
                    raise  # not ours
                response = _timed_out(request, runtime.settings.graphql_timeout_seconds)
        except RequestError as exc:
            response = error_response(exc, _media_type(request))
        if envelope:  # every answer to an API key carries it, errors included
            response.headers.update(envelope)
        await response(scope, receive, send)

    async def _authenticate(self, request: Request, runtime: Runtime) -> dict[str, str]:
        """Authenticates the caller once for the request (its context reads the outcome
        from the request's state); the envelope headers for an API key."""
        credentials = authorization(request.headers)
        request.state.principal, request.state.auth_error = None, None
        if not credentials:
            return {}
        try:
            request.state.principal, envelope = await authenticate(runtime, credentials)
        except AuthError as exc:
            request.state.auth_error = exc
            return {}
        return envelope

    def _limit(self, request: Request) -> None:
        """The caller's rate: by its credential, else by its address."""
        caller = authorization(request.headers)
        if not caller:
            caller = f"address:{request.client.host if request.client else 'unknown'}"
        wait = self.limiter.take(caller, time.monotonic())
        if wait:
            raise RequestError(
                429,
                "too many requests: slow down and retry after the Retry-After seconds",
                {"Retry-After": retry_after(wait)},
                code=Code.RATE_LIMITED,
            )

    async def _run_admitted(self, request: Request, body: bytes) -> Response | None:
        """The answer to a query already admitted (``prepared.py``), without Strawberry's
        per-request machinery, from the response cache where it may be; None when the
        request is not one (or not JSON)."""
        try:
            data = orjson.loads(body)
        except ValueError:
            return None  # the full path answers it with its 400
        admitted = admitted_request(DOCUMENTS, data)
        if admitted is None:
            return None
        runtime = cast(Runtime, request.app.state.runtime)
        if check_variables(admitted.variables, runtime.settings) is not None:
            return None  # the full path refuses them (``limits.Limits``)
        context = await self._context(request, None)
        principal, answers = context.principal, self.answers
        if answers is None or principal is None or not admitted.prepared.cacheable:
            return await self._execute(request, admitted, context)
        return await self._answer(request, admitted, context, principal, answers)

    async def _answer(
        self,
        request: Request,
        admitted: prepared.Admitted,
        context: Context,
        principal: Principal,
        answers: ResponseCache,
    ) -> Response:
        """A cacheable query's answer: kept, being read by another request, or read now
        (and kept); ``response_cache.py``."""
        media_type = _media_type(request)
        variables = admitted.variables
        key = (
            admitted.query,
            admitted.operation_name,
            orjson.dumps(variables, option=orjson.OPT_SORT_KEYS) if variables else b"",
            principal,
            media_type,
        )
        runtime = context.runtime
        # Taken before anything is read: a write the answer misses moves it (changes.py).
        version = runtime.db.changes.version(principal.organization_id)
        now = runtime.clock.now()
        answered = runtime.metrics.answered
        kept = answers.get(key, version, now)
        if kept is not None:
            answered.add("kept")
            return Response(kept, media_type=media_type)
        if (reading := answers.reading(key, version)) is not None:
            shared = await asyncio.shield(reading)  # the same answer, being read: wait for it
            if shared is not None:
                answered.add("shared")
                return Response(shared, media_type=media_type)
        answered.add("read")
        context.cache_until = now + answers.keep_for
        with answers.read(key, version) as keep:
            response = await self._execute(request, admitted, context)
            until = context.cache_until
            if until is not None and until > now and response.status_code == 200:
                keep(Answer(version, until, bytes(response.body)))
        return response

    async def _execute(
        self, request: Request, admitted: prepared.Admitted, context: Context
    ) -> Response:
        result = await prepared.run(
            self.executable,
            admitted.prepared,
            admitted.operation_name,
            admitted.variables,
            context,
        )
        if result.errors:
            context.cache_until = None  # an answer with errors is not kept
            if _failed_before_execution(result):  # the variables: the spec's 400 rules
                sub_response = await self.get_sub_response(request)
                processed = await self.process_result(request, result)
                return self.create_response(processed, sub_response)
        # What Strawberry's process_result and create_response give an executed
        # operation (no sub-response: resolvers get none on this path), built directly.
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        return Response(orjson.dumps(body), media_type=_media_type(request))

    async def _run(self, request: Request) -> Response:
        """Strawberry's handling, its refusals (plain text there) as ``RequestError``."""
        try:
            return await self.run(request)
        except HTTPException as exc:
            if isinstance(exc.__cause__, InvalidOperationTypeError):
                # A mutation sent as a GET: the spec's status for it.
                raise RequestError(405, exc.reason, {"Allow": "POST"}) from exc
            raise RequestError(exc.status_code, exc.reason) from exc

    def encode_json(self, data: object) -> bytes:
        # orjson: several times faster than json, and the answers are mostly strings.
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except ValueError:  # not JSON, or not UTF-8 (a UnicodeDecodeError, else a fault)
            raise HTTPException(400, "Unable to parse request body as JSON") from None

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        # Where create_response, which is not given the request, finds the media type.
        sub_response.media_type = _media_type(request)
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if _failed_before_execution(result) and _media_type(request) == GRAPHQL_RESPONSE:
            del response["data"]  # the spec's media type: no data entry then, and a 400
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        media_type = sub_response.media_type or JSON
        response.headers["content-type"] = media_type
        # Batches are off, so the response is one dict; application/json stays 200.
        if media_type == GRAPHQL_RESPONSE and "data" not in response_data:
            response.status_code = 400
        return response

    @property
    def graphql_ide_html(self) -> str:
        return graphiql_html()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return await self._context(request, response if isinstance(response, Response) else None)

    async def _context(self, request: Request | WebSocket, response: Response | None) -> Context:
        runtime = cast(Runtime, request.app.state.runtime)
        context = Context(runtime, request, response)
        if isinstance(request, Request):  # authenticated by ``__call__``
            context.principal = request.state.principal
            context.auth_error = request.state.auth_error
            context.deadline = request.state.deadline
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate from ``connection_init``'s ``{"authorization": "Bearer ..."}``."""
        params: dict[str, Any] = context.connection_params or {}
        authorization = params.get("authorization") or params.get("Authorization")
        try:
            principal, _ = await authenticate(
                context.runtime, authorization if isinstance(authorization, str) else None
            )
        except AuthError as exc:
            raise ConnectionRejectionError({"message": exc.message}) from None
        caller, most = (
            f"{principal.organization_id}:{principal.actor}",
            context.runtime.settings.graphql_ws_connections_per_caller,
        )
        if not self.sockets.take(caller, most):
            message = f"too many connections: at most {most} WebSockets per caller; close one"
            context.request.state.close = (4429, message)  # for ``TextFrames.close``
            code = {"code": Code.RATE_LIMITED.value}
            raise ConnectionRejectionError({"message": message, "extensions": code})
        setattr(context.request.state, SOCKET_CALLER, caller)
        context.principal = principal
        return None

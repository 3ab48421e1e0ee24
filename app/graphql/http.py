"""GraphQL over HTTP at ``/graphql``: what a POST must be, and how responses are typed.

CSRF: a page on another site can make a browser send a "simple" request, with no
preflight, carrying the user's ambient credentials: a GET, or a POST of ``text/plain``,
a form or ``multipart/form-data``. A POST here must be ``application/json``, the only
body this API reads; a browser preflights that cross-origin and this API grants CORS
only to the configured origins (app/cors.py), so no other site can make one. The simple
content types are refused (415) whatever headers come with them, so no custom header is
needed or honoured (multipart uploads are off). A GET runs queries only, never a
mutation (405), so it changes nothing; and as credentials are bearer tokens, never
cookies, another site's GET runs as nobody.

Media types (the GraphQL over HTTP spec): a client that prefers
``application/graphql-response+json`` gets it, with 400 and no ``data`` entry when the
request fails before execution (parsing, validation, variables); anyone else gets
``application/json`` with 200 for every GraphQL response, as legacy clients expect.
Requests that are not GraphQL requests at all (malformed JSON, too large, no query) are
4xx either way, with a GraphQL-style body whose code is ``BAD_REQUEST``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from app import http_body
from app.graphql.errors import Code

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
# What a media range in Accept stands for, among the media types we answer with.
_RANGES = {GRAPHQL_RESPONSE: GRAPHQL_RESPONSE, JSON: JSON, "application/*": JSON, "*/*": JSON}


class RequestError(Exception):
    """A request that is not a GraphQL request we run: answered with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        code: Code = Code.BAD_REQUEST,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.code = code


class IndexedHeaders(Headers):
    """Starlette's request headers, looked up through a dict: its own ``get`` scans the
    list, and the view asks for five headers a request."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        self._index: dict[bytes, bytes] = {}
        for name, value in self.raw:
            self._index.setdefault(name, value)  # the first wins, as in Starlette

    def __getitem__(self, key: str) -> str:
        value = self._index.get(key.lower().encode("latin-1"))
        if value is None:
            raise KeyError(key)
        return value.decode("latin-1")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower().encode("latin-1") in self._index

    def get(self, key: str, default: Any = None) -> Any:
        value = self._index.get(key.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")


class HTTPRequest(Request):
    """A request to ``/graphql``, its headers an ``IndexedHeaders``."""

    _indexed: IndexedHeaders | None = None

    @property
    def headers(self) -> Headers:
        if self._indexed is None:
            self._indexed = IndexedHeaders(self.scope)
        return self._indexed


@lru_cache(maxsize=256)
def response_media_type(accept: str | None) -> str:
    """Ours that ``accept`` ranks highest (the first among equals); JSON when none is.
    (Clients send the same few Accept headers: the answers are kept.)"""
    best, best_quality = JSON, 0.0
    for media_range in (accept or "").split(","):
        name, *params = (part.strip() for part in media_range.split(";"))
        media_type = _RANGES.get(name.lower())
        quality = _quality(params)
        if media_type is not None and quality > best_quality:
            best, best_quality = media_type, quality
    return best


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def check_content_type(content_type: str | None) -> None:
    """Refuses every POST body but JSON: this is the CSRF defence (see above)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != JSON:
        sent = media_type or "no Content-Type"
        raise RequestError(415, f"POST /graphql takes Content-Type: {JSON}, not {sent}")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """A POST's body: refused past ``max_bytes`` (413) before any of it is parsed, and
    unless it is a JSON object at a glance (400); the view parses it."""
    try:
        body = await http_body.read_body(request, max_bytes)
    except http_body.BodyTooLarge:
        raise RequestError(413, f"the request body is larger than {max_bytes} bytes") from None
    # Any other JSON value would fail inside strawberry as a fault, not as a bad request.
    start = body.lstrip()[:1]
    if start == b"[":
        # Batches are off: each of its operations would need its own share of the rate,
        # cost and time limits, and HTTP/2 sends many requests at once without them.
        raise RequestError(
            400, "batched requests (a JSON array) are not supported: send one operation a request"
        )
    if start != b"{":
        raise RequestError(400, 'the request body must be a JSON object: {"query": "..."}')
    return body


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with ``body``, already read, put back in front for the view to read."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def error_response(error: RequestError, media_type: str) -> Response:
    """A GraphQL-style body (``errors`` only) for a request that was not run."""
    extensions = {"code": error.code.value}
    body = {"errors": [{"message": error.message, "extensions": extensions}]}
    return Response(
        orjson.dumps(body), status_code=error.status, media_type=media_type, headers=error.headers
    )

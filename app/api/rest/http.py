"""JSON in and out for the REST endpoints: size limits, clear 4xx errors, one error shape."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from app import http_body
from app.fields import has_nul


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """An expected failure, answered as ``{"status", "error", "message", "code"}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or HTTPStatus(status).phrase.lower().replace(" ", "_")
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.code, self.headers)


def invalid(message: str) -> ApiError:
    """A 400 for a malformed field or parameter; the message names it."""
    return ApiError(400, message, code="invalid_input")


def error_response(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "status": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "code": code,
    }
    return JSONResponse(body, status_code=status, headers=headers)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, or a 413 once it grows past ``max_bytes``."""
    try:
        return await http_body.read_body(request, max_bytes)
    except http_body.BodyTooLarge:
        raise ApiError(413, f"the request body is larger than {max_bytes} bytes") from None


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object, or an ApiError (400 malformed, 413 too large)."""
    body = await read_body(request, max_bytes)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "the request body is not valid JSON", code="malformed_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="malformed_json")
    if b"\\u0000" in body and has_nul(data):  # JSON can only write one so
        raise invalid("the request body holds a NUL character (\\u0000), which no field takes")
    return data

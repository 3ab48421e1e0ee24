"""A request's body, read straight from the ASGI channel with a size limit: the one rule
the REST and GraphQL endpoints share (each answers a body too large its own way)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from app.fields import digits


class BodyTooLarge(Exception):
    """The body is (or says it is) larger than the limit; none of it is kept."""


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused past ``max_bytes`` by its Content-Length before anything is
    read, else as it arrives. (Starlette's ``Request.stream`` costs an async generator
    per request; the gateway's calls are small and many.)"""
    declared = request.headers.get("content-length")
    if declared is not None and (not digits(declared) or int(declared) > max_bytes):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)

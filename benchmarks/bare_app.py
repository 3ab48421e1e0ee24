"""A bare Starlette app with the same POST /api/v1/usage shape: the HTTP baseline.

It parses the JSON body, checks the events list and answers a small JSON result per
event, like creditgraph, but touches no database.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def record_usage(request: Request) -> Response:
    body = orjson.loads(await request.body())
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list) or not events:
        return JSONResponse({"message": "events: must be a non-empty list"}, status_code=400)
    results = [
        {
            "request_id": event.get("request_id"),
            "outcome": "billed",
            "cost": {"credits": "0", "usd": "0.00"},
            "error": None,
        }
        for event in events
    ]
    return JSONResponse({"results": results})


app = Starlette(
    routes=[
        Route("/healthz", health),
        Route("/api/v1/usage", record_usage, methods=["POST"]),
    ]
)

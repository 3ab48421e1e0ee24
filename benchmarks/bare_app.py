"""A bare Starlette app with creditgraph's HTTP shapes: the HTTP benchmarks' baseline.

``POST /api/v1/usage`` parses the JSON body, checks the events list and answers a small
JSON result per event; ``POST /api/v1/authorize`` parses the body and answers an
allowed decision; ``POST /graphql`` parses the body and answers it with the document
creditgraph gave for the same operation and variables, read from the JSON file that
``BENCH_GRAPHQL_ANSWERS`` names (``dashboards.py`` captures it). None touches a
database.
"""

from __future__ import annotations

import os
from pathlib import Path
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


def answer_key(operation_name: object, variables: object) -> str:
    """How an answer is found: the operation and its variables (keys sorted)."""
    return orjson.dumps([operation_name, variables], option=orjson.OPT_SORT_KEYS).decode()


_answers_file = os.environ.get("BENCH_GRAPHQL_ANSWERS")
ANSWERS: dict[str, Any] = orjson.loads(Path(_answers_file).read_bytes()) if _answers_file else {}


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


async def authorize(request: Request) -> Response:
    body = orjson.loads(await request.body())
    if not isinstance(body, dict) or not isinstance(body.get("api_key"), str):
        return JSONResponse({"message": "api_key: required"}, status_code=400)
    return JSONResponse(
        {
            "allowed": True,
            "api_key_id": "QXBpS2V5OjE=",
            "organization_id": "T3JnYW5pemF0aW9uOjE=",
            "request_id": body.get("request_id"),
            "hold": {"credits": "50000", "usd": "0.050000"},
        },
        headers={
            "X-RateLimit-Limit": "1000.000000",
            "X-RateLimit-Remaining": "999.950000",
            "X-RateLimit-Reset": "1796300000",
            "X-Quota-Remaining-Credits": "999950000",
            "X-Org-Quota-Remaining-Credits": "999950000",
        },
    )


async def graphql(request: Request) -> Response:
    """Parses the body as a GraphQL server must, answers the captured document (encoded
    per request, as a JSON endpoint builds its answer)."""
    body = orjson.loads(await request.body())
    if not isinstance(body, dict):
        return JSONResponse({"errors": [{"message": "not an object"}]}, status_code=400)
    answer = ANSWERS.get(answer_key(body.get("operationName"), body.get("variables")))
    if answer is None:
        return JSONResponse({"errors": [{"message": "unknown operation"}]}, status_code=400)
    return JSONResponse(answer)


app = Starlette(
    routes=[
        Route("/healthz", health),
        Route("/api/v1/authorize", authorize, methods=["POST"]),
        Route("/api/v1/usage", record_usage, methods=["POST"]),
        Route("/graphql", graphql, methods=["POST"]),
    ]
)

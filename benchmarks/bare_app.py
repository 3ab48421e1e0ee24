"""A bare Starlette app with creditgraph's HTTP shapes: the HTTP benchmarks' baseline.

``POST /api/v1/usage`` parses the JSON body, checks the events list and answers a small
JSON result per event; ``POST /graphql`` parses the body and answers the benchmark's
operations with fixed documents of the same shape. Neither touches a database.
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


# What creditgraph answers to the GraphQL benchmark's operations, as fixed documents.
GRAPHQL_ANSWERS: dict[str, Any] = {
    "Viewer": {
        "viewer": {
            "id": "bench",
            "role": "VIEWER",
            "organization": {"id": "T3JnYW5pemF0aW9uOjE=", "slug": "bench", "name": "bench"},
        }
    },
    # The full contract operation on an organization on the bytez-payg plan: its
    # allocation lot and the benchmark's grant.
    "WalletOverview": {
        "viewer": {
            "organization": {
                "id": "T3JnYW5pemF0aW9uOjE=",
                "wallet": {
                    "id": "V2FsbGV0OjE=",
                    "balance": {"credits": "1000005000000", "usd": "1000005.000000"},
                    "purchasedLast28Days": {"credits": "0", "usd": "0.000000"},
                    "lots": {
                        "edges": [
                            {
                                "node": {
                                    "id": "Q3JlZGl0TG90OjI=",
                                    "source": "PLAN_ALLOCATION",
                                    "original": {"credits": "5000000", "usd": "5.000000"},
                                    "remaining": {"credits": "5000000", "usd": "5.000000"},
                                    "expiresAt": "2026-12-21T14:03:49.406358+00:00",
                                    "createdAt": "2026-11-23T14:03:49.410099+00:00",
                                }
                            },
                            {
                                "node": {
                                    "id": "Q3JlZGl0TG90OjE=",
                                    "source": "ADJUSTMENT",
                                    "original": {
                                        "credits": "1000000000000",
                                        "usd": "1000000.000000",
                                    },
                                    "remaining": {
                                        "credits": "1000000000000",
                                        "usd": "1000000.000000",
                                    },
                                    "expiresAt": None,
                                    "createdAt": "2026-11-23T14:03:49.346230+00:00",
                                }
                            },
                        ]
                    },
                },
                "subscription": {
                    "plan": {"code": "bytez-payg", "name": "Bytez Pay-as-you-go"},
                    "currentPeriodStart": "2026-11-23T14:03:49.406358+00:00",
                    "currentPeriodEnd": "2026-12-21T14:03:49.406358+00:00",
                    "allocationRemaining": {"credits": "5000000", "usd": "5.000000"},
                },
                "autoReload": {
                    "enabled": False,
                    "threshold": {"credits": "3000000", "usd": "3.000000"},
                    "amount": {"credits": "10000000", "usd": "10.000000"},
                    "monthlyMax": {"credits": "100000000", "usd": "100.000000"},
                    "reloadedThisMonth": {"credits": "0", "usd": "0.000000"},
                },
                "spendCap": {
                    "monthlyLimit": None,
                    "spentThisMonth": {"credits": "0", "usd": "0.000000"},
                },
                "entitlement": {
                    "tier": 0,
                    "maxOpenModelParamsB": 7,
                    "concurrentRequests": 1,
                    "nextTier": {
                        "tier": 1,
                        "purchaseNeeded": {"credits": "3000000", "usd": "3.000000"},
                    },
                },
            }
        }
    },
}


async def graphql(request: Request) -> Response:
    """Parses the body as a GraphQL server must, answers a fixed document per operation."""
    body = orjson.loads(await request.body())
    name = body.get("operationName") if isinstance(body, dict) else None
    if name not in GRAPHQL_ANSWERS:
        return JSONResponse({"errors": [{"message": "unknown operation"}]}, status_code=400)
    return JSONResponse({"data": GRAPHQL_ANSWERS[name]})


app = Starlette(
    routes=[
        Route("/healthz", health),
        Route("/api/v1/usage", record_usage, methods=["POST"]),
        Route("/graphql", graphql, methods=["POST"]),
    ]
)

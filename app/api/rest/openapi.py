"""The REST API's OpenAPI 3.1 description, served at ``GET /api/v1/openapi.json``.

Built from what the handlers check with: the list filters' names (``params``), the
field limits (``fields``, ``usage.wire``), the enums of kinds and statuses, the page
size and the configured body and batch limits, so none of those can drift from the
code. The routes themselves are the app's: ``tests/fuzz/test_openapi.py`` checks that
every REST route is described with its methods and nothing else is, and the fuzzer
(``tests/fuzz/test_rest_fuzz.py``) that every answer matches what is described here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from app.api.rest import params
from app.auth import LEDGER_READERS, PEOPLE, TOKEN_ROLES, Role
from app.fields import MAX_JSON_INT, MAX_TEXT
from app.ledger.tables import EntryKind
from app.money import CREDITS_PER_USD, MAX_CREDITS
from app.pages import MAX_PAGE
from app.payments.tables import TransactionKind, TransactionStatus
from app.settings import Settings
from app.statements import FORMATS, RECEIPTS_PATH, STATEMENTS_PATH
from app.statements.figures import Line
from app.statements.tables import ReceiptKind
from app.usage.tables import UsageStatus
from app.usage.wire import MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS

PATH = "/api/v1/openapi.json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object of exactly ``properties``, all required but ``optional``."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def page_of(item: str) -> Schema:
    return obj({"data": {"type": "array", "items": ref(item)}, "next_cursor": nullable(STRING)})


def spelt(values: type[StrEnum]) -> Schema:
    """An enum as a query parameter takes it: lowercase, or GraphQL's UPPERCASE name."""
    return {"type": "string", "enum": [*values, *(value.upper() for value in values)]}


STRING = {"type": "string"}
TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": r"\S"}
TIME = {"type": "string", "format": "date-time"}
COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_JSON_INT}
DIGITS = r"^[0-9]+(\.[0-9]{1,6})?$"
# A USD amount in: a decimal string of at most six places, or whole dollars.
USD_IN = {
    "oneOf": [
        {"type": "string", "pattern": DIGITS},
        {"type": "integer", "minimum": 0, "maximum": MAX_CREDITS // CREDITS_PER_USD},
    ]
}
USD = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{6}$"}
GLOBAL_ID = {"type": "string", "description": "An opaque global id, as GraphQL's."}


def _schemas(settings: Settings) -> dict[str, Schema]:
    usage_event = obj(
        {
            "request_id": TEXT,
            "api_key_id": GLOBAL_ID | {"description": "The ApiKey id authorize answered."},
            "model": TEXT,
            "status": {"type": "string", "enum": list(UsageStatus), "default": "succeeded"},
            "action": nullable(STRING),
            "prompt_tokens": nullable(COUNT),
            "completion_tokens": nullable(COUNT),
            "units": {
                "oneOf": [{"type": "string", "pattern": DIGITS}, COUNT],
                "description": "Seconds, minutes or a count, as the model is priced.",
            },
            "provider_cost_usd": nullable(USD_IN),
            "occurred_at": nullable(TIME),
            "tags": nullable(
                {
                    "type": "object",
                    "maxProperties": MAX_TAGS,
                    "propertyNames": {"maxLength": MAX_TAG_KEY},
                    "additionalProperties": {"type": "string", "maxLength": MAX_TAG_VALUE},
                }
            ),
        },
        optional=(
            "status",
            "action",
            "prompt_tokens",
            "completion_tokens",
            "units",
            "provider_cost_usd",
            "occurred_at",
            "tags",
        ),
    )
    usage_event["additionalProperties"] = True
    amount = obj({"credits": {"type": "string", "pattern": r"^-?[0-9]+$"}, "usd": USD})
    amount["description"] = "Credits (millionths of the wallet's unit) and their USD, exact."
    return {
        "Error": obj(
            {
                "status": {"type": "integer"},
                "error": {"type": "string", "description": "The status's phrase."},
                "message": {"type": "string", "description": "What is wrong, for people."},
                "code": {"type": "string", "description": "What is wrong, for programs."},
            }
        ),
        "Amount": amount,
        "AuthorizeRequest": {
            "type": "object",
            "properties": {
                "api_key": TEXT,
                "model": TEXT,
                "request_id": TEXT,
                "hold_usd": USD_IN
                | {"description": "The hold; give it or the max tokens, not both."},
                "max_prompt_tokens": nullable(COUNT),
                "max_completion_tokens": nullable(COUNT),
                "dry_run": {"type": "boolean", "default": False},
                "autoScale": nullable({"type": "boolean"}),
            },
            "required": ["api_key", "model", "request_id"],
        },
        "Authorized": obj(
            {
                "allowed": {"const": True},
                "dry_run": {"type": "boolean"},
                "api_key_id": GLOBAL_ID,
                "organization_id": GLOBAL_ID,
                "request_id": STRING,
                "hold": ref("Amount"),
                "auto_scale_purchase": nullable(ref("Amount")),
                "priority": {"type": "boolean"},
            }
        ),
        "UsageEvent": usage_event,
        "UsageBatch": {
            "type": "object",
            "properties": {
                "events": {
                    "type": "array",
                    "items": ref("UsageEvent"),
                    "minItems": 1,
                    "maxItems": settings.usage_batch_max,
                }
            },
            "required": ["events"],
        },
        "UsageResults": obj(
            {
                "results": {
                    "type": "array",
                    "items": obj(
                        {
                            "request_id": STRING,
                            "outcome": {
                                "type": "string",
                                "enum": ["billed", "duplicate", "not_billed", "rejected"],
                            },
                            "cost": ref("Amount"),
                            "error": nullable(obj({"code": STRING, "message": STRING})),
                        }
                    ),
                }
            }
        ),
        "Account": obj(
            {
                "organization": obj(
                    {
                        "id": GLOBAL_ID,
                        "slug": STRING,
                        "name": STRING,
                        "spend_cap_monthly": nullable(ref("Amount")),
                    }
                ),
                "role": {"type": "string", "enum": list(Role)},
                "balance": USD,
                "wallet": obj(
                    {"balance": ref("Amount"), "held": ref("Amount"), "available": ref("Amount")}
                ),
                "api_key": nullable(
                    obj(
                        {
                            "id": GLOBAL_ID,
                            "name": STRING,
                            "prefix": STRING,
                            "group": STRING,
                            "spent": ref("Amount"),
                            "quota": nullable(ref("Amount")),
                        }
                    )
                ),
            }
        ),
        "UsageRecord": obj(
            {
                "id": GLOBAL_ID,
                "request_id": STRING,
                "api_key_id": GLOBAL_ID,
                "model": STRING,
                "action": STRING,
                "status": {"type": "string", "enum": list(UsageStatus)},
                "prompt_tokens": {"type": "integer"},
                "completion_tokens": {"type": "integer"},
                "units": STRING,
                "credits": {"type": "string", "pattern": r"^-?[0-9]+$"},
                "cost": ref("Amount"),
                "tags": {"type": "object", "additionalProperties": STRING},
                "occurred_at": TIME,
                "created_at": TIME,
            }
        ),
        "UsagePage": page_of("UsageRecord"),
        "Transaction": obj(
            {
                "id": GLOBAL_ID,
                "kind": {"type": "string", "enum": list(TransactionKind)},
                "status": {"type": "string", "enum": list(TransactionStatus)},
                "amount": ref("Amount"),
                "credits_bought": ref("Amount"),
                "bonus": ref("Amount"),
                "bonus_percent": {"type": "string"},
                "credits": ref("Amount"),
                "refunded": ref("Amount"),
                "shortfall": ref("Amount"),
                "failure_reason": nullable(STRING),
                "memo": nullable(STRING),
                "top_up_id": nullable(GLOBAL_ID),
                "created_at": TIME,
                "settled_at": nullable(TIME),
            }
        ),
        "TransactionPage": page_of("Transaction"),
        "Organization": obj({"id": GLOBAL_ID, "slug": STRING, "name": STRING}),
        "Receipt": obj(
            {
                "object": {"const": "receipt"},
                "id": GLOBAL_ID,
                "number": STRING,
                "kind": {"type": "string", "enum": list(ReceiptKind)},
                "issued_at": TIME,
                "organization": ref("Organization"),
                "description": STRING,
                "currency": STRING,
                "amount": USD,
                "tax": nullable(USD),
                "unit": {"type": "string", "enum": ["usd", "credit"]},
                "credits": ref("Amount"),
                "bonus": ref("Amount"),
                "payment_method": nullable(obj({"brand": STRING, "last4": nullable(STRING)})),
                "refund_of": nullable(STRING),
                "transaction_id": nullable(GLOBAL_ID),
                "provider": nullable(STRING),
                "provider_reference": nullable(STRING),
            }
        ),
        "Statement": obj(
            {
                "object": {"const": "statement"},
                "month": {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}$"},
                "period_start": TIME,
                "period_end": TIME,
                "closed": {"type": "boolean"},
                "organization": ref("Organization"),
                "unit": {"type": "string", "enum": ["usd", "credit"]},
                "opening_balance": ref("Amount"),
                **{line.value: ref("Amount") for line in Line},
                "closing_balance": ref("Amount"),
                "usage_by_model_and_action": {
                    "type": "array",
                    "items": obj(
                        {
                            "model": STRING,
                            "action": STRING,
                            "requests": {"type": "integer"},
                            "amount": ref("Amount"),
                        }
                    ),
                },
                "receipts": {
                    "type": "array",
                    "items": obj(
                        {
                            "id": GLOBAL_ID,
                            "number": STRING,
                            "kind": {"type": "string", "enum": list(ReceiptKind)},
                            "issued_at": TIME,
                            "description": STRING,
                            "currency": STRING,
                            "amount": USD,
                        }
                    ),
                },
            }
        ),
        "StripeEvent": {
            "type": "object",
            "description": "An event as Stripe sends it; only its signature makes it count.",
            "properties": {
                "id": STRING,
                "type": STRING,
                "data": {
                    "type": "object",
                    "properties": {"object": {"type": "object"}},
                    "required": ["object"],
                },
            },
            "required": ["id", "type", "data"],
        },
        "Received": obj({"received": {"const": True}, "outcome": STRING}),
        "SignInCode": {
            "type": "object",
            "properties": {"code": STRING},
            "required": ["code"],
        },
        "SignInToken": obj({"token": STRING}),
        "Health": obj({"status": {"const": "ok"}}),
        "Readiness": obj(
            {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            }
        ),
    }


# The envelope an API key's answers carry (README: "The gateway API").
ENVELOPE = {
    name: {"description": what, "schema": STRING}
    for name, what in {
        "X-RateLimit-Limit": "USD: the bucket closest to constraining.",
        "X-RateLimit-Remaining": "USD left in that bucket, rounded down.",
        "X-RateLimit-Reset": "Unix time when waiting frees more of it.",
        "X-Quota-Remaining-Credits": "USD: the key's quota left, else the wallet's.",
        "X-Org-Quota-Remaining-Credits": "USD: the wallet's available balance.",
    }.items()
}

WHY = {
    400: "A malformed body, field or parameter; the message names it.",
    401: "No credentials, or credentials that are not valid.",
    402: "The wallet (or what autoScale may buy) cannot pay for the call.",
    403: "The caller's role, key or plan may not do this.",
    404: "Nothing there.",
    409: "The request id is already held or billed.",
    413: "The body, or the batch, is larger than the server takes.",
    429: "A rate, concurrency or spend limit; Retry-After when waiting helps.",
    503: "The server is shutting down; retry.",
}


def errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": WHY[status],
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for status in statuses
    }


def ok(schema: Schema, description: str, *, envelope: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if envelope:
        answer["headers"] = ENVELOPE
    return {"200": answer}


def csv_ok(description: str) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "headers": ENVELOPE,
            "content": {"text/csv": {"schema": STRING}},
        }
    }


def query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


QUERY = {
    "request_id": query("request_id", STRING, "Only this request's record."),
    "model": query("model", STRING, "Only calls of this model."),
    "since": query("since", TIME, "From this time on (a zone is required)."),
    "until": query("until", TIME, "Before this time (a zone is required)."),
    "limit": query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": params.DEFAULT_LIMIT},
        "Rows per page.",
    ),
    "cursor": query("cursor", STRING, "The next_cursor of the page before."),
    "entry_kind": query("kind", spelt(EntryKind), "Only entries of this kind."),
    "kind": query("kind", spelt(TransactionKind), "Only transactions of this kind."),
    "status": query("status", spelt(TransactionStatus), "Only transactions in this status."),
}
PAGED = ("limit", "cursor")


def parameters(*names: str) -> list[dict[str, Any]]:
    return [QUERY[name] for name in names]


# Who may call: a JWT of these roles (``bearer``) or an API key, as bearer or x-api-key.
ANYONE = [{"bearer": list(TOKEN_ROLES)}, {"apiKey": []}, {"apiKeyHeader": []}]
PEOPLE_ONLY = [{"bearer": list(PEOPLE)}]
SERVICE = [{"bearer": [Role.SERVICE.value]}]
LEDGER = [{"bearer": list(LEDGER_READERS)}]  # not API keys: it lists every key's calls


def _body(schema: Schema, description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _document_path(kind: str, name: str, name_schema: Schema) -> dict[str, Any]:
    schema = ref("Receipt") if kind == "receipt" else ref("Statement")
    return {
        "get": {
            "operationId": f"get_{kind}",
            "summary": f"A {kind} as JSON or PDF, for people of its organization.",
            "tags": ["documents"],
            "security": PEOPLE_ONLY,
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": name_schema},
                {
                    "name": "format",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": list(FORMATS)},
                },
            ],
            "responses": {
                "200": {
                    "description": f"The {kind}, downloaded as an attachment.",
                    "content": {
                        "application/json": {"schema": schema},
                        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                **errors(401, 403),
                "404": {
                    "description": "Another organization's, out of range or malformed.",
                    "content": {"application/json": {"schema": ref("Error")}},
                },
            },
        }
    }


def _paths(settings: Settings) -> dict[str, Any]:
    me_usage = {
        "get": {
            "operationId": "list_usage",
            "summary": "The usage log, newest first (an API key: its own calls).",
            "tags": ["account"],
            "security": ANYONE,
            "parameters": parameters(*params.USAGE_FILTERS, *PAGED),
            "responses": ok(ref("UsagePage"), "A page of usage records.", envelope=True)
            | errors(400, 401),
        }
    }
    return {
        "/api/v1/authorize": {
            "post": {
                "operationId": "authorize",
                "summary": "Before a call: check the key, its caps and the wallet; place a hold.",
                "tags": ["gateway"],
                "security": [{}],
                "description": "The API key is in the body. With neither hold_usd nor max "
                "tokens the wallet must merely be positive; dry_run answers from a read.",
                "requestBody": _body(ref("AuthorizeRequest"), "The call to authorize."),
                "responses": ok(ref("Authorized"), "Allowed; the hold placed.", envelope=True)
                | errors(400, 401, 402, 403, 409, 413, 429, 503),
            }
        },
        "/api/v1/usage": {
            "post": {
                "operationId": "record_usage",
                "summary": "After calls: bill them, idempotent by request_id.",
                "tags": ["gateway"],
                "security": SERVICE,
                "description": f"Up to {settings.usage_batch_max} events; a malformed one is "
                "answered `rejected` in its place, the others are billed.",
                "requestBody": _body(ref("UsageBatch"), "The events, answered in their order."),
                "responses": ok(ref("UsageResults"), "Each event's outcome, in input order.")
                | errors(400, 401, 403, 413, 503),
            }
        },
        "/api/v1/me/account": {
            "get": {
                "operationId": "get_account",
                "summary": "The organization, its wallet and (an API key) the key.",
                "tags": ["account"],
                "security": ANYONE,
                "responses": ok(ref("Account"), "The caller's account.", envelope=True)
                | errors(401),
            }
        },
        "/api/v1/me/usage": me_usage,
        "/v1/usage": {"get": me_usage["get"] | {"operationId": "list_usage_v1"}},
        "/api/v1/me/usage.csv": {
            "get": {
                "operationId": "export_usage",
                "summary": "The usage log as CSV, streamed newest first.",
                "tags": ["exports"],
                "security": ANYONE,
                "parameters": parameters(*params.USAGE_FILTERS),
                "responses": csv_ok("The rows.") | errors(400, 401),
            }
        },
        "/api/v1/me/billing/transactions": {
            "get": {
                "operationId": "list_transactions",
                "summary": "Every wallet movement that was not an API call, newest first.",
                "tags": ["account"],
                "security": ANYONE,
                "parameters": parameters(*params.TRANSACTION_FILTERS, *PAGED),
                "responses": ok(ref("TransactionPage"), "A page.", envelope=True)
                | errors(400, 401),
            }
        },
        "/api/v1/me/billing/transactions.csv": {
            "get": {
                "operationId": "export_transactions",
                "summary": "The billing transactions as CSV, streamed newest first.",
                "tags": ["exports"],
                "security": ANYONE,
                "parameters": parameters(*params.TRANSACTION_FILTERS),
                "responses": csv_ok("The rows.") | errors(400, 401),
            }
        },
        "/api/v1/me/ledger.csv": {
            "get": {
                "operationId": "export_ledger",
                "summary": "The wallet's ledger as CSV, streamed newest first.",
                "tags": ["exports"],
                "security": LEDGER,
                "parameters": [
                    QUERY["entry_kind"] if name == "kind" else QUERY[name]
                    for name in params.ENTRY_FILTERS
                ],
                "responses": csv_ok("The rows.") | errors(400, 401, 403),
            }
        },
        f"{RECEIPTS_PATH}/{{id}}.{{format}}": _document_path("receipt", "id", GLOBAL_ID),
        f"{STATEMENTS_PATH}/{{month}}.{{format}}": _document_path(
            "statement",
            "month",
            {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}$", "description": "2026-11"},
        ),
        "/webhooks/stripe": {
            "post": {
                "operationId": "stripe_webhook",
                "summary": "Stripe's signed events about payments, refunds and plans.",
                "tags": ["payments"],
                "security": [{}],
                "parameters": [
                    {
                        "name": "Stripe-Signature",
                        "in": "header",
                        "required": True,
                        "schema": STRING,
                        "description": "t=<unix time>,v1=<HMAC-SHA256 of t.body>, "
                        "with the endpoint's signing secret.",
                    }
                ],
                "requestBody": _body(ref("StripeEvent"), "The event."),
                "responses": ok(ref("Received"), "Recorded (and processed, once).")
                | {
                    "400": {
                        "description": "The signature does not verify, or the body is "
                        "not an event; nothing changes.",
                        "content": {"application/json": {"schema": ref("Error")}},
                    },
                    "404": {
                        "description": "Stripe is not configured on this server.",
                        "content": {"application/json": {"schema": ref("Error")}},
                    },
                }
                | errors(413, 503),
            }
        },
        "/console/session": {
            "post": {
                "operationId": "console_session",
                "summary": "The demo's sign-in link code, exchanged once for an owner JWT.",
                "tags": ["console"],
                "security": [{}],
                "requestBody": _body(ref("SignInCode"), "The code from the link's hash."),
                "responses": ok(ref("SignInToken"), "An owner JWT (12 hours).")
                | errors(400, 401, 413)
                | {
                    "404": {
                        "description": "Not `creditgraph serve --demo`: no codes exist.",
                        "content": {"application/json": {"schema": ref("Error")}},
                    }
                },
            }
        },
        PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "tags": ["operations"],
                "security": [{}],
                "responses": ok({"type": "object"}, "OpenAPI 3.1."),
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Liveness: the process serves requests.",
                "tags": ["operations"],
                "security": [{}],
                "responses": ok(ref("Health"), "Alive."),
            }
        },
        "/readyz": {
            "get": {
                "operationId": "ready",
                "summary": "Readiness: the database, the event bus and the writer answer.",
                "tags": ["operations"],
                "security": [{}],
                "responses": ok(ref("Readiness"), "Ready.")
                | {
                    "503": {
                        "description": "Not ready (or shutting down): send no traffic here.",
                        "content": {"application/json": {"schema": ref("Readiness")}},
                    }
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics.",
                "tags": ["operations"],
                "security": [{}],
                "responses": {
                    "200": {
                        "description": "The text exposition format.",
                        "content": {"text/plain": {"schema": STRING}},
                    }
                },
            }
        },
    }


def document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of a server with ``settings``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "creditgraph REST API",
            "version": "1",
            "description": "The gateway's calls, the account's lists and CSV downloads, "
            "receipts and statements, Stripe's webhook and the demo's sign-in. Everything "
            "else is GraphQL, at /graphql (its schema: `creditgraph schema`). Errors are "
            "`{status, error, message, code}`. Request bodies are JSON objects of at most "
            f"{settings.max_body_bytes} bytes.",
        },
        "paths": _paths(settings),
        "components": {
            "schemas": _schemas(settings),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT (HS256 with the server's secret, or the OIDC "
                    "provider's) whose role claim is one of the scopes listed.",
                },
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key's secret (sk-...) as the bearer token.",
                },
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }


async def serve(request: Request) -> Response:
    """``GET /api/v1/openapi.json``: public, as any API's documentation."""
    body: bytes = request.app.state.openapi
    return Response(body, media_type="application/json")


def render(settings: Settings) -> bytes:
    return orjson.dumps(document(settings))

"""The seeds' management paths: ``/api/v1/me/account``, ``/usage``,
``/billing/transactions`` (their CSV downloads are in ``exports.py``).

API keys see their own usage and their org's balance; dashboard roles see the org's.
Lists are newest first with keyset cursors (opaque), never offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from app.api.rest import params
from app.api.rest.http import JSONResponse, invalid
from app.api.rest.principal import key_headers, require, runtime
from app.ids import to_global_id
from app.ledger.reads import TRANSACTIONS
from app.ledger.state import keys_t, wallets
from app.money import amount_json, format_usd
from app.orgs.service import orgs_t
from app.pages import CursorError, Keyset
from app.payments.ladder import percent
from app.usage.reads import USAGE_LOG, usage_values


async def account(request: Request) -> Response:
    rt = runtime(request)
    principal = await require(request)
    headers = key_headers(request)

    def load(conn: Connection) -> tuple[Any, Any]:
        row = conn.execute(
            select(wallets, orgs_t.c.slug, orgs_t.c.name, orgs_t.c.spend_cap_monthly)
            .join(orgs_t, orgs_t.c.id == wallets.c.organization_id)
            .where(wallets.c.organization_id == principal.organization_id)
        ).one()
        if principal.api_key_id is None:
            return row, None
        return row, conn.execute(select(keys_t).where(keys_t.c.id == principal.api_key_id)).one()

    row, key = await rt.db.read(load)
    body: dict[str, Any] = {
        "organization": {
            "id": to_global_id("Organization", principal.organization_id),
            "slug": row.slug,
            "name": row.name,
            "spend_cap_monthly": None
            if row.spend_cap_monthly is None
            else amount_json(row.spend_cap_monthly),
        },
        "role": principal.role,
        # `.balance` is the USD balance as a decimal string; the amounts below are exact too.
        "balance": format_usd(row.balance),
        "wallet": {
            "balance": amount_json(row.balance),
            "held": amount_json(row.held),
            "available": amount_json(row.balance - row.held),
        },
        "api_key": None
        if key is None
        else {
            "id": to_global_id("ApiKey", key.id),
            "name": key.name,
            "prefix": key.prefix,
            "group": key.group,
            "spent": amount_json(key.spent),
            "quota": None if key.quota is None else amount_json(key.quota),
        },
    }
    return JSONResponse(body, headers=headers)


async def _paged(
    request: Request,
    keyset: Keyset,
    values: dict[str, Any],
    render: Callable[[Any], dict[str, Any]],
    headers: dict[str, str],
) -> JSONResponse:
    """One page of ``keyset`` matching ``values``, newest first, and the cursor to the next."""
    limit = params.limit(request)
    cursor = request.query_params.get("cursor")
    try:
        page = await runtime(request).db.read(lambda conn: keyset.page(conn, values, limit, cursor))
    except CursorError as error:
        raise invalid(f"cursor: {error}") from None
    last = page.rows[-1] if page.has_next else None
    next_cursor = None if last is None else keyset.cursor(last)
    data = [render(row) for row in page.rows]
    return JSONResponse({"data": data, "next_cursor": next_cursor}, headers=headers)


async def usage(request: Request) -> Response:
    principal = await require(request)
    headers = key_headers(request)
    wanted = params.usage_filter(request, principal.api_key_id)
    values = usage_values(principal.organization_id, wanted)
    return await _paged(request, USAGE_LOG, values, _usage_json, headers)


async def transactions(request: Request) -> Response:
    """Every wallet movement that was not an API request: top-ups (with their payment
    status), refunds, adjustments, expiries; filtered as ``billingTransactions``."""
    principal = await require(request)
    headers = key_headers(request)
    values = params.transaction_filter(request).values(principal.organization_id)
    return await _paged(request, TRANSACTIONS, values, _transaction_json, headers)


def _usage_json(row: Any) -> dict[str, Any]:
    return {
        "id": to_global_id("UsageRecord", row.id),
        "request_id": row.request_id,
        "api_key_id": to_global_id("ApiKey", row.api_key_id),
        "model": row.model,
        "action": row.action,
        "status": row.status,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "units": row.units,
        "credits": str(row.cost),
        "cost": amount_json(row.cost),
        "tags": row.tags,
        "occurred_at": row.occurred_at.isoformat(),
        "created_at": row.created_at.isoformat(),
    }


def _transaction_json(row: Any) -> dict[str, Any]:
    return {
        "id": to_global_id("BillingTransaction", row.id),
        "kind": row.kind,
        "status": row.status,
        "amount": amount_json(row.amount),
        "credits_bought": amount_json(row.credits_bought),
        "bonus": amount_json(row.bonus),
        "bonus_percent": percent(row.bonus_basis_points),
        "credits": amount_json(row.credits),
        "refunded": amount_json(row.refunded),
        "shortfall": amount_json(row.shortfall),
        "failure_reason": row.failure_reason,
        "memo": row.memo,
        "top_up_id": None
        if row.top_up_id is None
        else to_global_id("BillingTransaction", row.top_up_id),
        "created_at": row.created_at.isoformat(),
        "settled_at": None if row.settled_at is None else row.settled_at.isoformat(),
    }

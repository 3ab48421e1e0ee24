"""Receipts and statements to download, as JSON or PDF: ``/api/v1/receipts/<id>.<format>``
and ``/api/v1/statements/<yyyy-mm>.<format>``.

People's roles only (owners, admins, members, viewers, signed in by JWT), each within its
organization: another organization's receipt, a month before the organization or not yet
begun, and anything malformed are all 404, as a receipt that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from app.api.rest.http import ApiError, JSONResponse
from app.api.rest.principal import require, runtime
from app.auth import PEOPLE
from app.ids import from_global_id, to_global_id
from app.ledger.state import orgs_t
from app.money import amount_json, format_usd
from app.statements import FORMATS
from app.statements.figures import Figures, Line, Month, closed, figures, first_month
from app.statements.pdf import receipt_pdf, statement_pdf
from app.statements.receipts import receipt_row


def _name(request: Request, name: str) -> tuple[str, str]:
    """The path's ``<name>.<format>``."""
    fmt = request.path_params["format"]
    if fmt not in FORMATS:
        raise ApiError(404, "ask for .pdf or .json", code="not_found")
    return request.path_params[name], fmt


def _organization(conn: Connection, organization_id: int) -> Any:
    return conn.execute(
        select(orgs_t.c.slug, orgs_t.c.name, orgs_t.c.rate_card).where(
            orgs_t.c.id == organization_id
        )
    ).one()


def _answer(document: dict[str, Any], fmt: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'}
    if fmt == "json":
        return JSONResponse(document, headers=headers)
    render = receipt_pdf if document["object"] == "receipt" else statement_pdf
    return Response(render(document), media_type="application/pdf", headers=headers)


def _org_json(organization_id: int, org: Any) -> dict[str, Any]:
    return {
        "id": to_global_id("Organization", organization_id),
        "slug": org.slug,
        "name": org.name,
    }


async def receipt(request: Request) -> Response:
    rt = runtime(request)
    principal = await require(request, *PEOPLE)
    name, fmt = _name(request, "id")
    receipt_id = from_global_id(name, "Receipt")
    organization_id = principal.organization_id

    def load(conn: Connection) -> tuple[Any, Any]:
        row = None if receipt_id is None else receipt_row(conn, organization_id, receipt_id)
        return row, _organization(conn, organization_id)

    row, org = await rt.db.read(load)
    if row is None:
        raise ApiError(404, "no such receipt", code="not_found")
    document = receipt_document(row, _org_json(organization_id, org), rt.prices.unit(org.rate_card))
    return _answer(document, fmt, row.number)


def receipt_document(row: Any, organization: dict[str, Any], unit: str) -> dict[str, Any]:
    """A receipt as JSON: money paid in its currency (decimal strings), credits in the
    wallet's unit as the API's amounts (``unit``: "usd", or "credit" for plan credits)."""
    card = None
    if row.card_brand is not None:
        card = {"brand": row.card_brand, "last4": row.card_last4}
    return {
        "object": "receipt",
        "id": to_global_id("Receipt", row.id),
        "number": row.number,
        "kind": row.kind,
        "issued_at": row.issued_at.isoformat(),
        "organization": organization,
        "description": row.description,
        "currency": row.currency,
        "amount": format_usd(row.amount),
        "tax": None if row.tax is None else format_usd(row.tax),
        "unit": unit,
        "credits": amount_json(row.credits),
        "bonus": amount_json(row.bonus),
        "payment_method": card,
        "refund_of": row.refund_of_number,
        "transaction_id": None
        if row.transaction_id is None
        else to_global_id("BillingTransaction", row.transaction_id),
        "provider": row.provider,
        "provider_reference": row.provider_reference,
    }


async def statement(request: Request) -> Response:
    rt = runtime(request)
    principal = await require(request, *PEOPLE)
    name, fmt = _name(request, "month")
    month = Month.parse(name)
    organization_id = principal.organization_id
    now = rt.clock.now()

    def load(conn: Connection) -> tuple[Figures | None, Any]:
        org = _organization(conn, organization_id)
        if month is None or not first_month(conn, organization_id) <= month <= Month.of(now):
            return None, org
        return figures(conn, organization_id, month), org

    found, org = await rt.db.read(load)
    if found is None:
        raise ApiError(404, "no statement for that month", code="not_found")
    unit = rt.prices.unit(org.rate_card)
    document = statement_document(found, _org_json(organization_id, org), unit, now)
    return _answer(document, fmt, f"statement-{org.slug}-{found.month}")


def statement_document(
    found: Figures, organization: dict[str, Any], unit: str, now: datetime
) -> dict[str, Any]:
    """A statement as JSON: its figures in the wallet's unit, as the API's amounts."""
    month = found.month
    lines = {line.value: amount_json(found.lines[line]) for line in Line}
    return {
        "object": "statement",
        "month": str(month),
        "period_start": month.start.isoformat(),
        "period_end": month.end.isoformat(),
        "closed": closed(month, now),
        "organization": organization,
        "unit": unit,
        "opening_balance": amount_json(found.opening),
        **lines,
        "closing_balance": amount_json(found.closing),
        "usage_by_model_and_action": [
            {
                "model": u.model,
                "action": u.action,
                "requests": u.requests,
                "amount": amount_json(u.amount),
            }
            for u in found.usage
        ],
        "receipts": [
            {
                "id": to_global_id("Receipt", r.id),
                "number": r.number,
                "kind": r.kind,
                "issued_at": r.issued_at.isoformat(),
                "description": r.description,
                "currency": r.currency,
                "amount": format_usd(r.amount),
            }
            for r in found.receipts
        ],
    }

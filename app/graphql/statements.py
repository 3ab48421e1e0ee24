"""Receipts and monthly statements: their lists, their nodes, their download URLs.

People's roles only (owners, admins, members, viewers): an API key or the service role
gets null with a FORBIDDEN error, as the downloads answer it 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy.engine import Connection as DBConnection

from app.auth import Principal
from app.graphql.context import PEOPLE, Info
from app.graphql.enums import ReceiptKind
from app.graphql.errors import Code, error
from app.graphql.money import Amount
from app.graphql.overview import wallet_row
from app.graphql.payments import BillingTransaction, transaction_row
from app.graphql.plans import Price
from app.graphql.relay import Connection, Node, connection, each, page_connection, page_size
from app.graphql.scalars import Decimal
from app.ids import to_global_id
from app.ledger.state import next_month
from app.money import format_usd
from app.pages import CursorError, Page, decode_cursor, encode_cursor
from app.statements import RECEIPTS_PATH, STATEMENTS_PATH
from app.statements.figures import Figures, Line, Month, closed, figures, first_month
from app.statements.receipts import RECEIPTS, receipt_row

# A statement's node id: the organization and the month (YYYYMM) in one integer.
_MONTHS = 1_000_000


@strawberry.type(description="The card a payment was made with.")
class PaymentCard:
    brand: str = strawberry.field(description='As Stripe names it: "visa", "mastercard".')
    last4: str = strawberry.field(description="The card number's last four digits.")


def _money(amount: int, currency: str) -> Price:
    return Price(amount=Decimal(format_usd(amount)), currency=currency)


@strawberry.type(
    description="What one payment or refund was: numbered per organization (ACME-000001, "
    "ACME-000002, ...) in the order they settled, issued with the money it is for and "
    "never changed. Downloadable as PDF and JSON (pdfUrl, jsonUrl) with the same "
    "authorization."
)
class Receipt(Node):
    number: str = strawberry.field(description='"ACME-000001": the slug and the sequence.')
    kind: ReceiptKind = strawberry.field(description="What it is for.")
    description: str = strawberry.field(description='What was bought: "Credits: top-up", ...')
    total: Price = strawberry.field(
        description="What was paid (or refunded), tax included, in its currency: USD, or a "
        "plan's (CNY for ByteSpike's)."
    )
    tax: Price | None = strawberry.field(
        description="The tax within total, when the operator's Stripe Tax computed one; "
        "null otherwise."
    )
    credits: Amount = strawberry.field(
        description="The wallet's credits it delivered, before bonus (a plan invoice: the "
        "period's allocation); negative on a refund: those clawed back. In the wallet's "
        "unit (SpendCap.unit)."
    )
    bonus: Amount = strawberry.field(description="Top-ups: the bonus credits; zero otherwise.")
    payment_method: PaymentCard | None = strawberry.field(
        description="The card charged (a refund: the card refunded to), when the payment "
        "provider said; null otherwise."
    )
    issued_at: datetime = strawberry.field(description="When the money moved (UTC).")
    pdf_url: str = strawberry.field(description="Path of its PDF: GET with the same bearer token.")
    json_url: str = strawberry.field(description="Path of its JSON document.")
    _organization_id: strawberry.Private[int]
    _transaction_id: strawberry.Private[int | None]
    _refund_of_id: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: Any) -> Receipt:
        global_id = to_global_id("Receipt", row.id)
        card = None
        if row.card_brand is not None:
            card = PaymentCard(brand=row.card_brand, last4=row.card_last4)
        return cls(
            id=strawberry.ID(global_id),
            number=row.number,
            kind=ReceiptKind(row.kind),
            description=row.description,
            total=_money(row.amount, row.currency),
            tax=None if row.tax is None else _money(row.tax, row.currency),
            credits=Amount.of(row.credits),
            bonus=Amount.of(row.bonus),
            payment_method=card,
            issued_at=row.issued_at,
            pdf_url=f"{RECEIPTS_PATH}/{global_id}.pdf",
            json_url=f"{RECEIPTS_PATH}/{global_id}.json",
            _organization_id=row.organization_id,
            _transaction_id=row.transaction_id,
            _refund_of_id=row.refund_of_id,
        )

    @strawberry.field(
        description="The billing transaction paid or refunded; null for a plan invoice."
    )
    async def transaction(self, info: Info) -> BillingTransaction | None:
        if self._transaction_id is None:
            return None
        transaction_id, organization_id = self._transaction_id, self._organization_id
        row = await info.context.runtime.db.read(
            lambda conn: transaction_row(conn, organization_id, transaction_id)
        )
        return BillingTransaction.of(row)

    @strawberry.field(description="Refunds: the receipt of the payment refunded.")
    async def refund_of(self, info: Info) -> Receipt | None:
        if self._refund_of_id is None:
            return None
        receipt_id, organization_id = self._refund_of_id, self._organization_id
        row = await info.context.runtime.db.read(
            lambda conn: receipt_row(conn, organization_id, receipt_id)
        )
        return Receipt.of(row)


@strawberry.type(description="A month's usage of one model for one action.")
class StatementUsage:
    model: str = strawberry.field(description="The model called.")
    action: str = strawberry.field(description='What the calls did: "llm_inference", ...')
    requests: int = strawberry.field(description="Calls, failed ones (free) included.")
    amount: Amount = strawberry.field(description="What they were charged, negative.")


async def _figures(info: Info, organization_id: int, month: Month) -> Figures:
    """The figures of ``month``, read for every statement of the request at once."""

    async def load(keys: list[tuple[int, int]]) -> list[Figures]:
        return await info.context.runtime.db.read(
            lambda conn: [figures(conn, org, Month.from_number(m)) for org, m in keys]
        )

    found: Figures = await info.context.loader("statement_figures", load).load(
        (organization_id, month.number)
    )
    return found


@strawberry.type(
    description="One calendar month (UTC) of the wallet, computed from its ledger: the "
    "opening balance (the ledger's balance when the month began, so the previous month's "
    "closing), what came in and went out by kind, and the closing balance, which is "
    "opening plus every line. Amounts are in the wallet's unit (unit: their usd counts "
    "plan credits on a plan-credit wallet). Downloadable as PDF and JSON."
)
class Statement(Node):
    month: str = strawberry.field(description='"2026-11".')
    period_start: datetime = strawberry.field(description="The month's first instant (UTC).")
    period_end: datetime = strawberry.field(description="The next month's first instant (UTC).")
    closed: bool = strawberry.field(
        description="False for the month still running: its figures so far, which change."
    )
    pdf_url: str = strawberry.field(description="Path of its PDF: GET with the same bearer token.")
    json_url: str = strawberry.field(description="Path of its JSON document.")
    _organization_id: strawberry.Private[int]
    _month: strawberry.Private[Month]

    @classmethod
    def of(cls, organization_id: int, month: Month, now: datetime) -> Statement:
        return cls(
            id=strawberry.ID(to_global_id("Statement", organization_id * _MONTHS + month.number)),
            month=str(month),
            period_start=month.start,
            period_end=month.end,
            closed=closed(month, now),
            pdf_url=f"{STATEMENTS_PATH}/{month}.pdf",
            json_url=f"{STATEMENTS_PATH}/{month}.json",
            _organization_id=organization_id,
            _month=month,
        )

    @strawberry.field(description='What the amounts count: "usd" or "credit" (plan credits).')
    async def unit(self, info: Info) -> str:
        row = await wallet_row(info, self._organization_id)
        return info.context.runtime.prices.unit(row.rate_card)

    async def _amount(self, info: Info, line: Line | None = None) -> Amount:
        found = await _figures(info, self._organization_id, self._month)
        return Amount.of(found.opening if line is None else found.lines[line])

    @strawberry.field(description="The balance when the month began.")
    async def opening_balance(self, info: Info) -> Amount:
        return await self._amount(info)

    @strawberry.field(description="Credits bought: top-ups and automatic purchases.")
    async def purchases(self, info: Info) -> Amount:
        return await self._amount(info, Line.PURCHASES)

    @strawberry.field(description="The bonus ladder's credits on those purchases.")
    async def bonuses(self, info: Info) -> Amount:
        return await self._amount(info, Line.BONUSES)

    @strawberry.field(
        description="Plan allocations, trial allowances and rollover (which moves unused "
        "allocation into the next period: zero in all)."
    )
    async def grants(self, info: Info) -> Amount:
        return await self._amount(info, Line.GRANTS)

    @strawberry.field(description="Manual adjustments, either way.")
    async def adjustments(self, info: Info) -> Amount:
        return await self._amount(info, Line.ADJUSTMENTS)

    @strawberry.field(description="Billed calls, negative; usageByModelAndAction adds up to it.")
    async def usage(self, info: Info) -> Amount:
        return await self._amount(info, Line.USAGE)

    @strawberry.field(
        description="Usage past a plan's allocation settled in USD when its period closed "
        "(brings the wallet back to zero)."
    )
    async def overage(self, info: Info) -> Amount:
        return await self._amount(info, Line.OVERAGE)

    @strawberry.field(description="Credits that expired unspent, negative.")
    async def expiries(self, info: Info) -> Amount:
        return await self._amount(info, Line.EXPIRIES)

    @strawberry.field(description="Credits clawed back by refunds, negative.")
    async def refunds(self, info: Info) -> Amount:
        return await self._amount(info, Line.REFUNDS)

    @strawberry.field(
        description="The balance when the month ended (so far, while it runs): opening "
        "plus every line."
    )
    async def closing_balance(self, info: Info) -> Amount:
        found = await _figures(info, self._organization_id, self._month)
        return Amount.of(found.closing)

    @strawberry.field(description="Usage by model and action, the largest spend first.")
    async def usage_by_model_and_action(self, info: Info) -> list[StatementUsage]:
        found = await _figures(info, self._organization_id, self._month)
        return [
            StatementUsage(
                model=u.model, action=u.action, requests=u.requests, amount=Amount.of(u.amount)
            )
            for u in found.usage
        ]

    @strawberry.field(description="The receipts issued in the month, in number order.")
    async def receipts(self, info: Info) -> list[Receipt]:
        found = await _figures(info, self._organization_id, self._month)
        return [Receipt.of(row) for row in found.receipts]


# -- reads ---------------------------------------------------------------------------


async def receipt_page(
    info: Info, organization_id: int, first: int, after: str | None
) -> Connection[Receipt]:
    info.context.caller(*PEOPLE)
    values = {"organization_id": organization_id}
    return await page_connection(info, RECEIPTS, values, first, after, each(Receipt.of))


def _statement_cursor(month: Month) -> str:
    return encode_cursor((month.number,))


async def statement_page(
    info: Info, organization_id: int, first: int, after: str | None
) -> Connection[Statement]:
    """The organization's months, newest first: the one running, then every closed one
    back to the month it was created."""
    info.context.caller(*PEOPLE)
    limit = page_size(first)
    now = info.context.runtime.clock.now()
    info.context.changes_at(next_month(now))  # the month running closes
    try:
        before = None if after is None else decode_cursor(after, (int,))[0]
    except CursorError as exc:
        raise error(Code.BAD_USER_INPUT, f"after: {exc}") from None
    oldest = await info.context.runtime.db.read(lambda conn: first_month(conn, organization_id))
    months: list[Month] = []
    month = Month.of(now)
    while month >= oldest:
        months.append(month)
        month = month.previous()
    later = [m for m in months if before is None or m.number < before]
    page = Page(later[:limit], len(later) > limit)
    nodes = [Statement.of(organization_id, m, now) for m in page.rows]
    return connection(page, nodes, len(months), _statement_cursor, _statement_cursor)


def receipt_node(
    conn: DBConnection, caller: Principal, row_id: int, _now: datetime
) -> Receipt | None:
    """``node(id:)``: the receipt, if it is the caller's organization's and theirs to read."""
    if caller.role not in PEOPLE:
        return None
    row = receipt_row(conn, caller.organization_id, row_id)
    return None if row is None else Receipt.of(row)


def statement_node(
    conn: DBConnection, caller: Principal, row_id: int, now: datetime
) -> Statement | None:
    """``node(id:)``: the statement of a month of the caller's organization, from its
    creation to the month running."""
    organization_id, number = divmod(row_id, _MONTHS)
    month = Month.parse(f"{number // 100:04d}-{number % 100:02d}")
    if caller.role not in PEOPLE or organization_id != caller.organization_id or month is None:
        return None
    if not first_month(conn, organization_id) <= month <= Month.of(now):
        return None
    return Statement.of(organization_id, month, now)

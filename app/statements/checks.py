"""What ``creditgraph verify`` checks of receipts and statements.

- Every succeeded payment (top-up, automatic purchase, overage charge) and every refund
  has one receipt saying what its billing transaction says, and nothing else has one;
  each organization's receipts are numbered 1 to n.
- Every closed month's statement (computed as the API computes it) opens at the ledger's
  balance when the month began and closes at its balance when the month ended, both as
  the replay of the ledger gives them, and its usage by model and action adds up to its
  usage line.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from app.ledger.state import billing_t
from app.money import format_usd
from app.payments.ladder import CREDITS_PER_CENT
from app.payments.tables import PAYMENT_KINDS, TransactionKind, TransactionStatus
from app.statements.figures import Line, Month, figures, first_month
from app.statements.receipts import receipts_t

_WITH_RECEIPTS = (*PAYMENT_KINDS, TransactionKind.REFUND, TransactionKind.OVERAGE)


def _expected(row: Any) -> tuple[int, int, int]:
    """The (amount, credits, bonus) the receipt of billing transaction ``row`` shows."""
    if row.kind in PAYMENT_KINDS:
        return row.amount, row.credits_bought, row.bonus
    if row.kind == TransactionKind.OVERAGE:  # charged in whole cents, rounded up
        return -(-row.amount // CREDITS_PER_CENT) * CREDITS_PER_CENT, row.credits, 0
    return row.amount, row.credits, 0


async def verify_receipts(conn: AsyncConnection) -> list[str]:
    problems: list[str] = []
    issued = {
        r.transaction_id: r
        for r in await conn.execute(
            select(receipts_t).where(receipts_t.c.transaction_id.is_not(None))
        )
    }
    for row in await conn.execute(select(billing_t).where(billing_t.c.kind.in_(_WITH_RECEIPTS))):
        receipt = issued.get(row.id)
        where = f"{row.kind} {row.id} ({row.status})"
        if row.status != TransactionStatus.SUCCEEDED:
            if receipt is not None:
                problems.append(f"{where} has receipt {receipt.number}")
        elif receipt is None:
            problems.append(f"{where} has no receipt")
        elif (receipt.amount, receipt.credits, receipt.bonus) != _expected(row):
            problems.append(
                f"receipt {receipt.number} shows (amount, credits, bonus) "
                f"{(receipt.amount, receipt.credits, receipt.bonus)}, {where} says "
                f"{_expected(row)}"
            )
    for organization_id, count, last in await conn.execute(
        select(
            receipts_t.c.organization_id, func.count(), func.max(receipts_t.c.sequence)
        ).group_by(receipts_t.c.organization_id)
    ):
        if count != last:
            problems.append(
                f"organization {organization_id}: {count} receipts numbered up to {last}"
            )
    return problems


async def verify_statements(
    conn: AsyncConnection, organization_id: int, closings: dict[int, int], until: Month
) -> list[str]:
    """Statements of organization ``organization_id`` up to ``until`` (its closed months)
    against ``closings``: the replayed balance after each month's last entry (YYYYMM)."""

    def check(sync: Connection) -> list[str]:
        problems: list[str] = []
        month, balance = first_month(sync, organization_id), 0
        while month <= until:
            found = figures(sync, organization_id, month)
            opening, balance = balance, closings.get(month.number, balance)
            where = f"organization {organization_id}: statement {month}"
            if found.opening != opening:
                problems.append(
                    f"{where} opens at {format_usd(found.opening)}, the ledger's balance when "
                    f"it began is {format_usd(opening)}"
                )
            if found.closing != balance:
                problems.append(
                    f"{where} closes at {format_usd(found.closing)}, the ledger's balance when "
                    f"it ended is {format_usd(balance)}"
                )
            by_model = sum(u.amount for u in found.usage)
            if by_model != found.lines[Line.USAGE]:
                problems.append(
                    f"{where}: usage by model and action sums to {format_usd(by_model)}, "
                    f"the usage line is {format_usd(found.lines[Line.USAGE])}"
                )
            month = Month.of(month.end)
        return problems

    result: list[str] = await conn.run_sync(check)
    return result

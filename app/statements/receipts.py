"""Receipts: issued with the money they are for, numbered per organization, and read.

Numbers run 1, 2, 3... within each organization ("ACME-000001"), not across them: a
customer's numbers say nothing about how many others there are, and no instance waits on
a global counter. The next number is taken under the organization's wallet lock, which
every writer transaction moving its money already holds (PostgreSQL; SQLite has one
writer), so numbers never repeat and never skip; the unique (organization, sequence)
index backs that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from app.db import table
from app.ledger.state import orgs_t, wallets
from app.pages import Keyset, equal
from app.payments.provider import Card
from app.statements.tables import Receipt

receipts_t = table(Receipt)

# An organization's receipts, newest first.
RECEIPTS = Keyset(
    lambda: select(receipts_t),
    (receipts_t.c.issued_at, receipts_t.c.id),
    {"organization_id": equal(receipts_t.c.organization_id)},
)


def card_columns(card: Card | None) -> dict[str, Any]:
    return {
        "card_brand": None if card is None else card.brand,
        "card_last4": None if card is None else card.last4,
    }


def issue(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Number and insert receipts (``receipts`` columns but the number), in order. A
    refund's row names the payment refunded (``refunded_transaction_id``): it points at
    that payment's receipt and shows its card."""
    for row in rows:
        values = dict(row)
        organization_id = values["organization_id"]
        conn.execute(
            select(wallets.c.id)
            .where(wallets.c.organization_id == organization_id)
            .with_for_update()
        )
        last = (
            select(func.max(receipts_t.c.sequence))
            .where(receipts_t.c.organization_id == organization_id)
            .scalar_subquery()
        )
        slug, sequence = conn.execute(
            select(orgs_t.c.slug, func.coalesce(last, 0) + 1).where(orgs_t.c.id == organization_id)
        ).one()
        refunded = values.pop("refunded_transaction_id", None)
        if refunded is not None:
            paid = conn.execute(
                select(receipts_t.c.id, receipts_t.c.card_brand, receipts_t.c.card_last4).where(
                    receipts_t.c.transaction_id == refunded
                )
            ).first()
            if paid is not None:
                values |= {
                    "refund_of_id": paid.id,
                    "card_brand": paid.card_brand,
                    "card_last4": paid.card_last4,
                }
        values |= {"sequence": sequence, "number": f"{slug.upper()}-{sequence:06d}"}
        conn.execute(insert(receipts_t).values(values))


def receipt_row(conn: Connection, organization_id: int, receipt_id: int) -> Any:
    """The organization's receipt ``receipt_id`` with the number of the one it refunds,
    or None (another organization's is None too)."""
    refunded = receipts_t.alias("refunded")
    return conn.execute(
        select(receipts_t, refunded.c.number.label("refund_of_number"))
        .outerjoin(refunded, refunded.c.id == receipts_t.c.refund_of_id)
        .where(receipts_t.c.id == receipt_id, receipts_t.c.organization_id == organization_id)
    ).first()

"""receipts, and ledger entries by wallet and time for statements

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 20:40:00

Every payment that succeeded and every refund gets a receipt, numbered per organization
in the order they settled; those made before this revision get theirs here (without the
card, which was not kept). Plan invoices paid before it left no record to issue one from.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DESCRIPTIONS = {
    "top_up": "Credits: top-up",
    "auto_reload": "Credits: automatic top-up",
    "refund": "Refund",
    "overage": "Overage",
}
CENT = 10_000


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("refund_of_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=True),
        sa.Column("provider_reference", sa.String(length=255), nullable=True),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("tax", sa.BigInteger(), nullable=True),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("bonus", sa.BigInteger(), nullable=False),
        sa.Column("card_brand", sa.String(length=32), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("issued_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["refund_of_id"], ["receipts.id"]),
        sa.ForeignKeyConstraint(["transaction_id"], ["billing_transactions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "sequence"),
        sa.UniqueConstraint("transaction_id"),
    )
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_receipts_page", ["organization_id", "issued_at", "id"], unique=False
        )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_entries_wallet_time", ["wallet_id", "created_at"], unique=False
        )
    _issue_past_receipts()


def _issue_past_receipts() -> None:
    conn = op.get_bind()
    meta = sa.MetaData()
    billing = sa.Table("billing_transactions", meta, autoload_with=conn)
    orgs = sa.Table("organizations", meta, autoload_with=conn)
    receipts = sa.Table("receipts", meta, autoload_with=conn)
    rows = conn.execute(
        sa.select(billing, orgs.c.slug)
        .join(orgs, orgs.c.id == billing.c.organization_id)
        .where(
            billing.c.kind.in_(list(_DESCRIPTIONS)),
            billing.c.status == "succeeded",
            billing.c.settled_at.is_not(None),
        )
        .order_by(billing.c.organization_id, billing.c.settled_at, billing.c.id)
    ).all()
    sequence: dict[int, int] = {}
    receipt_of: dict[int, int] = {}  # billing transaction id -> its receipt's id
    for row in rows:
        n = sequence[row.organization_id] = sequence.get(row.organization_id, 0) + 1
        values: dict[str, Any] = {
            "organization_id": row.organization_id,
            "sequence": n,
            "number": f"{row.slug.upper()}-{n:06d}",
            "kind": row.kind,
            "transaction_id": row.id,
            "refund_of_id": receipt_of.get(row.top_up_id) if row.kind == "refund" else None,
            "provider": row.provider,
            "provider_reference": row.payment_intent_id,
            "description": (row.kind == "overage" and row.memo) or _DESCRIPTIONS[row.kind],
            "currency": "USD",
            "amount": -(-row.amount // CENT) * CENT if row.kind == "overage" else row.amount,
            "tax": None,
            "credits": row.credits_bought if row.kind in ("top_up", "auto_reload") else row.credits,
            "bonus": row.bonus if row.kind in ("top_up", "auto_reload") else 0,
            "issued_at": row.settled_at,
        }
        receipt_of[row.id] = conn.execute(
            sa.insert(receipts).values(values).returning(receipts.c.id)
        ).scalar_one()


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_wallet_time")
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_receipts_page")
    op.drop_table("receipts")

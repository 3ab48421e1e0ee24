"""fake cards: the saved cards of the fake payment provider (local development)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 20:50:00

Saved cards are listed from the payment provider (Stripe's PaymentMethods); the fake
provider keeps its own here, so they outlive the process that saved them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fake_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_method_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("brand", sa.String(length=32), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("exp_month", sa.Integer(), nullable=False),
        sa.Column("exp_year", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payment_method_id"),
    )
    with op.batch_alter_table("fake_cards", schema=None) as batch_op:
        batch_op.create_index("ix_fake_cards_customer_id", ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fake_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_fake_cards_customer_id")
    op.drop_table("fake_cards")

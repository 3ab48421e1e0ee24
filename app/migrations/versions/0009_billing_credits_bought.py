"""billing transactions: the credits a top-up buys, apart from the USD it charges

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:30:00

A credit pack on a plan-credit plan (8bit-ai) charges dollars and buys plan credits.
Every top-up before this credited its amount, so that is what each one bought.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("billing_transactions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("credits_bought", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE billing_transactions SET credits_bought = amount "
        "WHERE kind IN ('top_up', 'auto_reload')"
    )


def downgrade() -> None:
    with op.batch_alter_table("billing_transactions", schema=None) as batch_op:
        batch_op.drop_column("credits_bought")

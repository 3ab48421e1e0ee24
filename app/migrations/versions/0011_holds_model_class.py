"""holds: the model class, what the call weighs in a plan's message window

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:50:00

ByteSpike's "50-500 messages per 12h" weighs a call by its model's class (the price
book's model_class). Holds placed before it count as standard.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "model_class", sa.String(length=16), nullable=False, server_default="standard"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_column("model_class")

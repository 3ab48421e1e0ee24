"""holds: the model class, which of a plan's message windows the call counts in

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 10:00:00

ByteSpike's "50-500 messages per 12h" counts calls per model class (the price book's
model_class). Holds placed before it counted in the one window there was: standard.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
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

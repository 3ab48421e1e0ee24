"""billing accounts: autoScale by default

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:40:00

An organization may make autoScale (Bytez) the default for calls that do not say; off
for every existing one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("billing_accounts") as batch:
        batch.add_column(
            sa.Column("auto_scale_default", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_accounts") as batch:
        batch.drop_column("auto_scale_default")

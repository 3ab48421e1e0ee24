"""holds: an open-model call's concurrency slots instead of a flag

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:20:00

Bytez's concurrency is counted in 7B slots ("Concurrent Requests (7B)"): a larger
model's call takes more than one. Holds placed before counted one slot each; a closed
model's takes none, and a plan's requests per second count those.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch_op:
        batch_op.add_column(sa.Column("slots", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE holds SET slots = 1 WHERE open_model")
    with op.batch_alter_table("holds") as batch_op:
        batch_op.drop_column("open_model")


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch_op:
        batch_op.add_column(
            sa.Column("open_model", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE holds SET open_model = (slots > 0)")
    with op.batch_alter_table("holds") as batch_op:
        batch_op.drop_column("slots")

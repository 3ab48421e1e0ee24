"""api keys: the prefix column holds the secret's whole visible start

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 14:10:00

Listings show a key as its secret begins ("sk-byts-1a2b3c4d"), and the part before the
random id is configurable (CREDITGRAPH_API_KEY_PREFIX), so each key keeps its own.
Existing keys were all made as "sk-<id>-...".
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE api_keys SET prefix = 'sk-' || prefix")


def downgrade() -> None:
    # The random id is what follows the last "-"; a custom prefix cannot be kept.
    op.execute("UPDATE api_keys SET prefix = substr(prefix, length(prefix) - 7)")

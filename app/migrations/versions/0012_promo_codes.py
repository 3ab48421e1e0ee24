"""promo codes and their redemptions

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 10:00:00

Operators make promo codes (``creditgraph promo create``); each redemption is a row here
and a GRANT ledger entry. Grants need no column: their entries and billing transactions
carry the new kind "grant" in the existing string columns.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "promo_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("credits_expire_days", sa.Integer(), nullable=True),
        sa.Column("max_redemptions", sa.Integer(), nullable=True),
        sa.Column("per_organization", sa.Integer(), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "max_redemptions IS NULL OR redemptions <= max_redemptions",
            name="ck_promo_codes_within_limit",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "promo_redemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("promo_code_id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["promo_code_id"], ["promo_codes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("promo_code_id", "number"),
    )
    op.create_index(
        "ix_promo_redemptions_org",
        "promo_redemptions",
        ["promo_code_id", "organization_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_promo_redemptions_org", table_name="promo_redemptions")
    op.drop_table("promo_redemptions")
    op.drop_table("promo_codes")

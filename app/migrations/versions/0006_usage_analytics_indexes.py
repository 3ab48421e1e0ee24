"""usage analytics: breakdown rollups, usage log filter indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 15:45:00

The breakdown rollups are filled from what exists: the total, model, action and key
rows from the cell rollups (complete, pruned history included), the agent and
conversation rows from the usage records still kept (pruned ones are gone).
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (("usage_hourly_by", "usage_hourly"), ("usage_daily_by", "usage_daily"))
TAGS = ("agent", "conversation")


def _create(name: str) -> None:
    op.create_table(
        name,
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("bucket", app.db.UTCDateTime(), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("spend", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("organization_id", "scope", "dimension", "bucket", "value"),
    )


def _fill_from_cells(target: str, cells: str) -> None:
    columns = "organization_id, scope, dimension, bucket, value, spend, requests"
    for scope in ("0", "api_key_id"):
        for dimension, value in (("total", "''"), ("model", "model"), ("action", "action")):
            group = "" if scope == "0" else ", api_key_id"
            group_value = "" if value == "''" else f", {value}"
            op.execute(
                f"INSERT INTO {target} ({columns}) SELECT organization_id, {scope}, "
                f"'{dimension}', bucket, {value}, SUM(spend), SUM(requests) FROM {cells} "
                f"GROUP BY organization_id, bucket{group}{group_value}"
            )
    op.execute(
        f"INSERT INTO {target} ({columns}) SELECT organization_id, 0, 'api_key', bucket, "
        f"CAST(api_key_id AS VARCHAR(200)), SUM(spend), SUM(requests) FROM {cells} "
        "GROUP BY organization_id, bucket, api_key_id"
    )


def _fill_tags() -> None:
    usage = sa.table(
        "usage_records",
        sa.column("organization_id", sa.Integer()),
        sa.column("api_key_id", sa.Integer()),
        sa.column("cost", sa.BigInteger()),
        sa.column("tags", sa.JSON()),
        sa.column("created_at", app.db.UTCDateTime()),
    )
    hours: dict[tuple[int, int, str, datetime, str], list[int]] = defaultdict(lambda: [0, 0])
    rows = op.get_bind().execute(
        sa.select(
            usage.c.organization_id, usage.c.api_key_id, usage.c.cost, usage.c.tags
        ).add_columns(usage.c.created_at)
    )
    for org, key, cost, tags, created_at in rows:
        hour = created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        for tag in TAGS:
            value = (tags or {}).get(tag)
            if isinstance(value, str):
                for scope in (0, key):
                    sums = hours[(org, scope, tag, hour, value)]
                    sums[0] += cost
                    sums[1] += 1
    days: dict[tuple[int, int, str, datetime, str], list[int]] = defaultdict(lambda: [0, 0])
    for (org, scope, tag, hour, value), (spend, requests) in hours.items():
        sums = days[(org, scope, tag, hour.replace(hour=0), value)]
        sums[0] += spend
        sums[1] += requests
    for name, sums_by in (("usage_hourly_by", hours), ("usage_daily_by", days)):
        target = sa.table(
            name,
            *(sa.column(c, sa.Integer()) for c in ("organization_id", "scope", "requests")),
            sa.column("dimension", sa.String()),
            sa.column("bucket", app.db.UTCDateTime()),
            sa.column("value", sa.String()),
            sa.column("spend", sa.BigInteger()),
        )
        if sums_by:
            op.bulk_insert(
                target,
                [
                    {
                        "organization_id": org,
                        "scope": scope,
                        "dimension": tag,
                        "bucket": bucket,
                        "value": value,
                        "spend": spend,
                        "requests": requests,
                    }
                    for (org, scope, tag, bucket, value), (spend, requests) in sums_by.items()
                ],
            )


def upgrade() -> None:
    for target, cells in TABLES:
        _create(target)
        _fill_from_cells(target, cells)
    _fill_tags()
    op.create_index(
        "ix_usage_org_model_time",
        "usage_records",
        ["organization_id", "model", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_usage_org_action_time",
        "usage_records",
        ["organization_id", "action", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_usage_org_action_time", table_name="usage_records")
    op.drop_index("ix_usage_org_model_time", table_name="usage_records")
    for target, _ in TABLES:
        op.drop_table(target)

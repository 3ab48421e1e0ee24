"""webhooks: endpoints, events, deliveries and attempts; alert deliveries move onto them

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 10:00:00

One delivery mechanism serves alert rules' webhooks and event endpoints: each alert
delivery becomes a webhook event (``alert.fired``, its body as it was) with one delivery
to its rule, keeping its id and its attempts. Alert rules' signing secrets are sealed
with the key vault (``app.webhooks.signing``), the plain ones dropped.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import app.db
from app.ids import parse_global_id
from app.migrate import migration_settings
from app.webhooks.signing import seal, signing_vault

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

rules = sa.table(
    "alert_rules",
    sa.column("id", sa.Integer()),
    sa.column("webhook_url", sa.String()),
    sa.column("webhook_secret", sa.String()),
    sa.column("webhook_secret_encrypted", sa.String()),
)
MOVED = ("webhook_events", "webhook_deliveries", "webhook_delivery_attempts")
RESTORED = ("alert_deliveries", "alert_delivery_attempts")


def _continue_ids(tables: Sequence[str]) -> None:
    """Rows were copied with their ids: PostgreSQL's sequences continue after them."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in tables:
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
        )


def _reseal(source: str, target: str, change: str) -> None:
    """Fill ``target`` from ``source`` for every rule, through the vault's ``change``."""
    conn = op.get_bind()
    rows = conn.execute(sa.select(rules.c.id, rules.c[source])).all()
    if not rows:
        return  # no key needed
    vault = signing_vault(migration_settings(context.config))
    for rule_id, value in rows:
        new = seal(vault, value) if change == "seal" else vault.open(value)
        conn.execute(sa.update(rules).where(rules.c.id == rule_id).values({target: new}))


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret_encrypted", sa.String(length=500), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", app.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_webhook_endpoints_org", "webhook_endpoints", ["organization_id", "deleted_at"]
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_webhook_events_org_time", "webhook_events", ["organization_id", "created_at", "id"]
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("alert_rule_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["event_id"], ["webhook_events.id"]),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"]),
        sa.ForeignKeyConstraint(["alert_rule_id"], ["alert_rules.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint",
        "webhook_deliveries",
        ["endpoint_id", "created_at", "id"],
    )
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])
    op.create_table(
        "webhook_delivery_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_webhook_delivery_attempts_delivery_id", "webhook_delivery_attempts", ["delivery_id"]
    )

    # Plain ALTERs, never a batch copy of alert_rules: its events and deliveries refer
    # to it, and SQLite refuses to drop a table that rows refer to.
    op.add_column(
        "alert_rules",
        sa.Column(
            "webhook_secret_encrypted", sa.String(length=500), nullable=False, server_default=""
        ),
    )
    _reseal("webhook_secret", "webhook_secret_encrypted", "seal")
    op.drop_column("alert_rules", "webhook_secret")

    op.execute(
        "INSERT INTO webhook_events (id, organization_id, type, body, created_at) "
        "SELECT d.id, e.organization_id, 'alert.fired', d.body, d.created_at "
        "FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id"
    )
    op.execute(
        "INSERT INTO webhook_deliveries (id, organization_id, event_id, alert_rule_id, status, "
        "attempts, next_attempt_at, created_at) "
        "SELECT d.id, e.organization_id, d.id, d.rule_id, d.status, d.attempts, "
        "d.next_attempt_at, d.created_at "
        "FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id"
    )
    op.execute(
        "INSERT INTO webhook_delivery_attempts (id, delivery_id, attempt, status_code, error, "
        "created_at) SELECT id, delivery_id, attempt, status_code, error, created_at "
        "FROM alert_delivery_attempts"
    )
    _continue_ids(MOVED)
    op.drop_index("ix_alert_delivery_attempts_delivery_id", "alert_delivery_attempts")
    op.drop_table("alert_delivery_attempts")
    op.drop_index("ix_alert_deliveries_due", "alert_deliveries")
    op.drop_table("alert_deliveries")


def downgrade() -> None:
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["alert_events.id"]),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "alert_delivery_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["alert_deliveries.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_alert_delivery_attempts_delivery_id", "alert_delivery_attempts", ["delivery_id"]
    )
    # Alert deliveries go back to their alert events, named in their bodies; a delivery's
    # URL is its rule's now. Endpoints and their events have nowhere to go.
    conn = op.get_bind()
    time = app.db.UTCDateTime()
    deliveries = sa.table(
        "webhook_deliveries",
        *(sa.column(name) for name in ("id", "event_id", "alert_rule_id", "status", "attempts")),
        sa.column("next_attempt_at", time),
        sa.column("created_at", time),
    )
    events = sa.table("webhook_events", sa.column("id"), sa.column("body"))
    back = sa.table(
        "alert_deliveries",
        *(
            sa.column(name)
            for name in ("id", "event_id", "rule_id", "url", "body", "status", "attempts")
        ),
        sa.column("next_attempt_at", time),
        sa.column("created_at", time),
    )
    moved = conn.execute(
        sa.select(deliveries, events.c.body, rules.c.webhook_url)
        .join(events, events.c.id == deliveries.c.event_id)
        .join(rules, rules.c.id == deliveries.c.alert_rule_id)
    ).all()
    for row in moved:
        parsed = parse_global_id(json.loads(row.body)["id"])
        assert parsed is not None
        conn.execute(
            sa.insert(back).values(
                id=row.id,
                event_id=parsed[1],
                rule_id=row.alert_rule_id,
                url=row.webhook_url or "",
                body=row.body,
                status=row.status,
                attempts=row.attempts,
                next_attempt_at=row.next_attempt_at,
                created_at=row.created_at,
            )
        )
    op.execute(
        "INSERT INTO alert_delivery_attempts (id, delivery_id, attempt, status_code, error, "
        "created_at) SELECT a.id, a.delivery_id, a.attempt, a.status_code, a.error, a.created_at "
        "FROM webhook_delivery_attempts a JOIN alert_deliveries d ON d.id = a.delivery_id"
    )
    _continue_ids(RESTORED)
    op.add_column(
        "alert_rules",
        sa.Column("webhook_secret", sa.String(length=100), nullable=False, server_default=""),
    )
    _reseal("webhook_secret_encrypted", "webhook_secret", "open")
    op.drop_column("alert_rules", "webhook_secret_encrypted")
    for name in reversed(MOVED):
        op.drop_table(name)
    op.drop_table("webhook_endpoints")

"""The audit log: who changed what, when, with the values before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from app.db import table, time_field
from app.pages import Keyset, equal


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_org_time", "organization_id", "created_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    # The JWT subject, "cli", "api_key:<id>", or a process: "stripe", "auto-reload", "system"...
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)  # "api_key.create", "plan.change", "top_up.failed", ...
    target: str = Field(max_length=200)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = time_field()


audit_t = table(AuditEvent)


async def record(
    conn: AsyncConnection,
    *,
    organization_id: int,
    actor: str,
    action: str,
    target: str,
    at: datetime,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit event in the caller's transaction, so it commits with the change."""
    await conn.execute(
        insert(audit_t).values(
            organization_id=organization_id,
            actor=actor,
            action=action,
            target=target,
            before=before,
            after=after,
            created_at=at,
        )
    )


# The organization's audit events, narrowed by action, actor and target when given.
AUDIT_LOG = Keyset(
    lambda: select(audit_t),
    (audit_t.c.created_at, audit_t.c.id),
    {
        "organization_id": equal(audit_t.c.organization_id),
        "action": equal(audit_t.c.action),
        "actor": equal(audit_t.c.actor),
        "target": equal(audit_t.c.target),
    },
)

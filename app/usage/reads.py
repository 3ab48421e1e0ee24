"""Read-only queries over usage records, for the APIs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from app.ledger.state import usage_t


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Every field optional; ``until`` is exclusive. Times are when the call was billed."""

    api_key_id: int | None = None
    model: str | None = None
    action: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def usage_of(organization_id: int, f: UsageFilter) -> Select[Any]:
    """The organization's usage records matching ``f`` (page them with ``pages``)."""
    statement = select(usage_t).where(usage_t.c.organization_id == organization_id)
    for column, value in (
        (usage_t.c.api_key_id, f.api_key_id),
        (usage_t.c.model, f.model),
        (usage_t.c.action, f.action),
        (usage_t.c.request_id, f.request_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if f.since is not None:
        statement = statement.where(usage_t.c.created_at >= f.since)
    if f.until is not None:
        statement = statement.where(usage_t.c.created_at < f.until)
    return statement


def usage_record(conn: Connection, organization_id: int, request_id: str) -> Any:
    statement = usage_of(organization_id, UsageFilter(request_id=request_id))
    return conn.execute(statement).one()

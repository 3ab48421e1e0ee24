"""Read-only queries over usage records, for the APIs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from app.ledger.state import usage_t
from app.pages import count
from app.usage.rollups import DAY, HOUR, floor_day, floor_hour
from app.usage.summary import requests_from


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


def usage_count(conn: Connection, organization_id: int, f: UsageFilter) -> int:
    """How many records match ``f`` (the log's ``totalCount``) without reading them all.

    Without a request id or a time range: the records of the oldest hour still kept,
    counted on the index, plus the rollups from the next hour on (hourly ones to the next
    midnight, daily ones after). Retention prunes whole days, oldest records first, so
    every later hour is still whole in usage and in its rollups; records it pruned are not
    counted, as the log no longer lists them. With a request id or a time range: counted
    on the index the filter uses.
    """
    if f.request_id is not None or f.since is not None or f.until is not None:
        return count(conn, usage_of(organization_id, f))
    oldest = conn.scalar(
        select(usage_t.c.created_at)
        .where(usage_t.c.organization_id == organization_id)
        .order_by(usage_t.c.created_at)
        .limit(1)
    )
    if oldest is None:
        return 0
    next_hour = floor_hour(oldest) + HOUR
    first_hour = count(conn, usage_of(organization_id, replace(f, until=next_hour)))
    return first_hour + requests_from(
        conn,
        organization_id,
        next_hour,
        floor_day(oldest) + DAY,
        f.api_key_id,
        f.model,
        f.action,
    )

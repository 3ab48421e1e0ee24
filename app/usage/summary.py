"""Reads over the usage rollups (``app.usage.rollups``): a summary's series and
breakdowns, spend since a time, and request counts for the usage log. Each reads a few
rows per bucket and dimension, never usage records, so its cost does not grow with them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from app.usage.rollups import (
    DAY,
    WHOLE_ORG,
    Dimension,
    daily_by_t,
    daily_t,
    floor_day,
    floor_hour,
    hourly_by_t,
    hourly_t,
)


def _by(table: Any, organization_id: int, api_key_id: int | None) -> Any:
    """Breakdown rows the caller may see: the organization's, or only its key's."""
    scope = WHOLE_ORG if api_key_id is None else api_key_id
    return table.c.organization_id == organization_id, table.c.scope == scope


def series(
    conn: Connection,
    table: Any,
    organization_id: int,
    api_key_id: int | None,
    start: datetime,
    end: datetime,
) -> dict[datetime, tuple[int, int]]:
    """(spend, requests) per bucket of ``table`` (hourly or daily breakdowns) in
    [start, end); buckets without usage are absent."""
    rows = conn.execute(
        select(table.c.bucket, table.c.spend, table.c.requests).where(
            *_by(table, organization_id, api_key_id),
            table.c.dimension == Dimension.TOTAL,
            table.c.bucket >= start,
            table.c.bucket < end,
        )
    )
    return {bucket: (spend, requests) for bucket, spend, requests in rows}


def breakdown(
    conn: Connection,
    table: Any,
    organization_id: int,
    api_key_id: int | None,
    dimensions: list[Dimension],
    start: datetime,
    end: datetime,
    limit: int | None = None,
) -> list[tuple[str, str, int, int]]:
    """(dimension, value, spend, requests) over [start, end), aggregated in SQL, by spend
    then requests descending, then value; at most ``limit`` rows when given."""
    spend, requests = func.sum(table.c.spend), func.sum(table.c.requests)
    statement = (
        select(table.c.dimension, table.c.value, spend, requests)
        .where(
            *_by(table, organization_id, api_key_id),
            table.c.dimension.in_([str(d) for d in dimensions]),
            table.c.bucket >= start,
            table.c.bucket < end,
        )
        .group_by(table.c.dimension, table.c.value)
        .order_by(spend.desc(), requests.desc(), table.c.value)
    )
    if limit is not None:
        statement = statement.limit(limit)
    return [(d, v, int(s), int(r)) for d, v, s, r in conn.execute(statement)]


def spent_since(
    conn: Connection, organization_id: int, api_key_id: int | None, since: datetime, now: datetime
) -> int:
    """Spend billed from the hour of ``since`` through ``now``: whole days from the daily
    breakdowns, the hours before the first midnight and those of today from the hourly
    ones, so at most 48 hourly rows and a row per day are read."""
    first_hour, today = floor_hour(since), floor_day(now)
    first_midnight = (
        first_hour if floor_day(first_hour) == first_hour else floor_day(first_hour) + DAY
    )

    def total(table: Any, start: datetime, end: datetime | None, *, inclusive: bool) -> int:
        where = [
            *_by(table, organization_id, api_key_id),
            table.c.dimension == Dimension.TOTAL,
            table.c.bucket >= start,
        ]
        if end is not None:
            where.append(table.c.bucket <= end if inclusive else table.c.bucket < end)
        return int(
            conn.scalar(select(func.coalesce(func.sum(table.c.spend), 0)).where(*where)) or 0
        )

    if first_midnight >= today:
        return total(hourly_by_t, first_hour, now, inclusive=True)
    return (
        total(hourly_by_t, first_hour, first_midnight, inclusive=False)
        + total(daily_by_t, first_midnight, today, inclusive=False)
        + total(hourly_by_t, today, now, inclusive=True)
    )


def requests_from(
    conn: Connection,
    organization_id: int,
    hour: datetime,
    day: datetime,
    api_key_id: int | None,
    model: str | None,
    action: str | None,
) -> int:
    """Calls billed from the hour ``hour`` on that match the filters: hourly rollups up
    to the midnight ``day``, daily ones from it. From one breakdown when at most one of
    model and action is given, else from the cells."""
    both = model is not None and action is not None
    hourly, daily = (hourly_t, daily_t) if both else (hourly_by_t, daily_by_t)
    total = 0
    for t, since, until in ((hourly, hour, day), (daily, day, None)):
        if both:
            where = [
                t.c.organization_id == organization_id,
                t.c.model == model,
                t.c.action == action,
            ]
            if api_key_id is not None:
                where.append(t.c.api_key_id == api_key_id)
        else:
            dimension, value = (
                (Dimension.MODEL, model)
                if model is not None
                else (Dimension.ACTION, action)
                if action is not None
                else (Dimension.TOTAL, "")
            )
            where = [
                *_by(t, organization_id, api_key_id),
                t.c.dimension == dimension,
                t.c.value == value,
            ]
        where.append(t.c.bucket >= since)
        if until is not None:
            where.append(t.c.bucket < until)
        statement = select(func.coalesce(func.sum(t.c.requests), 0)).where(*where)
        total += int(conn.scalar(statement) or 0)
    return total

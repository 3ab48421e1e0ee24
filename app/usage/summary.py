"""Reads over the usage rollups (``app.usage.rollups``): a summary's series and
breakdowns, spend since a time, and request counts for the usage log. Each reads a few
rows per bucket and dimension, never usage records, so its cost does not grow with them.

Their statements are built once per table and shape (``Prebuilt``) and run at the
driver: building one cost several times what SQLite takes to run it, and a dashboard's
summary runs several per request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, Table, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from app.db import Prebuilt, in_list
from app.usage.rollups import (
    DAY,
    HOUR,
    WHOLE_ORG,
    Dimension,
    daily_by_t,
    daily_t,
    floor_day,
    floor_hour,
    hourly_by_t,
    hourly_t,
)

_ORG: BindParameter[int] = bindparam("organization_id")


def _by(t: Table) -> tuple[ColumnElement[bool], ...]:
    """Breakdown rows the caller may see: the organization's, or only its key's
    (``:scope``, see ``_scope``)."""
    return t.c.organization_id == _ORG, t.c.scope == bindparam("scope")


def _scope(organization_id: int, api_key_id: int | None) -> dict[str, Any]:
    scope = WHOLE_ORG if api_key_id is None else api_key_id
    return {"organization_id": organization_id, "scope": scope}


def _within(t: Table, start: str, end: str | None = None) -> tuple[ColumnElement[bool], ...]:
    """``t``'s buckets from ``:start`` on, and before ``:end`` if named: bound as the
    column's type, so they reach the driver as stored."""
    bucket = t.c.bucket
    since = bucket >= bindparam(start, type_=bucket.type)
    return (since,) if end is None else (since, bucket < bindparam(end, type_=bucket.type))


def _each(build: Callable[[Table, str], Select[Any]], *tables: Table) -> dict[str, Prebuilt[Any]]:
    """``build``'s statement over each of ``tables``, built once: by table name."""

    def prebuilt(t: Table) -> Prebuilt[Any]:
        return Prebuilt(lambda dialect, _lock: build(t, dialect))

    return {t.name: prebuilt(t) for t in tables}


def _total_spend(t: Table, start: str, end: str) -> Any:
    return (
        select(func.coalesce(func.sum(t.c.spend), 0))
        .where(*_by(t), t.c.dimension == Dimension.TOTAL, *_within(t, start, end))
        .scalar_subquery()
    )


_series = _each(
    lambda t, _dialect: select(t.c.bucket, t.c.spend, t.c.requests).where(
        *_by(t), t.c.dimension == Dimension.TOTAL, *_within(t, "start", "end")
    ),
    hourly_by_t,
    daily_by_t,
)


def _breakdown(*, limited: bool) -> Callable[[Table, str], Select[Any]]:
    def build(t: Table, dialect: str) -> Select[Any]:
        spend, requests = func.sum(t.c.spend), func.sum(t.c.requests)
        statement = (
            select(t.c.dimension, t.c.value, spend, requests)
            .where(
                *_by(t), in_list(t.c.dimension, "dimensions", dialect), *_within(t, "start", "end")
            )
            .group_by(t.c.dimension, t.c.value)
            .order_by(spend.desc(), requests.desc(), t.c.value)
        )
        return statement.limit(bindparam("limit", type_=Integer)) if limited else statement

    return build


_breakdowns = {
    limited: _each(_breakdown(limited=limited), hourly_by_t, daily_by_t)
    for limited in (False, True)
}
# Hourly rows in [:first_hour, :first_midnight), daily in [:first_midnight, :today),
# hourly in [:today, :end): one statement, one trip to the database.
_spent = Prebuilt(
    lambda _dialect, _lock: select(
        _total_spend(hourly_by_t, "first_hour", "first_midnight")
        + _total_spend(daily_by_t, "first_midnight", "today")
        + _total_spend(hourly_by_t, "today", "end")
    )
)


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
    params = {**_scope(organization_id, api_key_id), "start": start, "end": end}
    return {
        bucket: (spend, requests)
        for bucket, spend, requests in _series[table.name].rows(conn, params)
    }


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
    params = {
        **_scope(organization_id, api_key_id),
        "dimensions": [str(d) for d in dimensions],
        "start": start,
        "end": end,
        "limit": limit,
    }
    statement = _breakdowns[limit is not None][table.name]
    return [(d, v, int(s), int(r)) for d, v, s, r in statement.rows(conn, params)]


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
    if first_midnight > today:  # since is today or later: hourly rows alone, from its hour
        first_midnight = today = first_hour
    params = {
        **_scope(organization_id, api_key_id),
        "first_hour": first_hour,
        "first_midnight": first_midnight,
        "today": today,
        "end": floor_hour(now) + HOUR,  # buckets are whole hours: through now's
    }
    (spent,) = _spent.rows(conn, params)[0]
    return int(spent)


def _requests(hourly: Table, daily: Table, where: Callable[[Table], list[Any]]) -> Prebuilt[Any]:
    """Calls in ``hourly`` rows of [:hour, :day) and ``daily`` ones from :day on, among
    the rows ``where`` picks: one statement."""

    def count(t: Table, *within: ColumnElement[bool]) -> Any:
        total = func.coalesce(func.sum(t.c.requests), 0)
        return (
            select(total).where(t.c.organization_id == _ORG, *where(t), *within).scalar_subquery()
        )

    return Prebuilt(
        lambda _dialect, _lock: select(
            count(hourly, *_within(hourly, "hour", "day")) + count(daily, *_within(daily, "day"))
        )
    )


def _cells(*, keyed: bool) -> Callable[[Table], list[Any]]:
    def where(t: Table) -> list[Any]:
        matches = [t.c.model == bindparam("model"), t.c.action == bindparam("action")]
        return [*matches, t.c.api_key_id == bindparam("api_key_id")] if keyed else matches

    return where


# From the cells when both model and action are given (with the key's or not), else
# from the breakdown of the one given (the total without either).
_cell_requests = {
    keyed: _requests(hourly_t, daily_t, _cells(keyed=keyed)) for keyed in (False, True)
}
_breakdown_requests = _requests(
    hourly_by_t,
    daily_by_t,
    lambda t: [*_by(t), t.c.dimension == bindparam("dimension"), t.c.value == bindparam("value")],
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
    params: dict[str, Any] = {"organization_id": organization_id, "hour": hour, "day": day}
    if model is not None and action is not None:
        params |= {"model": model, "action": action, "api_key_id": api_key_id}
        statement = _cell_requests[api_key_id is not None]
    else:
        dimension, value = (
            (Dimension.MODEL, model)
            if model is not None
            else (Dimension.ACTION, action)
            if action is not None
            else (Dimension.TOTAL, "")
        )
        params |= {**_scope(organization_id, api_key_id), "dimension": dimension, "value": value}
        statement = _breakdown_requests
    (requests,) = statement.rows(conn, params)[0]
    return int(requests)

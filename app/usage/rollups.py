"""Usage rollups: spend and request counts per hour and per day (UTC), by billing time
(``created_at``), in two shapes:

- the cells: per org x API key x model x action (``usage_hourly``, ``usage_daily``);
  any combination of those filters sums them, and ``verify`` checks them against usage;
- the breakdowns: per org (or one key) x one dimension x its value (``usage_hourly_by``,
  ``usage_daily_by``): the total, per model, action, key and the ``agent`` and
  ``conversation`` tags, so a summary reads a few rows per bucket and dimension, however
  many cells or records there are.

The writer upserts both in the same transaction as the usage records they count
(``Book.flush`` calls ``write``), aggregated per batch, so summaries never scan usage and
never drift from the ledger. Raw usage older than the retention setting may be pruned
(``app.maintenance``); rollups stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from app.db import Prebuilt, credits_field, table, time_field
from app.usage.tables import UsageRow

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(at: datetime) -> datetime:
    return floor_hour(at).replace(hour=0)


class UsageHourly(SQLModel, table=True):
    __tablename__ = "usage_hourly"
    __table_args__ = (Index("ix_usage_hourly_key", "api_key_id", "bucket"),)

    organization_id: int = Field(foreign_key="organizations.id", primary_key=True)
    # The start of the hour (UTC) the calls were billed in.
    bucket: datetime = time_field(primary_key=True)
    api_key_id: int = Field(foreign_key="api_keys.id", primary_key=True)
    model: str = Field(max_length=200, primary_key=True)
    action: str = Field(max_length=64, primary_key=True)
    spend: int = credits_field(default=0)
    requests: int = Field(default=0)


class UsageDaily(SQLModel, table=True):
    __tablename__ = "usage_daily"
    __table_args__ = (Index("ix_usage_daily_key", "api_key_id", "bucket"),)

    organization_id: int = Field(foreign_key="organizations.id", primary_key=True)
    # The start of the day (UTC) the calls were billed in.
    bucket: datetime = time_field(primary_key=True)
    api_key_id: int = Field(foreign_key="api_keys.id", primary_key=True)
    model: str = Field(max_length=200, primary_key=True)
    action: str = Field(max_length=64, primary_key=True)
    spend: int = credits_field(default=0)
    requests: int = Field(default=0)


class Dimension(StrEnum):
    """What a breakdown row counts by; ``TOTAL`` rows (value "") are the series."""

    TOTAL = "total"
    MODEL = "model"
    ACTION = "action"
    API_KEY = "api_key"  # the value is the key's id; only in whole-organization rows
    AGENT = "agent"  # the tags 8bit-ai sends with each call
    CONVERSATION = "conversation"


TAGS = (Dimension.AGENT, Dimension.CONVERSATION)
# ``scope`` of the rows that count the whole organization (API key ids start at 1).
WHOLE_ORG = 0


class UsageHourlyBy(SQLModel, table=True):
    __tablename__ = "usage_hourly_by"

    organization_id: int = Field(foreign_key="organizations.id", primary_key=True)
    # 0: the whole organization; else one API key's id (what that key may see).
    scope: int = Field(primary_key=True)
    dimension: str = Field(max_length=16, primary_key=True)
    bucket: datetime = time_field(primary_key=True)
    # The model, action, key id or tag value; "" for the total.
    value: str = Field(max_length=200, primary_key=True)
    spend: int = credits_field(default=0)
    requests: int = Field(default=0)


class UsageDailyBy(SQLModel, table=True):
    __tablename__ = "usage_daily_by"

    organization_id: int = Field(foreign_key="organizations.id", primary_key=True)
    # 0: the whole organization; else one API key's id (what that key may see).
    scope: int = Field(primary_key=True)
    dimension: str = Field(max_length=16, primary_key=True)
    bucket: datetime = time_field(primary_key=True)
    # The model, action, key id or tag value; "" for the total.
    value: str = Field(max_length=200, primary_key=True)
    spend: int = credits_field(default=0)
    requests: int = Field(default=0)


hourly_t = table(UsageHourly)
daily_t = table(UsageDaily)
hourly_by_t = table(UsageHourlyBy)
daily_by_t = table(UsageDailyBy)
_KEY = ("organization_id", "bucket", "api_key_id", "model", "action")
_BY_KEY = ("organization_id", "scope", "dimension", "bucket", "value")


def _upsert(t: Any, key: Sequence[str]) -> Prebuilt[Insert]:
    def build(dialect: str, _lock: bool) -> Insert:
        statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t)
        return statement.on_conflict_do_update(
            index_elements=[t.c[name] for name in key],
            set_={
                "spend": t.c.spend + statement.excluded.spend,
                "requests": t.c.requests + statement.excluded.requests,
            },
        )

    return Prebuilt(build)


upsert_hourly = _upsert(hourly_t, _KEY)
upsert_daily = _upsert(daily_t, _KEY)
upsert_hourly_by = _upsert(hourly_by_t, _BY_KEY)
upsert_daily_by = _upsert(daily_by_t, _BY_KEY)


def write(conn: Connection, usage: Sequence[UsageRow], billed_at: datetime) -> None:
    """Count one transaction's usage, all billed at ``billed_at``, in every rollup."""
    cells = aggregate(
        ((u.organization_id, u.api_key_id, u.model, u.action, u.cost) for u in usage), billed_at
    )
    if cells is None:
        return
    day = floor_day(billed_at)
    conn.execute(upsert_hourly(conn), cells)
    conn.execute(upsert_daily(conn), [r | {"bucket": day} for r in cells])
    by = breakdowns(usage, floor_hour(billed_at))
    conn.execute(upsert_hourly_by(conn), by)
    conn.execute(upsert_daily_by(conn), [r | {"bucket": day} for r in by])


def breakdowns(usage: Iterable[UsageRow], bucket: datetime) -> list[dict[str, Any]]:
    """Breakdown rows of ``usage`` in ``bucket``: each record counts once per dimension
    it has a value for, in its organization's rows and in its key's."""
    sums: dict[tuple[int, int, str, str], list[int]] = {}

    def add(org: int, scope: int, dimension: str, value: str, cost: int) -> None:
        found = sums.get((org, scope, dimension, value))
        if found is None:
            sums[(org, scope, dimension, value)] = [cost, 1]
        else:
            found[0] += cost
            found[1] += 1

    for u in usage:
        org, key, cost = u.organization_id, u.api_key_id, u.cost
        add(org, WHOLE_ORG, Dimension.API_KEY, str(key), cost)
        for scope in (WHOLE_ORG, key):
            add(org, scope, Dimension.TOTAL, "", cost)
            add(org, scope, Dimension.MODEL, u.model, cost)
            add(org, scope, Dimension.ACTION, u.action, cost)
            for tag in TAGS:
                value = u.tags.get(tag)
                if value is not None:
                    add(org, scope, tag, value, cost)
    return [
        {
            "organization_id": org,
            "scope": scope,
            "dimension": dimension,
            "bucket": bucket,
            "value": value,
            "spend": spend,
            "requests": requests,
        }
        for (org, scope, dimension, value), (spend, requests) in sums.items()
    ]


def aggregate(
    usage: Iterable[tuple[int, int, str, str, int]], billed_at: datetime
) -> list[dict[str, Any]] | None:
    """``(organization, key, model, action, cost)`` of one transaction's usage, all
    billed at ``billed_at``, as hourly rollup rows; the daily rows are the same with
    another bucket. None when there is no usage."""
    sums: dict[tuple[int, int, str, str], list[int]] = {}
    for org, key, model, action, cost in usage:
        found = sums.get((org, key, model, action))
        if found is None:
            sums[(org, key, model, action)] = [cost, 1]
        else:
            found[0] += cost
            found[1] += 1
    if not sums:
        return None
    bucket = floor_hour(billed_at)
    return [
        {
            "organization_id": org,
            "bucket": bucket,
            "api_key_id": key,
            "model": model,
            "action": action,
            "spend": spend,
            "requests": requests,
        }
        for (org, key, model, action), (spend, requests) in sums.items()
    ]

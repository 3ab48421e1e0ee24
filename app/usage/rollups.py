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

from sqlalchemy import Index, Table
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from app.db import BulkInsert, credits_field, driver_time, table, time_field
from app.usage.tables import UsageRow

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(at: datetime) -> datetime:
    return floor_hour(at).replace(hour=0)


class _Cell(SQLModel):
    """Spend and calls of one org x bucket x API key x model x action."""

    organization_id: int = Field(foreign_key="organizations.id", primary_key=True)
    # The start of the hour or day (UTC) the calls were billed in.
    bucket: datetime = time_field(primary_key=True)
    api_key_id: int = Field(foreign_key="api_keys.id", primary_key=True)
    model: str = Field(max_length=200, primary_key=True)
    action: str = Field(max_length=64, primary_key=True)
    spend: int = credits_field(default=0)
    requests: int = Field(default=0)


class UsageHourly(_Cell, table=True):
    __tablename__ = "usage_hourly"
    __table_args__ = (Index("ix_usage_hourly_key", "api_key_id", "bucket"),)


class UsageDaily(_Cell, table=True):
    __tablename__ = "usage_daily"
    __table_args__ = (Index("ix_usage_daily_key", "api_key_id", "bucket"),)


class Dimension(StrEnum):
    """What a breakdown row counts by; ``TOTAL`` rows (value "") are the series."""

    TOTAL = "total"
    MODEL = "model"
    ACTION = "action"
    API_KEY = "api_key"  # the value is the key's id; only in whole-organization rows
    AGENT = "agent"  # the tags 8bit-ai sends with each call
    CONVERSATION = "conversation"


TAGS = (Dimension.AGENT.value, Dimension.CONVERSATION.value)
# Plain strings for the driver.
_TOTAL, _MODEL, _ACTION, _API_KEY = (
    d.value for d in (Dimension.TOTAL, Dimension.MODEL, Dimension.ACTION, Dimension.API_KEY)
)
# ``scope`` of the rows that count the whole organization (API key ids start at 1).
WHOLE_ORG = 0


class _Breakdown(SQLModel):
    """Spend and calls of one org (or key) x dimension x bucket x value."""

    organization_id: int = Field(foreign_key="organizations.id", primary_key=True)
    # 0: the whole organization; else one API key's id (what that key may see).
    scope: int = Field(primary_key=True)
    dimension: str = Field(max_length=16, primary_key=True)
    # The start of the hour or day (UTC) the calls were billed in.
    bucket: datetime = time_field(primary_key=True)
    # The model, action, key id or tag value; "" for the total.
    value: str = Field(max_length=200, primary_key=True)
    spend: int = credits_field(default=0)
    requests: int = Field(default=0)


class UsageHourlyBy(_Breakdown, table=True):
    __tablename__ = "usage_hourly_by"


class UsageDailyBy(_Breakdown, table=True):
    __tablename__ = "usage_daily_by"


hourly_t = table(UsageHourly)
daily_t = table(UsageDaily)
hourly_by_t = table(UsageHourlyBy)
daily_by_t = table(UsageDailyBy)
_KEY = ("organization_id", "bucket", "api_key_id", "model", "action")
_BY_KEY = ("organization_id", "scope", "dimension", "bucket", "value")


_COUNTS = ("spend", "requests")


def _upsert(t: Table, key: Sequence[str]) -> BulkInsert:
    """Adds (spend, requests) to rollup rows, creating those missing, at the driver (a
    batch writes a few rollup rows per record; Core's executemany costs more per row
    than the database does)."""
    return BulkInsert(t, (*key, *_COUNTS), conflict=key, add=_COUNTS)


_upsert_hourly = _upsert(hourly_t, _KEY)
_upsert_daily = _upsert(daily_t, _KEY)
_upsert_hourly_by = _upsert(hourly_by_t, _BY_KEY)
_upsert_daily_by = _upsert(daily_by_t, _BY_KEY)

Sums = dict[tuple[Any, ...], list[int]]


def _add(sums: Sums, group: tuple[Any, ...], spend: int, requests: int = 1) -> None:
    found = sums.get(group)
    if found is None:
        sums[group] = [spend, requests]
    else:
        found[0] += spend
        found[1] += requests


def write(conn: Connection, usage: Sequence[UsageRow], billed_at: datetime) -> None:
    """Count one transaction's usage, all billed at ``billed_at``, in every rollup."""
    if not usage:
        return
    to_driver = driver_time(conn)
    hour, day = to_driver(floor_hour(billed_at)), to_driver(floor_day(billed_at))
    cells = aggregate(usage)
    for upsert, bucket in ((_upsert_hourly, hour), (_upsert_daily, day)):
        upsert.execute(
            conn,
            [(org, bucket, key, model, action, *sums) for (org, key, model, action), sums in cells],
        )
    by = breakdowns(cells, usage)
    for upsert, bucket in ((_upsert_hourly_by, hour), (_upsert_daily_by, day)):
        upsert.execute(
            conn,
            [(org, scope, dim, bucket, value, *sums) for (org, scope, dim, value), sums in by],
        )


def aggregate(usage: Iterable[UsageRow]) -> list[tuple[tuple[Any, ...], list[int]]]:
    """(spend, requests) per (organization, key, model, action): the cells."""
    sums: Sums = {}
    for u in usage:
        _add(sums, (u.organization_id, u.api_key_id, u.model, u.action), u.cost)
    return list(sums.items())


def breakdowns(
    cells: Iterable[tuple[tuple[Any, ...], list[int]]], usage: Iterable[UsageRow]
) -> list[tuple[tuple[Any, ...], list[int]]]:
    """(spend, requests) per (organization, scope, dimension, value): each record counts
    once per dimension it has a value for, in its organization's rows and in its key's.
    The key, model and action ones add up the ``cells`` of those records (a batch has a
    few cells, however many records); the tags come from the records that carry them."""
    sums: Sums = {}
    for (org, key, model, action), (spend, requests) in cells:
        _add(sums, (org, WHOLE_ORG, _API_KEY, str(key)), spend, requests)
        for scope in (WHOLE_ORG, key):
            _add(sums, (org, scope, _TOTAL, ""), spend, requests)
            _add(sums, (org, scope, _MODEL, model), spend, requests)
            _add(sums, (org, scope, _ACTION, action), spend, requests)
    for u in usage:
        if not u.tags:
            continue
        for tag in TAGS:
            value = u.tags.get(tag)
            if value is not None:
                for scope in (WHOLE_ORG, u.api_key_id):
                    _add(sums, (u.organization_id, scope, tag, value), u.cost)
    return list(sums.items())

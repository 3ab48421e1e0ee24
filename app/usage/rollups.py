"""Usage rollups: spend and request counts per org x API key x model x action, per hour
and per day (UTC), by billing time (``created_at``).

The writer upserts them in the same transaction as the usage records they count
(``Book.flush``), aggregated per batch, so summaries read a few rollup rows instead of
scanning usage and never drift from the ledger. Raw usage older than the retention
setting may be pruned (``app.maintenance``); rollups stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Index, Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from app.db import Prebuilt, credits_field, table, time_field

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


hourly_t = table(UsageHourly)
daily_t = table(UsageDaily)
_KEY = ("organization_id", "bucket", "api_key_id", "model", "action")


def _upsert(t: Any) -> Prebuilt[Insert]:
    def build(dialect: str, _lock: bool) -> Insert:
        statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t)
        return statement.on_conflict_do_update(
            index_elements=[t.c[name] for name in _KEY],
            set_={
                "spend": t.c.spend + statement.excluded.spend,
                "requests": t.c.requests + statement.excluded.requests,
            },
        )

    return Prebuilt(build)


upsert_hourly = _upsert(hourly_t)
upsert_daily = _upsert(daily_t)


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

"""``Organization.usageSummary``: totals, a time series and breakdowns of usage, read
from the hourly and daily rollups (``app.usage.rollups``), never from usage records."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from app.graphql.context import Info
from app.graphql.errors import Code, error
from app.graphql.keys import ApiKey, keys_by_id
from app.graphql.money import Amount
from app.graphql.overview import overview_of
from app.ids import to_global_id
from app.usage.rollups import DAY, HOUR, daily_t, floor_day, floor_hour, hourly_t

# The longest range a summary covers, per granularity: bounded series and reads.
MAX_RANGE = {"HOUR": timedelta(days=31), "DAY": timedelta(days=400)}

PROJECTION_DESCRIPTION = (
    "A forecast of the spend of the current period: the period is the plan's current "
    "period when the organization has a plan, else the calendar month (UTC). Spend so "
    "far in it (from the hourly rollups, counted from the hour the period began) is "
    "extrapolated linearly to the period's end: spent x period length / time elapsed "
    "(at least one hour elapsed is assumed). Independent of since and until; an API key "
    "sees its own key's forecast."
)


@strawberry.enum(description="The width of a usage summary's time buckets (UTC).")
class Granularity(Enum):
    HOUR = strawberry.enum_value("HOUR", description="One bucket per hour.")
    DAY = strawberry.enum_value("DAY", description="One bucket per calendar day (UTC).")


@strawberry.type(description="Usage within one time bucket.")
class UsageBucket:
    bucket_start: datetime = strawberry.field(description="The bucket's start (UTC).")
    spend: Amount = strawberry.field(description="What the calls billed in it cost.")
    requests: int = strawberry.field(description="Calls billed in it, failed ones included.")


@strawberry.type(description="Usage of one model within the summary's range.")
class ModelUsage:
    model: str = strawberry.field(description="The model, as the gateway named it.")
    spend: Amount = strawberry.field(description="What its calls cost.")
    requests: int = strawberry.field(description="Its calls, failed ones included.")


@strawberry.type(description="Usage of one billed action within the summary's range.")
class ActionUsage:
    action: str = strawberry.field(description='The action, such as "llm_inference".')
    spend: Amount = strawberry.field(description="What its calls cost.")
    requests: int = strawberry.field(description="Its calls, failed ones included.")


@strawberry.type(description="Usage of one API key within the summary's range.")
class ApiKeyUsage:
    api_key: ApiKey | None = strawberry.field(
        description="The key; null if the caller may not see it."
    )
    spend: Amount = strawberry.field(description="What its calls cost.")
    requests: int = strawberry.field(description="Its calls, failed ones included.")


@strawberry.type(
    description="Usage over a time range by billing time (UTC), from rollups maintained in "
    "the same transaction as the usage, so it always agrees with the ledger and the usage "
    "log. An API key sees only its own key's figures."
)
class UsageSummary:
    total: Amount = strawberry.field(description="What the calls in the range cost.")
    requests: int = strawberry.field(description="Calls in the range, failed ones included.")
    series: list[UsageBucket] = strawberry.field(
        description="Every bucket of the range in order, oldest first; empty ones as zero."
    )
    by_model: list[ModelUsage] = strawberry.field(description="Per model, by spend descending.")
    by_action: list[ActionUsage] = strawberry.field(description="Per action, by spend descending.")
    by_api_key: list[ApiKeyUsage] = strawberry.field(
        description="Per API key, by spend descending."
    )
    projected_period_spend: Amount = strawberry.field(description=PROJECTION_DESCRIPTION)


@dataclass(frozen=True, slots=True)
class _Figures:
    series: dict[datetime, tuple[int, int]]
    by_model: dict[str, list[int]]
    by_action: dict[str, list[int]]
    by_key: dict[int, list[int]]
    period_spent: int


def _align(at: datetime, granularity: Granularity, *, up: bool) -> datetime:
    floor = floor_hour if granularity is Granularity.HOUR else floor_day
    step = HOUR if granularity is Granularity.HOUR else DAY
    start = floor(at)
    return start + step if up and start != at.astimezone(UTC) else start


def check_range(
    since: datetime, until: datetime, granularity: Granularity
) -> tuple[datetime, datetime]:
    """The range rounded out to whole buckets, or a BAD_USER_INPUT error."""
    if since.tzinfo is None or until.tzinfo is None:
        raise error(Code.BAD_USER_INPUT, "since and until must have a time zone")
    start, end = _align(since, granularity, up=False), _align(until, granularity, up=True)
    if end <= start:
        raise error(Code.BAD_USER_INPUT, "until must be after since")
    if end - start > MAX_RANGE[granularity.name]:
        days = MAX_RANGE[granularity.name].days
        raise error(
            Code.BAD_USER_INPUT,
            f"the range may span at most {days} days at {granularity.name} granularity",
        )
    return start, end


def _figures(
    conn: Connection,
    organization_id: int,
    api_key_id: int | None,
    granularity: Granularity,
    start: datetime,
    end: datetime,
    period_start: datetime,
    now: datetime,
) -> _Figures:
    t = hourly_t if granularity is Granularity.HOUR else daily_t

    def scoped(statement: Any, table: Any) -> Any:
        statement = statement.where(table.c.organization_id == organization_id)
        if api_key_id is not None:
            statement = statement.where(table.c.api_key_id == api_key_id)
        return statement

    series: dict[datetime, tuple[int, int]] = {}
    by_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_action: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_key: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    rows = conn.execute(
        scoped(
            select(t.c.bucket, t.c.api_key_id, t.c.model, t.c.action, t.c.spend, t.c.requests),
            t,
        ).where(t.c.bucket >= start, t.c.bucket < end)
    )
    for bucket, key_id, model, action, spend, requests in rows:
        was = series.get(bucket, (0, 0))
        series[bucket] = (was[0] + spend, was[1] + requests)
        for sums in (by_model[model], by_action[action], by_key[key_id]):
            sums[0] += spend
            sums[1] += requests
    period_spent = conn.scalar(
        scoped(select(func.coalesce(func.sum(hourly_t.c.spend), 0)), hourly_t).where(
            hourly_t.c.bucket >= floor_hour(period_start), hourly_t.c.bucket <= now
        )
    )
    return _Figures(series, by_model, by_action, by_key, int(period_spent or 0))


def _current_period(now: datetime, plan: Any) -> tuple[datetime, datetime]:
    if plan is not None and plan.period_start <= now < plan.period_end:
        return plan.period_start, plan.period_end
    start = floor_day(now).replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def project(spent: int, start: datetime, end: datetime, now: datetime) -> int:
    """``spent`` since ``start`` extrapolated linearly to ``end`` (at least an hour
    elapsed is assumed, so an hour-old period does not forecast wildly)."""
    elapsed = max(now - start, HOUR)
    if elapsed >= end - start:
        return spent
    return spent * int((end - start).total_seconds()) // int(elapsed.total_seconds())


def _ranked(sums: dict[Any, list[int]]) -> list[tuple[Any, int, int]]:
    return sorted(
        ((name, spend, requests) for name, (spend, requests) in sums.items()),
        key=lambda item: (-item[1], -item[2], str(item[0])),
    )


async def usage_summary(
    info: Info,
    organization_id: int,
    since: datetime,
    until: datetime,
    granularity: Granularity,
) -> UsageSummary:
    principal = info.context.caller()
    start, end = check_range(since, until, granularity)
    runtime = info.context.runtime
    now = runtime.clock.now()
    billing = await overview_of(info, organization_id)
    period_start, period_end = _current_period(
        now, runtime.subscriptions.active(billing.subscription)
    )

    def load(conn: Connection) -> tuple[_Figures, dict[str, ApiKey]]:
        figures = _figures(
            conn,
            organization_id,
            principal.api_key_id,
            granularity,
            start,
            end,
            period_start,
            now,
        )
        keys = keys_by_id(conn, principal, list(figures.by_key), now) if figures.by_key else []
        return figures, {str(key.id): key for key in keys}

    figures, keys = await runtime.db.read(load)
    step = HOUR if granularity is Granularity.HOUR else DAY
    series = []
    at = start
    while at < end:
        spend, requests = figures.series.get(at, (0, 0))
        series.append(UsageBucket(bucket_start=at, spend=Amount.of(spend), requests=requests))
        at += step
    return UsageSummary(
        total=Amount.of(sum(b[0] for b in figures.series.values())),
        requests=sum(b[1] for b in figures.series.values()),
        series=series,
        by_model=[
            ModelUsage(model=m, spend=Amount.of(s), requests=r)
            for m, s, r in _ranked(figures.by_model)
        ],
        by_action=[
            ActionUsage(action=a, spend=Amount.of(s), requests=r)
            for a, s, r in _ranked(figures.by_action)
        ],
        by_api_key=[
            ApiKeyUsage(api_key=keys.get(to_global_id("ApiKey", k)), spend=Amount.of(s), requests=r)
            for k, s, r in _ranked(figures.by_key)
        ],
        projected_period_spend=Amount.of(
            project(figures.period_spent, period_start, period_end, now)
        ),
    )


SinceArg = Annotated[
    datetime,
    strawberry.argument(
        description="The range's start (UTC offset required), rounded down to the bucket."
    ),
]
UntilArg = Annotated[
    datetime,
    strawberry.argument(
        description="The range's end, exclusive, rounded up to the bucket's end. At most "
        "31 days after since at HOUR granularity, 400 days at DAY."
    ),
]
GranularityArg = Annotated[
    Granularity, strawberry.argument(description="The width of the series' buckets.")
]

"""``Organization.usageSummary``: totals, a time series and breakdowns of usage, read
from the hourly and daily rollups (``app.usage.rollups``), never from usage records."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy.engine import Connection

from app.graphql.context import Info
from app.graphql.errors import Code, error
from app.graphql.keys import ApiKey, keys_by_id
from app.graphql.money import Amount
from app.ids import to_global_id
from app.orgs.billing import subscription_row
from app.usage.rollups import DAY, HOUR, Dimension, daily_by_t, floor_day, floor_hour, hourly_by_t
from app.usage.summary import breakdown, series, spent_since

# The longest range a summary covers, per granularity: bounded series and reads.
MAX_RANGE = {"HOUR": timedelta(days=31), "DAY": timedelta(days=400)}
# The most values a tag breakdown lists (conversations can be many).
MAX_TAG_VALUES = 100

PROJECTION_DESCRIPTION = (
    "A forecast of the spend of the current period: the period is the plan's current "
    "period when the organization has a plan, else the calendar month (UTC). Spend so "
    "far in it (from the rollups, counted from the hour the period began) is "
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


@strawberry.type(description="Usage carrying one value of a tag within the summary's range.")
class TagUsage:
    value: str = strawberry.field(description="The tag's value, as the gateway sent it.")
    spend: Amount = strawberry.field(description="What the calls with it cost.")
    requests: int = strawberry.field(description="The calls with it, failed ones included.")


@dataclass(frozen=True, slots=True)
class _Scope:
    """What a summary covers: the breakdown table of its granularity, whose rows, when."""

    table: Any
    organization_id: int
    api_key_id: int | None
    start: datetime
    end: datetime

    async def tags(self, info: Info, tag: Dimension, first: int) -> list[TagUsage]:
        if not 1 <= first <= MAX_TAG_VALUES:
            raise error(Code.BAD_USER_INPUT, f"first: must be from 1 to {MAX_TAG_VALUES}")
        rows = await info.context.runtime.db.read(
            lambda conn: breakdown(
                conn,
                self.table,
                self.organization_id,
                self.api_key_id,
                [tag],
                self.start,
                self.end,
                first,
            )
        )
        return [TagUsage(value=v, spend=Amount.of(s), requests=r) for _, v, s, r in rows]


FirstTags = Annotated[
    int,
    strawberry.argument(
        description=f"How many values, those of the highest spend (1 to {MAX_TAG_VALUES})."
    ),
]


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
    _scope: strawberry.Private[_Scope]

    @strawberry.field(
        description='Per value of the "agent" tag (8bit-ai\'s agents), by spend descending; '
        "calls without the tag are not in it."
    )
    async def by_agent(self, info: Info, first: FirstTags = MAX_TAG_VALUES) -> list[TagUsage]:
        return await self._scope.tags(info, Dimension.AGENT, first)

    @strawberry.field(
        description='Per value of the "conversation" tag, by spend descending; calls '
        "without the tag are not in it."
    )
    async def by_conversation(
        self, info: Info, first: FirstTags = MAX_TAG_VALUES
    ) -> list[TagUsage]:
        return await self._scope.tags(info, Dimension.CONVERSATION, first)


@dataclass(frozen=True, slots=True)
class _Figures:
    series: dict[datetime, tuple[int, int]]
    # (dimension, value, spend, requests), ranked.
    breakdown: list[tuple[str, str, int, int]]
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


def _figures(conn: Connection, scope: _Scope, period_start: datetime, now: datetime) -> _Figures:
    org, key = scope.organization_id, scope.api_key_id
    # A key's own rows have no per-key breakdown: its total is the one entry.
    dimensions = [Dimension.MODEL, Dimension.ACTION] + ([Dimension.API_KEY] if key is None else [])
    return _Figures(
        series(conn, scope.table, org, key, scope.start, scope.end),
        breakdown(conn, scope.table, org, key, dimensions, scope.start, scope.end),
        spent_since(conn, org, key, period_start, now),
    )


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
    scope = _Scope(
        hourly_by_t if granularity is Granularity.HOUR else daily_by_t,
        organization_id,
        principal.api_key_id,
        start,
        end,
    )

    # One read: the plan (for the period), the figures and the keys they name.
    def load(conn: Connection) -> tuple[tuple[datetime, datetime], _Figures, dict[str, ApiKey]]:
        plan = runtime.subscriptions.active(subscription_row(conn, organization_id))
        period = _current_period(now, plan)
        figures = _figures(conn, scope, period[0], now)
        key_ids = [int(v) for d, v, _, _ in figures.breakdown if d == Dimension.API_KEY]
        if principal.api_key_id is not None and figures.series:
            key_ids = [principal.api_key_id]
        keys = keys_by_id(conn, principal, key_ids, now, windows=False)
        return period, figures, {str(key.id): key for key in keys}

    (period_start, period_end), figures, keys = await runtime.db.read(load)
    step = HOUR if granularity is Granularity.HOUR else DAY
    series = []
    at = start
    while at < end:
        spend, requests = figures.series.get(at, (0, 0))
        series.append(UsageBucket(bucket_start=at, spend=Amount.of(spend), requests=requests))
        at += step
    total = sum(b[0] for b in figures.series.values())
    requests = sum(b[1] for b in figures.series.values())
    ranked: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for dimension, value, spend, count in figures.breakdown:
        ranked[dimension].append((value, spend, count))
    if principal.api_key_id is not None and requests:
        ranked[Dimension.API_KEY] = [(str(principal.api_key_id), total, requests)]
    return UsageSummary(
        total=Amount.of(total),
        requests=requests,
        series=series,
        by_model=[
            ModelUsage(model=m, spend=Amount.of(s), requests=r)
            for m, s, r in ranked[Dimension.MODEL]
        ],
        by_action=[
            ActionUsage(action=a, spend=Amount.of(s), requests=r)
            for a, s, r in ranked[Dimension.ACTION]
        ],
        by_api_key=[
            ApiKeyUsage(
                api_key=keys.get(to_global_id("ApiKey", int(k))), spend=Amount.of(s), requests=r
            )
            for k, s, r in ranked[Dimension.API_KEY]
        ],
        projected_period_spend=Amount.of(
            project(figures.period_spent, period_start, period_end, now)
        ),
        _scope=scope,
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

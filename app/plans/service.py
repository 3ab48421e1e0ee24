"""Subscriptions: joining a plan, changing it, and renewing its periods.

The rule for changes (documented in README): an **upgrade** (a plan that costs more per
period, or any plan from none) takes effect at once: the current period closes as it
would at its end (rollover carried, the rest expired, overage settled) and the new
plan's first period begins now with its full allocation. A **downgrade** (costs the
same or less) waits for the current period's end, so nothing already paid for is lost.
Plans priced "by contract" (no price) are assigned by an operator (``creditgraph plan
assign``), never chosen in the dashboard. A paid plan needs a payment provider: the fake
one of local development counts it paid at once; with Stripe, paid plans are not offered
yet (subscriptions through Stripe Checkout are still to be built).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from app.clock import Clock
from app.db import Database
from app.ledger.state import lots_t, orgs_t, periods_t, plan_subs_t
from app.ledger.writer import Writer
from app.payments.provider import PaymentProvider
from app.plans.catalog import Catalog, Plan
from app.plans.jobs import StartPeriod
from app.plans.tables import SubscriptionStatus
from app.pricing.book import PriceBook


class PlanError(ValueError):
    """A plan change that cannot be made; the message says why."""


@dataclass(frozen=True, slots=True)
class Subscription:
    plan: Plan
    status: str
    period_start: datetime
    period_end: datetime
    next_plan: Plan | None


@dataclass(frozen=True, slots=True)
class Change:
    """What a plan change did: ``effective`` is when the new plan applies."""

    plan: Plan
    effective: datetime
    immediate: bool


class Plans:
    def __init__(
        self,
        db: Database,
        writer: Writer,
        clock: Clock,
        catalog: Catalog,
        prices: PriceBook,
        provider: PaymentProvider | None,
    ) -> None:
        self.provider = provider
        self.db = db
        self.writer = writer
        self.clock = clock
        self.catalog = catalog
        self.prices = prices

    async def subscription(self, organization_id: int) -> Subscription | None:
        async with self.db.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(plan_subs_t).where(
                        plan_subs_t.c.organization_id == organization_id,
                        plan_subs_t.c.status == SubscriptionStatus.ACTIVE,
                    )
                )
            ).first()
        plan = None if row is None else self.catalog.get(row.plan_code)
        if row is None or plan is None:
            return None
        return Subscription(
            plan,
            row.status,
            row.current_period_start,
            row.current_period_end,
            self.catalog.get(row.next_plan_code),
        )

    async def plan_of(self, organization_id: int) -> Plan | None:
        subscription = await self.subscription(organization_id)
        return None if subscription is None else subscription.plan

    async def allocation_remaining(self, organization_id: int) -> int:
        """What is left of the current period's allocation and of what rolled into it."""
        async with self.db.reader.connect() as conn:
            period = (
                await conn.execute(
                    select(periods_t.c.allocation_lot_id, periods_t.c.rollover_lot_id).where(
                        periods_t.c.organization_id == organization_id,
                        periods_t.c.closed_at.is_(None),
                    )
                )
            ).first()
            if period is None:
                return 0
            ids = [i for i in period if i is not None]
            total = await conn.scalar(
                select(func.coalesce(func.sum(lots_t.c.remaining), 0)).where(lots_t.c.id.in_(ids))
            )
        return int(total or 0)

    async def change(self, organization_id: int, code: str, *, by_operator: bool = False) -> Change:
        """Put the organization on plan ``code`` per the rule above."""
        plan = self.catalog.get(code)
        if plan is None:
            raise PlanError(f"no plan {code!r}")
        if plan.price is None and not by_operator:
            raise PlanError(f"{plan.name} is priced by contract: ask us to set it up")
        if (
            plan.paid
            and not by_operator
            and (self.provider is None or not self.provider.settles_at_once)
        ):
            raise PlanError(f"{plan.name} is paid, and this server cannot take its payment yet")
        async with self.db.reader.connect() as conn:
            rate_card = await conn.scalar(
                select(orgs_t.c.rate_card).where(orgs_t.c.id == organization_id)
            )
        if self.prices.unit(str(rate_card)) != plan.unit:
            raise PlanError(
                f"{plan.name} counts {plan.unit} credits; this organization's wallet does not"
            )
        now = self.clock.now()
        current = await self.subscription(organization_id)
        if current is not None and current.plan.code == plan.code:
            if current.next_plan is not None:  # staying after all: cancel the downgrade
                await self._schedule(organization_id, None)
            return Change(plan, current.period_start, immediate=False)
        if current is not None and not _costs_more(plan, current.plan):
            await self._schedule(organization_id, plan.code)
            return Change(plan, current.period_end, immediate=False)
        await self.writer.run(
            StartPeriod(
                organization_id,
                plan,
                None if current is None else current.plan,
                anchor=now,
                number=0,
                start=now,
                end=plan.period_end(now, 0),
                provider=None,
            )
        )
        return Change(plan, now, immediate=True)

    async def _schedule(self, organization_id: int, code: str | None) -> None:
        async with self.db.writer.begin() as conn:
            await conn.execute(
                update(plan_subs_t)
                .where(plan_subs_t.c.organization_id == organization_id)
                .values(next_plan_code=code, updated_at=self.clock.now())
            )

    async def renew_due(self) -> int:
        """Begin the next period of every subscription whose period has ended (as many
        periods as have passed); returns how many began. Safe to run twice."""
        now = self.clock.now()
        async with self.db.reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(plan_subs_t).where(
                        plan_subs_t.c.status == SubscriptionStatus.ACTIVE,
                        plan_subs_t.c.current_period_end <= now,
                    )
                )
            ).all()
        started = 0
        for row in rows:
            started += await self._renew(row, now)
        return started

    async def _renew(self, row: Any, now: datetime) -> int:
        closing = self.catalog.get(row.plan_code)
        plan = self.catalog.get(row.next_plan_code) or closing
        if plan is None or closing is None:
            return 0  # a plan dropped from the catalog: left for an operator
        anchor, number, start = row.anchor, row.period_number, row.current_period_end
        if plan.code != closing.code:
            anchor, number = start, -1  # the new plan's periods count from its start
        started = 0
        while start <= now:
            number += 1
            end = plan.period_end(anchor, number)
            job = StartPeriod(
                row.organization_id,
                plan,
                closing,
                anchor=anchor,
                number=number,
                start=start,
                end=end,
                provider=row.provider,
            )
            started += bool(await self.writer.run(job))
            closing, start = plan, end
        return started


def _costs_more(new: Plan, old: Plan) -> bool:
    """Whether moving from ``old`` to ``new`` is an upgrade: from free to paid, or more per
    period in the same currency, else (prices not comparable) a larger allocation."""
    if new.paid != old.paid:
        return new.paid
    comparable = new.currency == old.currency and None not in (new.price, old.price)
    if comparable and new.price != old.price:
        return (new.price or 0) > (old.price or 0)
    return new.allocation > old.allocation

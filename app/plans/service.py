"""Subscriptions: joining a plan, changing it, and renewing its periods.

The rule for changes (documented in README): an **upgrade** (a plan that costs more per
period, or any plan from none) takes effect at once: the current period closes as it
would at its end (rollover carried, the rest expired, overage settled) and the new
plan's first period begins now with its full allocation. A **downgrade** (costs the
same or less) waits for the current period's end, so nothing already paid for is lost.
Plans priced "by contract" (no price) are assigned by an operator (``creditgraph plan
assign``), never chosen in the dashboard; an operator's change takes no payment.

A paid plan chosen in the dashboard needs a payment provider. The fake one of local
development counts it paid at once, under the rule above. With **Stripe**, paid plans go
through Stripe Checkout in subscription mode, and nothing changes until Stripe says the
money came:

- Choosing a paid plan that is an upgrade (or any paid plan without a plan) returns the
  URL of a Checkout page and records nothing: the current plan stays, and is what
  ``Organization.subscription`` shows, until the Stripe subscription's first invoice is
  paid. That invoice (``invoice.paid``, or the Checkout Session's completion, which looks
  the invoice up: whichever comes first) begins the plan like any upgrade, with the
  period the invoice paid for; a Stripe subscription of the plan it replaces is canceled
  at Stripe at once (no proration, no refund: as with any upgrade, the current period
  closes early). Should two Checkout pages both be paid, the subscription processed last
  is the one kept and the other is canceled.
- Stripe bills every following period, and each paid renewal invoice begins the period it
  paid for; ``renew_due`` leaves Stripe-billed subscriptions alone. An invoice whose
  amount or currency is not the plan's price grants nothing (logged for a person).
- A downgrade from a Stripe-billed plan waits for the period's end like any downgrade:
  the Stripe subscription is set to end then (``cancel_at_period_end``), and when Stripe
  ends it the next plan begins. Choosing the current plan again keeps it renewing. A
  downgrade to a cheaper *paid* plan is refused with Stripe (it would begin unpaid):
  choose a free plan, then the paid one once the period has ended.
- A Stripe subscription ended otherwise (canceled in Stripe's dashboard, or unpaid after
  Stripe's retries) leaves the organization without a plan. The period's allocation was
  paid for: what is left of it stays until it expires at the period's end; nothing rolls
  over. An unpaid renewal (``past_due``) grants nothing until its invoice is paid.
- An operator's immediate change replacing a Stripe-billed plan cancels its subscription.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select, update

from app import audit
from app.clock import Clock
from app.db import Database
from app.ledger.state import orgs_t, plan_subs_t
from app.ledger.writer import Writer
from app.orgs.billing import subscription_row
from app.payments.customers import provider_customer
from app.payments.provider import (
    Interval,
    PaymentError,
    PaymentProvider,
    SubscriptionInvoice,
    minor_units,
)
from app.plans.catalog import Catalog, Period, Plan
from app.plans.jobs import PLAN_CHANGE, StartPeriod, plan_change, plan_changed
from app.plans.tables import SubscriptionStatus
from app.pricing.book import PriceBook
from app.webhooks import outbox
from app.webhooks.tables import EventType

log = logging.getLogger(__name__)

STRIPE = "stripe"
# How Stripe counts each period: "4 weeks" is every 4 weeks, not monthly.
INTERVALS: dict[Period, tuple[Interval, int]] = {"month": ("month", 1), "4 weeks": ("week", 4)}
# The invoices that pay for a period: a subscription's first, and each renewal.
PERIOD_INVOICES = ("subscription_create", "subscription_cycle")
# Stripe statuses of a subscription that has ended for good.
ENDED = ("canceled", "incomplete_expired")
# Who a downgrade that takes effect at a renewal is by, in the audit log.
RENEWAL_ACTOR = "system"


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
    """What a plan change did: ``effective`` is when the new plan applies; None when it
    applies once paid on the Checkout page at ``checkout_url`` (Stripe)."""

    plan: Plan
    effective: datetime | None
    immediate: bool
    checkout_url: str | None = None


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
        return self.active(
            await self.db.read(partial(subscription_row, organization_id=organization_id))
        )

    async def _row(self, where: Any) -> Any:
        """The subscription row ``where`` selects, whatever its status."""
        async with self.db.reader.connect() as conn:
            return (await conn.execute(select(plan_subs_t).where(where))).first()

    def active(self, row: Any) -> Subscription | None:
        """The subscription of ``row`` if it is active on a plan the catalog has."""
        if row is None or row.status != SubscriptionStatus.ACTIVE:
            return None
        plan = self.catalog.get(row.plan_code)
        if plan is None:
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

    async def unit_of(self, organization_id: int) -> str:
        """What the organization's wallet counts, by its rate card: "usd" or "credit"."""
        async with self.db.reader.connect() as conn:
            rate_card = await conn.scalar(
                select(orgs_t.c.rate_card).where(orgs_t.c.id == organization_id)
            )
        return self.prices.unit(str(rate_card))

    def eligible(self, code: str, rate_card: str, *, by_operator: bool = False) -> Plan:
        """Plan ``code``, if an organization billed by ``rate_card`` may be put on it."""
        plan = self.catalog.get(code)
        if plan is None:
            raise PlanError(f"no plan {code!r}")
        if plan.price is None and not by_operator:
            raise PlanError(f"{plan.name} is priced by contract: ask us to set it up")
        if self.prices.unit(rate_card) != plan.unit:
            raise PlanError(
                f"{plan.name} counts {plan.unit} credits; this organization's wallet does not"
            )
        return plan

    async def change(
        self, organization_id: int, code: str, *, actor: str, by_operator: bool = False
    ) -> Change:
        """Put the organization on plan ``code`` per the rule above; what changes now is
        in the audit log as ``plan.change`` by ``actor`` (a Checkout page changes nothing
        yet: Stripe's paid invoice is the change)."""
        async with self.db.reader.connect() as conn:
            rate_card = await conn.scalar(
                select(orgs_t.c.rate_card).where(orgs_t.c.id == organization_id)
            )
        plan = self.eligible(code, str(rate_card), by_operator=by_operator)
        # Paid through the provider: at once with the fake one, else through Checkout.
        paying = plan.paid and not by_operator
        if paying and self.provider is None:
            raise PlanError(f"{plan.name} is paid, and this server takes no payments")
        checkout = paying and self.provider is not None and not self.provider.settles_at_once
        now = self.clock.now()
        row = await self._row(plan_subs_t.c.organization_id == organization_id)
        current = self.active(row)
        # The Stripe subscription billing the current plan, if one does.
        billed = row.stripe_subscription_id if current and row.provider == STRIPE else None
        if current is not None and current.plan.code == plan.code:
            if current.next_plan is not None:  # staying after all: cancel the downgrade
                if billed is not None:
                    await self._stripe().renew_subscription(subscription_id=billed, renew=True)
                await self._schedule(organization_id, None, now, actor)
            return Change(plan, current.period_start, immediate=False)
        if current is not None and not _costs_more(plan, current.plan):
            if checkout:
                raise PlanError(
                    f"{plan.name} costs less than {current.plan.name}: choose a free plan "
                    f"now, and {plan.name} once the current period has ended"
                )
            if billed is not None:  # Stripe bills no period after this one
                await self._stripe().renew_subscription(subscription_id=billed, renew=False)
            await self._schedule(organization_id, plan.code, current.period_end, actor)
            return Change(plan, current.period_end, immediate=False)
        if checkout:
            return await self._checkout(organization_id, plan, row)
        started = await self.writer.run(
            StartPeriod(
                organization_id,
                plan,
                None if current is None else current.plan,
                anchor=now,
                number=0,
                start=now,
                end=plan.period_end(now, 0),
                provider=None,
                actor=actor,
            )
        )
        if started and billed is not None:  # an operator replaced a plan Stripe bills
            await self._end_at_stripe(billed)
        return Change(plan, now, immediate=True)

    def _stripe(self) -> PaymentProvider:
        if self.provider is None or self.provider.name != STRIPE:
            raise PlanError("this plan is billed by Stripe, which this server does not reach")
        return self.provider

    async def _checkout(self, organization_id: int, plan: Plan, row: Any) -> Change:
        """Start the Checkout page that subscribes the organization to ``plan``."""
        provider = self._stripe()
        assert plan.price is not None
        amount = minor_units(plan.price, plan.currency)
        if amount is None:
            raise PlanError(f"{plan.name}'s price is not a whole amount of {plan.currency}")
        interval, count = INTERVALS[plan.period]
        customer_id = await provider_customer(self.db, provider, organization_id)
        # Asked twice for the same plan in the same state, Stripe returns the same page.
        version = 0 if row is None else int(row.updated_at.timestamp())
        started = await provider.start_subscription(
            organization_id=organization_id,
            customer_id=customer_id,
            plan_code=plan.code,
            name=plan.name,
            amount=amount,
            currency=plan.currency,
            interval=interval,
            interval_count=count,
            key=f"creditgraph-plan-{organization_id}-{plan.code}-{version}",
        )
        return Change(plan, None, immediate=False, checkout_url=started.checkout_url)

    async def _end_at_stripe(self, subscription_id: str) -> None:
        """Cancel a Stripe subscription whose plan was replaced; a failure is logged, as
        the replacement stands (Stripe's renewals of it would be ignored, but charged)."""
        try:
            await self._stripe().cancel_subscription(subscription_id=subscription_id)
        except (PaymentError, PlanError):
            log.exception(
                "Stripe subscription %s was replaced but could not be canceled: "
                "cancel it in Stripe's dashboard",
                subscription_id,
            )

    # -- Stripe's word on subscriptions (app.payments.stripe_events) -------------------

    async def invoice_paid(self, invoice: SubscriptionInvoice) -> str:
        """Begin the period a subscription's paid invoice paid for, once; what happened,
        for the webhook's reply."""
        if invoice.status != "paid":
            return "pending"
        if invoice.billing_reason not in PERIOD_INVOICES:
            return "ignored"
        plan = self.catalog.get(invoice.plan_code)
        organization_id = invoice.organization_id
        if plan is None or organization_id is None:
            log.warning("Stripe invoice %s pays for no plan we know", invoice.invoice_id)
            return "unknown subscription"
        price = minor_units(plan.price, plan.currency) if plan.paid and plan.price else None
        if invoice.amount_paid != price or invoice.currency.upper() != plan.currency.upper():
            # Never grant what was not paid; a retry cannot change it, so a person must look.
            log.error(
                "Stripe invoice %s paid %d %s, not %s's price: nothing granted",
                invoice.invoice_id,
                invoice.amount_paid,
                invoice.currency,
                plan.code,
            )
            return "amount mismatch"
        row = await self._row(plan_subs_t.c.organization_id == organization_id)
        current = self.active(row)
        closing = None if current is None else current.plan
        if row is not None and row.stripe_subscription_id == invoice.subscription_id:
            if current is None:
                return "subscription ended"
            if row.current_period_start >= invoice.period_start:
                return "already granted"
            anchor, number = row.anchor, row.period_number + 1
        elif invoice.billing_reason != "subscription_create":
            log.warning(
                "Stripe invoice %s renews subscription %s, which is not organization %d's",
                invoice.invoice_id,
                invoice.subscription_id,
                organization_id,
            )
            return "not the current subscription"
        else:
            anchor, number = invoice.period_start, 0
        job = StartPeriod(
            organization_id,
            plan,
            closing,
            anchor=anchor,
            number=number,
            start=invoice.period_start,
            end=invoice.period_end,
            provider=STRIPE,
            actor=STRIPE,
            stripe_subscription_id=invoice.subscription_id,
            invoice=invoice,
        )
        if not await self.writer.run(job):
            return "already granted"
        if number > 0:
            return "renewed"
        if current is not None and row.provider == STRIPE and row.stripe_subscription_id:
            await self._end_at_stripe(row.stripe_subscription_id)
        return "activated"

    async def subscription_updated(
        self, subscription_id: str, status: str | None, cancel_at_period_end: bool
    ) -> str:
        """Stripe changed a subscription. Its periods follow its paid invoices, so only an
        end matters here; one set to end at the period's end ends when Stripe ends it."""
        if status in ENDED:
            return await self.subscription_ended(subscription_id)
        return "ends at the period's end" if cancel_at_period_end else "noted"

    async def subscription_ended(self, subscription_id: str) -> str:
        """Stripe ended a subscription: the downgrade waiting for it begins, or the
        organization is left without a plan (the period's allocation expires at its end)."""
        row = await self._row(plan_subs_t.c.stripe_subscription_id == subscription_id)
        current = self.active(row)
        if current is None:
            return "not the current subscription"
        now = self.clock.now()
        following = current.next_plan
        if following is not None:
            start = min(now, row.current_period_end)
            job = StartPeriod(
                row.organization_id,
                following,
                current.plan,
                anchor=start,
                number=0,
                start=start,
                end=following.period_end(start, 0),
                provider=None,
                actor=STRIPE,
            )
            if await self.writer.run(job):
                return "ended; next plan begun"
        async with self.db.write(row.organization_id) as conn:
            ended = await conn.execute(
                update(plan_subs_t)
                .where(
                    plan_subs_t.c.organization_id == row.organization_id,
                    plan_subs_t.c.stripe_subscription_id == subscription_id,
                    plan_subs_t.c.status == SubscriptionStatus.ACTIVE,
                )
                .values(status=SubscriptionStatus.CANCELED, next_plan_code=None, updated_at=now)
            )
            if ended.rowcount:
                was = (row.plan_code, row.next_plan_code)
                await audit.record(
                    conn,
                    organization_id=row.organization_id,
                    actor=STRIPE,
                    action=PLAN_CHANGE,
                    target=f"organization:{row.organization_id}",
                    at=now,
                    **plan_change(was, (None, None), now),
                )
                changed = plan_changed(was, (None, None), now)
                await outbox.record_async(
                    conn, row.organization_id, EventType.PLAN_CHANGED, changed, now
                )
        return "ended"

    async def _schedule(
        self, organization_id: int, code: str | None, effective: datetime, actor: str
    ) -> None:
        """Set (or with None, cancel) the plan that begins when the period ends."""
        now = self.clock.now()
        where = plan_subs_t.c.organization_id == organization_id
        async with self.db.write(organization_id) as conn:
            row = (
                await conn.execute(
                    select(plan_subs_t.c.plan_code, plan_subs_t.c.next_plan_code)
                    .where(where)
                    .with_for_update()
                )
            ).one()
            await conn.execute(
                update(plan_subs_t).where(where).values(next_plan_code=code, updated_at=now)
            )
            if row.next_plan_code == code:
                return  # the same downgrade chosen again: nothing changed
            was, becomes = (row.plan_code, row.next_plan_code), (row.plan_code, code)
            await audit.record(
                conn,
                organization_id=organization_id,
                actor=actor,
                action=PLAN_CHANGE,
                target=f"organization:{organization_id}",
                at=now,
                **plan_change(was, becomes, effective),
            )
            changed = plan_changed(was, becomes, effective)
            await outbox.record_async(conn, organization_id, EventType.PLAN_CHANGED, changed, now)

    async def renew_due(self) -> int:
        """Begin the next period of every subscription whose period has ended (as many
        periods as have passed); returns how many began. Safe to run twice. Subscriptions
        Stripe bills are not renewed here: their paid invoices begin their periods."""
        now = self.clock.now()
        async with self.db.reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(plan_subs_t).where(
                        plan_subs_t.c.status == SubscriptionStatus.ACTIVE,
                        plan_subs_t.c.current_period_end <= now,
                        plan_subs_t.c.provider.is_distinct_from(STRIPE),
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
                actor=RENEWAL_ACTOR,
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

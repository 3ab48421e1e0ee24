"""Plans: the catalog, an organization's subscription and entitlement, changing plan."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated

import strawberry

from app.graphql.context import ADMINS, Info
from app.graphql.enums import ConcurrencyCounts, ModelClass
from app.graphql.money import Amount
from app.graphql.overview import overview_of
from app.graphql.payloads import Refused, UserError, UserErrorCode, caller, refused
from app.graphql.scalars import Decimal
from app.money import format_usd
from app.payments.ladder import percent
from app.payments.provider import PaymentError
from app.plans.catalog import Plan as CatalogPlan
from app.plans.service import PlanError


@strawberry.type(
    description="An amount of money in a currency: what a plan costs per period, what a "
    "receipt shows paid."
)
class Price:
    amount: Decimal = strawberry.field(description='In the currency, exact: "149.000000".')
    currency: str = strawberry.field(description='ISO 4217: "USD", "CNY".')


@strawberry.type(
    description='Plan credits for sale (8bit-ai: "Buy credit packs"); every pack of a plan '
    "sells them at one rate, the overage rate in the seeded catalog."
)
class CreditPack:
    id: strawberry.ID = strawberry.field(
        description='What createTopUp and topUpQuote take as packId: "8bit-starter:1000".'
    )
    credits: Amount = strawberry.field(
        description="The plan credits it delivers (`usd` counts plan credits, not dollars)."
    )
    price_usd: Decimal = strawberry.field(description='What it costs in USD: "20.000000".')


@strawberry.type(description="One model class's messages per 12-hour window.")
class MessageClassLimit:
    model_class: ModelClass = strawberry.field(description="The models' class.")
    messages: int = strawberry.field(
        description="Calls to models of the class that fill the window alone."
    )


@strawberry.type(
    description="Calls per rolling 12-hour window, by the called model's class (the price "
    "book's): ByteSpike Pro's \"50-500 messages\" is 50 to premium models, 500 to light "
    "ones. The classes share one window, in which a call takes 1/figure of its class: "
    "25 premium calls leave room for 250 light ones. A call that does not fit is refused "
    "(429 message_limit) until the oldest call in the window leaves it."
)
class MessageLimit:
    min: int = strawberry.field(description="The fewest: the premium class's figure.")
    max: int = strawberry.field(description="The most: the light class's figure.")
    by_class: list[MessageClassLimit] = strawberry.field(
        description="Every class's figure, premium first."
    )

    @classmethod
    def of(cls, plan: CatalogPlan) -> MessageLimit | None:
        if not plan.messages_per_12h:
            return None
        figures = [n for _, n in plan.messages_per_12h]
        return cls(
            min=min(figures),
            max=max(figures),
            by_class=[
                MessageClassLimit(model_class=c, messages=n) for c, n in plan.messages_per_12h
            ],
        )


@strawberry.type(description="A plan of the catalog: what it grants, allows and costs.")
class Plan:
    code: str = strawberry.field(description='Stable identifier: "bytez-payg", "8bit-pro".')
    name: str = strawberry.field(description="Display name.")
    price: Price | None = strawberry.field(
        description="Per period; null: priced by contract (an operator assigns the plan)."
    )
    period: str = strawberry.field(
        description='"month" (calendar months from the start) or "4 weeks".'
    )
    unit: str = strawberry.field(
        description='"usd" (credits are micro-USD) or "credit" (plan credits, micro precision: '
        "amounts' `usd` field then counts plan credits, not dollars)."
    )
    monthly_credits: Amount = strawberry.field(
        description="The allocation each period grants, expiring at its end."
    )
    top_up_bonus_boost_percent: Decimal = strawberry.field(
        description='Percentage points added to the bonus ladder ("5" on ByteSpike Pro).'
    )
    rollover_percent: Decimal = strawberry.field(
        description="How much of an unused allocation carries into the next period, in "
        'percent of the allocation, for one period ("100" on 8bit-ai Pro, "0": none).'
    )
    overage_usd_per_credit: Decimal | None = strawberry.field(
        description="Usage past the allocation keeps working and is billed at this USD rate "
        "per plan credit when the period closes; null: no overage, an empty wallet refuses."
    )
    messages_per_12h: MessageLimit | None = strawberry.field(
        description="Calls per rolling 12-hour window, by the called model's class; null: no limit."
    )
    concurrency: int | None = strawberry.field(
        description="Calls in flight at once (those `concurrencyCounts` names: open-model "
        "calls count in 7B slots, 15B and 35B taking 2, 70B 3, 120B 5); null: no limit "
        "(unlock tiers may decide it instead: see Organization.entitlement)."
    )
    closed_requests_per_second: int | None = strawberry.field(
        description="Closed-model calls authorized per rolling second (Bytez Free: 10); "
        "null: no limit."
    )
    concurrency_counts: ConcurrencyCounts = strawberry.field(
        description="Which calls in flight the concurrency counts: every call, one each, or "
        "open-model calls only, in 7B slots (Bytez)."
    )
    priority: bool = strawberry.field(
        description="Requests go to the priority queue: authorize's answer carries "
        "`priority`, for the gateway to queue by."
    )
    trial_grant: Amount | None = strawberry.field(
        description="Credits granted once to an organization whose first plan this is "
        '(ByteSpike Free\'s trial allowance, "1" USD), never expiring; null: none.'
    )
    auto_top_up_minimum: Amount | None = strawberry.field(
        description="The smallest auto-reload amount (USD) updateAutoReload accepts while "
        'auto-reload is on ("10" on 8bit-ai Starter, "25" on Pro); null: the bonus '
        "ladder's minimum top-up."
    )
    refundable: bool = strawberry.field(
        description="Admins may refund a top-up (refundTopUp); false: credits are "
        "non-refundable (Bytez) and refundTopUp answers NOT_REFUNDABLE."
    )
    credit_packs: list[CreditPack] = strawberry.field(
        description="Plan-credit plans: the packs a top-up buys, by ascending credits; empty "
        "on USD plans (they top up an amount) and where credits come by contract."
    )

    @classmethod
    def of(cls, plan: CatalogPlan) -> Plan:
        rate = plan.overage_usd_per_credit
        return cls(
            code=plan.code,
            name=plan.name,
            price=None
            if plan.price is None
            else Price(amount=Decimal(format_usd(plan.price)), currency=plan.currency),
            period=plan.period,
            unit=plan.unit,
            monthly_credits=Amount.of(plan.allocation),
            top_up_bonus_boost_percent=Decimal(percent(plan.top_up_bonus_boost_basis_points)),
            rollover_percent=Decimal(percent(plan.rollover_basis_points)),
            overage_usd_per_credit=None if rate is None else Decimal(format_usd(rate)),
            messages_per_12h=MessageLimit.of(plan),
            concurrency=plan.concurrency,
            closed_requests_per_second=plan.closed_requests_per_second,
            concurrency_counts=plan.concurrency_counts,
            priority=plan.priority,
            trial_grant=Amount.of(plan.trial_grant) if plan.trial_grant else None,
            auto_top_up_minimum=None
            if plan.auto_top_up_min is None
            else Amount.of(plan.auto_top_up_min),
            refundable=plan.refundable,
            credit_packs=[
                CreditPack(
                    id=strawberry.ID(pack.id),
                    credits=Amount.of(pack.credits),
                    price_usd=Decimal(format_usd(pack.price)),
                )
                for pack in plan.credit_packs
            ],
        )


@strawberry.type(description="The organization's plan and its current period.")
class PlanSubscription:
    plan: Plan = strawberry.field(description="The plan now.")
    current_period_start: datetime = strawberry.field(description="UTC.")
    current_period_end: datetime = strawberry.field(
        description="UTC: the period's allocation expires then, and the next one begins."
    )
    next_plan: Plan | None = strawberry.field(
        description="A downgrade waiting for the period's end; null: none."
    )
    _org_id: strawberry.Private[int]

    @strawberry.field(
        description="What is left of this period's allocation and of what rolled into it."
    )
    async def allocation_remaining(self, info: Info) -> Amount:
        return Amount.of((await overview_of(info, self._org_id)).allocation_remaining)


@strawberry.type(description="The next unlock tier, and what it takes.")
class NextTier:
    tier: int = strawberry.field(description="Its number.")
    purchase_needed: Amount = strawberry.field(
        description="Credits to buy within 28 days, on top of those bought, to reach it."
    )


@strawberry.type(
    description="What the organization may run now: on plans with unlock tiers (Bytez), "
    "credits purchased in the last 28 days decide it."
)
class Entitlement:
    tier: int = strawberry.field(description="The unlock tier reached; 0 is the first.")
    max_open_model_params_b: int | None = strawberry.field(
        description="The largest open model callable, in billions of parameters; null: any."
    )
    concurrent_requests: int | None = strawberry.field(
        description="Open-model calls in flight at once, in 7B slots (see Plan.concurrency); "
        "null: no limit."
    )
    next_tier: NextTier | None = strawberry.field(description="Null at the top tier.")


async def subscription_of(info: Info, organization_id: int) -> PlanSubscription | None:
    billing = await overview_of(info, organization_id)
    current = info.context.runtime.subscriptions.active(billing.subscription)
    if current is None:
        return None
    return PlanSubscription(
        plan=Plan.of(current.plan),
        current_period_start=current.period_start,
        current_period_end=current.period_end,
        next_plan=None if current.next_plan is None else Plan.of(current.next_plan),
        _org_id=organization_id,
    )


async def entitlement_of(info: Info, organization_id: int) -> Entitlement | None:
    billing = await overview_of(info, organization_id)
    current = info.context.runtime.subscriptions.active(billing.subscription)
    if current is None:
        return None
    granted = current.plan.entitlement(billing.purchased_last_28_days)
    return Entitlement(
        tier=granted.tier,
        max_open_model_params_b=granted.max_open_model_params_b,
        concurrent_requests=granted.concurrency,
        next_tier=None
        if granted.next_tier is None or granted.purchase_needed is None
        else NextTier(tier=granted.next_tier, purchase_needed=Amount.of(granted.purchase_needed)),
    )


def plans(info: Info) -> list[Plan]:
    info.context.caller()
    return [plan_node(plan) for plan in info.context.runtime.plans.plans.values()]


@lru_cache(maxsize=256)
def plan_node(plan: CatalogPlan) -> Plan:
    """A catalog plan as the API shows it: built once (a plan never changes), not on
    each request for the catalog."""
    return Plan.of(plan)


@strawberry.input(description="The plan to move to.")
class ChangePlanInput:
    plan_code: str = strawberry.field(description="A plan's `code` from `plans`.")


@strawberry.type(
    description="The plan change: at once (an upgrade), at the period's end (a downgrade), "
    "or once paid on a Stripe Checkout page (a paid plan, with Stripe)."
)
class ChangePlanPayload:
    subscription: PlanSubscription | None = strawberry.field(
        default=None,
        description="The subscription after the change (still the current plan while "
        "`checkoutUrl` waits for payment); null on userErrors.",
    )
    effective_at: datetime | None = strawberry.field(
        default=None,
        description="When the new plan applies (UTC); null while it waits for payment.",
    )
    checkout_url: str | None = strawberry.field(
        default=None,
        description="Send the payer to this Stripe Checkout page: the paid plan begins "
        "once its first payment is made, and Stripe bills it every period after. Until "
        "then nothing changes. Null when no payment is needed.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing changed; empty on success."
    )


@strawberry.type
class PlanMutations:
    @strawberry.mutation(
        description="Move the organization to another plan (owners and admins). An upgrade "
        "(costs more) applies at once: the current period closes (rollover carried, the "
        "rest expired, overage billed) and the new plan's first period begins with its full "
        "allocation. A downgrade applies when the current period ends. Choosing the current "
        "plan cancels a pending downgrade. With Stripe, a paid plan is paid first: the "
        "payload's `checkoutUrl` is the page to pay it on."
    )
    async def change_plan(
        self,
        info: Info,
        input: Annotated[ChangePlanInput, strawberry.argument(description="The plan.")],
    ) -> ChangePlanPayload:
        try:
            principal = caller(info, *ADMINS)
            try:
                change = await info.context.runtime.subscriptions.change(
                    principal.organization_id, input.plan_code, actor=principal.actor
                )
            except PlanError as exc:
                raise refused(UserErrorCode.INVALID_INPUT, str(exc), "planCode") from None
            except PaymentError as exc:
                raise refused(UserErrorCode.PAYMENT_FAILED, exc.message) from None
        except Refused as refusal:
            return ChangePlanPayload(user_errors=refusal.errors)
        return ChangePlanPayload(
            subscription=await subscription_of(info, principal.organization_id),
            effective_at=change.effective,
            checkout_url=change.checkout_url,
        )

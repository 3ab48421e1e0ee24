"""``setSpendCap``: the organization's hard cap on usage per calendar month (UTC)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import ADMINS, Info
from app.graphql.org import SpendCap, spend_cap_of
from app.graphql.payloads import Refused, UserError, caller, usd_amounts
from app.graphql.scalars import Decimal
from app.orgs.service import set_spend_cap


@strawberry.input(description="The organization's new monthly spend cap.")
class SetSpendCapInput:
    monthly_limit_usd: Decimal | None = strawberry.field(
        default=None,
        description="The most usage may bill per calendar month (UTC), in the "
        "organization's unit (SpendCap.unit): USD, or plan credits on a plan-credit rate "
        'card (8bit-ai: "25000" on Starter allows 5,000 credits of overage past the 20,000 '
        'allocation, at most $100 at $0.02), at most 6 decimals. "0" pauses every action '
        "but the critical ones; null or omitted removes the cap. Negative is INVALID_AMOUNT.",
    )


@strawberry.type(description="The spend cap as it is now.")
class SetSpendCapPayload:
    spend_cap: SpendCap | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


@strawberry.type
class SpendCapMutations:
    @strawberry.mutation(
        description="Set or remove the monthly spend cap (owners and admins). It applies "
        "from the next authorization; spend this month so far counts against it."
    )
    async def set_spend_cap(
        self,
        info: Info,
        input: Annotated[SetSpendCapInput, strawberry.argument(description="The new cap.")],
    ) -> SetSpendCapPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            limits = usd_amounts({"monthlyLimitUsd": input.monthly_limit_usd}, allow_zero=True)
        except Refused as refusal:
            return SetSpendCapPayload(user_errors=refusal.errors)
        async with runtime.db.write(principal.organization_id) as conn:
            await set_spend_cap(
                conn,
                organization_id=principal.organization_id,
                monthly_limit=limits["monthlyLimitUsd"],
                actor=principal.actor,
                now=runtime.clock.now(),
            )
        return SetSpendCapPayload(spend_cap=await spend_cap_of(info, principal.organization_id))

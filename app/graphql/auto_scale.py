"""``Organization.autoScale`` and ``setAutoScale``: autoScale's default for the calls that
do not say (``app.gateway.auto_scale``), and the monthly maximum its purchases stay in."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import ADMINS, Info
from app.graphql.money import Amount
from app.graphql.overview import overview_of
from app.graphql.payloads import Refused, UserError, caller
from app.payments.service import auto_reload_settings


@strawberry.type(
    description="autoScale (Bytez): an open-model call past the unlock tier's size or "
    "concurrency buys the credits that unlock the tier it needs, charged to the saved card "
    "first, instead of being refused; the call says so with `autoScale` on "
    "POST /api/v1/authorize."
)
class AutoScale:
    by_default: bool = strawberry.field(
        description="Whether calls that do not send autoScale scale (off by default); a "
        "call's own true or false wins."
    )
    max_monthly_spend: Amount = strawberry.field(
        description="The most automatic purchases, autoScale's and auto-reload's together, "
        "may charge per calendar month (UTC): AutoReload.monthlyMax, set with "
        "updateAutoReload. A purchase past it is refused (402 max_monthly_spend_reached)."
    )


async def auto_scale_of(info: Info, organization_id: int) -> AutoScale:
    settings = auto_reload_settings((await overview_of(info, organization_id)).account)
    return AutoScale(
        by_default=settings.auto_scale_default,
        max_monthly_spend=Amount.of(settings.monthly_max),
    )


@strawberry.input(description="autoScale's default for the organization.")
class SetAutoScaleInput:
    by_default: bool = strawberry.field(
        description="True: calls that do not send autoScale scale; false: they do not."
    )


@strawberry.type(description="autoScale as it is now.")
class SetAutoScalePayload:
    auto_scale: AutoScale | None = strawberry.field(
        default=None, description="Null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


@strawberry.type
class AutoScaleMutations:
    @strawberry.mutation(
        description="Make autoScale the default for the organization's calls, or stop "
        "(owners and admins; audited as auto_scale.update). It applies from the next "
        "authorization."
    )
    async def set_auto_scale(
        self,
        info: Info,
        input: Annotated[SetAutoScaleInput, strawberry.argument(description="The default.")],
    ) -> SetAutoScalePayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
        except Refused as refusal:
            return SetAutoScalePayload(user_errors=refusal.errors)
        await runtime.payments.set_auto_scale_default(
            principal.organization_id, input.by_default, actor=principal.actor
        )
        return SetAutoScalePayload(auto_scale=await auto_scale_of(info, principal.organization_id))

"""``testApiKey``: the console's Test button. Would the gateway's authorize let this key
call this model now? The same checks as ``POST /api/v1/authorize`` (app.gateway.authorize,
dry run): allowed or the exact refusal, and the envelope headers, and what autoScale would
buy (``app.gateway.auto_scale``); no hold, no write, no purchase.

A mutation though it changes nothing, so an answer is never served from the response
cache: the button asks about now.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import strawberry

from app.gateway import auto_scale
from app.gateway.authorize import AuthorizeJob, HoldEstimate
from app.graphql.context import WRITERS, Info
from app.graphql.key_mutations import managed_key
from app.graphql.money import Amount
from app.graphql.payloads import Refused, UserError, caller, usd_amounts
from app.graphql.scalars import Decimal


@strawberry.input(description="The key and the call to try.")
class TestApiKeyInput:
    id: strawberry.ID = strawberry.field(
        description="The key's global ID; another organization's or a malformed one is "
        "NOT_FOUND, a member's test of a key it does not own FORBIDDEN."
    )
    model: str = strawberry.field(description="The model the call would use.")
    hold_usd: Decimal | None = strawberry.field(
        default=None,
        description="What the call would hold, in USD; null: only that something is left, "
        "as an authorization without an estimate asks.",
    )
    auto_scale: bool | None = strawberry.field(
        default=None,
        description="The call's autoScale: may it buy its way past the plan's open-model "
        "limits (Bytez's unlock tiers)? Null: as the organization's AutoScale.byDefault says.",
    )


@strawberry.type(description="Why authorize would refuse, as its HTTP answer says.")
class AuthorizeRefusal:
    status: int = strawberry.field(description="The HTTP status: 400, 401, 402, 403, 409, 429.")
    code: str = strawberry.field(description='The answer\'s code: "model_not_allowed", ...')
    message: str = strawberry.field(description="What a person reads.")
    retry_after_seconds: int | None = strawberry.field(
        description="The Retry-After authorize would send; null when retrying will not help."
    )


@strawberry.type(description="One response header.")
class HttpHeader:
    name: str = strawberry.field(description='Its name: "X-RateLimit-Remaining", ...')
    value: str = strawberry.field(description="Its value.")


@strawberry.type(description="What authorize would answer now; nothing was held.")
class TestApiKeyPayload:
    allowed: bool | None = strawberry.field(
        default=None, description="Whether authorize would allow the call; null on userErrors."
    )
    hold: Amount | None = strawberry.field(
        default=None, description="What authorize would hold when allowed."
    )
    auto_scale_purchase: Amount | None = strawberry.field(
        default=None,
        description="What autoScale would buy to admit the call (charged to the saved card "
        "first); null when allowed without a purchase, or refused.",
    )
    priority: bool | None = strawberry.field(
        default=None,
        description="Whether authorize would send the call to the priority queue (the "
        "plan's `priority`), as its `priority` field says; null unless allowed.",
    )
    refusal: AuthorizeRefusal | None = strawberry.field(
        default=None, description="Why authorize would refuse; null when allowed."
    )
    envelope: list[HttpHeader] = strawberry.field(
        default_factory=list,
        description="The envelope headers authorize would send (X-RateLimit-*, X-Quota-*).",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was tested; empty on success."
    )


@strawberry.type
class KeyTestMutations:
    @strawberry.mutation(
        description="Test a key with a model, as the gateway's authorize would answer it "
        "now (group, model, status, caps, plan, wallet); places no hold and writes nothing."
    )
    async def test_api_key(
        self,
        info: Info,
        input: Annotated[TestApiKeyInput, strawberry.argument(description="The test.")],
    ) -> TestApiKeyPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *WRITERS)
            hold = usd_amounts({"holdUsd": input.hold_usd}, allow_zero=True)["holdUsd"]
            async with runtime.db.reader.connect() as conn:
                row = await managed_key(conn, principal, input.id)
        except Refused as refusal:
            return TestApiKeyPayload(user_errors=refusal.errors)
        job = AuthorizeJob(
            principal.organization_id,
            row.id,
            row.secret_hash,
            input.model,
            f"test-{secrets.token_hex(8)}",  # a request id never used: the call is new
            HoldEstimate(credits=hold),
            runtime.prices,
            runtime.hold_ttl,
            runtime.plans,
            input.auto_scale,
        )
        now = runtime.clock.now()
        scaled = await auto_scale.authorize(runtime, job, test=True)
        decision = scaled.decision
        headers = decision.envelope.headers() if decision.envelope else {}
        refused = decision.refusal
        return TestApiKeyPayload(
            allowed=decision.allowed,
            hold=Amount.of(decision.hold) if decision.allowed else None,
            auto_scale_purchase=Amount.of(scaled.purchase) if scaled.purchase else None,
            priority=decision.priority if decision.allowed else None,
            refusal=None
            if refused is None
            else AuthorizeRefusal(
                status=refused.status,
                code=refused.code,
                message=refused.message,
                retry_after_seconds=decision.retry_after(now),
            ),
            envelope=[HttpHeader(name=name, value=value) for name, value in headers.items()],
        )

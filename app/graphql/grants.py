"""``grantCredits`` and ``redeemPromoCode``: credits given, not bought (``app.grants``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.auth import Role
from app.grants import service
from app.grants.jobs import Reason
from app.graphql.context import ADMINS, Info
from app.graphql.org import CreditLot, LedgerEntry
from app.graphql.payloads import Refused, UserError, UserErrorCode, caller, refused, usd_amounts
from app.graphql.scalars import Decimal
from app.ledger import reads
from app.ledger.jobs import Posted

_CODES = {
    Reason.INVALID_REASON: UserErrorCode.INVALID_INPUT,
    Reason.INVALID_EXPIRY: UserErrorCode.INVALID_INPUT,
    Reason.TOO_LARGE: UserErrorCode.INVALID_AMOUNT,
    Reason.UNKNOWN_CODE: UserErrorCode.NOT_FOUND,
    Reason.ALREADY_REDEEMED: UserErrorCode.PROMO_CODE_ALREADY_REDEEMED,
    Reason.CODE_EXPIRED: UserErrorCode.PROMO_CODE_EXPIRED,
    Reason.NOT_APPLICABLE: UserErrorCode.PROMO_CODE_NOT_APPLICABLE,
    Reason.EXHAUSTED: UserErrorCode.PROMO_CODE_EXHAUSTED,
}
# grantCredits' input field at fault, by reason.
_GRANT_FIELDS = {
    Reason.INVALID_REASON: "reason",
    Reason.INVALID_EXPIRY: "expiresAt",
    Reason.TOO_LARGE: "amountUsd",
}


def _refused(error: service.GrantRefused, field: str | None) -> Refused:
    return refused(_CODES[error.refusal.reason], error.refusal.message, field)


@strawberry.input(description="Credits to give the organization.")
class GrantCreditsInput:
    amount_usd: Decimal = strawberry.field(
        description="Greater than 0, at most 6 decimals, in the organization's unit "
        "(SpendCap.unit) as every amount of its wallet: USD, or plan credits on a "
        'plan-credit rate card (8bit-ai: "1000" gives 1,000 plan credits).'
    )
    reason: str = strawberry.field(
        description="Why: the entry's memo, also in the audit log; 1 to 500 characters."
    )
    expires_at: datetime | None = strawberry.field(
        default=None,
        description="When what is left of the credits expires (with a time zone, in the "
        "future); null or omitted: never.",
    )


@strawberry.input(description="A promo code to redeem.")
class RedeemPromoCodeInput:
    code: str = strawberry.field(description="As given, in any case: WELCOME10 is welcome10.")


@strawberry.type(description="What was given.")
class GrantCreditsPayload:
    entry: LedgerEntry | None = strawberry.field(
        default=None,
        description="The GRANT ledger entry (its balanceAfter is the new balance); null "
        "when there are userErrors.",
    )
    lot: CreditLot | None = strawberry.field(
        default=None, description="The lot it opened, with its expiresAt; null with userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was given; empty on success."
    )


@strawberry.type(description="What the promo code gave.")
class RedeemPromoCodePayload(GrantCreditsPayload):
    pass


async def _given(info: Info, organization_id: int, posted: Posted) -> tuple[LedgerEntry, CreditLot]:
    entry, lot = await info.context.runtime.db.read(
        lambda conn: reads.entry_at(conn, organization_id, posted.version)
    )
    assert lot is not None, "a credit opens a lot"
    return LedgerEntry.of(entry), CreditLot.of(lot)


@strawberry.type
class GrantMutations:
    @strawberry.mutation(
        description="Give the organization credits, with a reason and an optional expiry "
        "(the platform's service token only: an organization's own people cannot give "
        "themselves credits; they redeem promo codes): a GRANT ledger entry and its lot, "
        "a GRANT billing transaction, audited as wallet.grant."
    )
    async def grant_credits(
        self,
        info: Info,
        input: Annotated[GrantCreditsInput, strawberry.argument(description="What to give.")],
    ) -> GrantCreditsPayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, Role.SERVICE)
            amount = usd_amounts({"amountUsd": input.amount_usd}, allow_zero=False)["amountUsd"]
            assert amount is not None
            try:
                posted = await service.grant(
                    runtime,
                    principal.organization_id,
                    amount,
                    input.reason,
                    actor=principal.actor,
                    expires_at=input.expires_at,
                )
            except service.GrantRefused as error:
                raise _refused(error, _GRANT_FIELDS.get(error.refusal.reason)) from None
        except Refused as refusal:
            return GrantCreditsPayload(user_errors=refusal.errors)
        entry, lot = await _given(info, principal.organization_id, posted)
        return GrantCreditsPayload(entry=entry, lot=lot)

    @strawberry.mutation(
        description="Redeem a promo code (owners and admins): its credits land as a GRANT "
        "ledger entry (reference promo:<CODE>:<n>, the code's nth redemption) and a lot "
        "expiring as the code says; audited as promo.redeem. Exact under concurrent "
        "redemptions. Refused with NOT_FOUND (no such code), PROMO_CODE_ALREADY_REDEEMED, "
        "PROMO_CODE_EXPIRED, PROMO_CODE_NOT_APPLICABLE or PROMO_CODE_EXHAUSTED."
    )
    async def redeem_promo_code(
        self,
        info: Info,
        input: Annotated[RedeemPromoCodeInput, strawberry.argument(description="The code.")],
    ) -> RedeemPromoCodePayload:
        runtime = info.context.runtime
        try:
            principal = caller(info, *ADMINS)
            try:
                posted = await service.redeem(
                    runtime, principal.organization_id, input.code, actor=principal.actor
                )
            except service.GrantRefused as error:
                raise _refused(error, "code") from None
        except Refused as refusal:
            return RedeemPromoCodePayload(user_errors=refusal.errors)
        entry, lot = await _given(info, principal.organization_id, posted)
        return RedeemPromoCodePayload(entry=entry, lot=lot)

"""What every mutation shares: ``userErrors`` for expected failures, and the role check.

A mutation that returns userErrors has changed nothing. Not being signed in is the one
top-level error (UNAUTHENTICATED), as for queries; a role that may not do something is
a userError FORBIDDEN, so that forms handle every refusal in one place.
"""

from __future__ import annotations

from enum import Enum

import strawberry

from app.auth import Principal, Role
from app.graphql.context import Info
from app.graphql.scalars import Decimal
from app.money import MoneyError, parse_usd


@strawberry.enum(description="Why a mutation refused; nothing was changed.")
class UserErrorCode(Enum):
    NOT_FOUND = strawberry.enum_value(
        "NOT_FOUND", description="No such object in your organization (or a malformed ID)."
    )
    FORBIDDEN = strawberry.enum_value(
        "FORBIDDEN",
        description="Your role may not do this (viewers, the service role and API keys "
        "change nothing), or not to this object (members manage only their own keys).",
    )
    INVALID_AMOUNT = strawberry.enum_value(
        "INVALID_AMOUNT",
        description="Not a USD amount this field takes: negative, zero where a cap is "
        "expected, more than 6 decimals (2 for payments), or outside the top-up limits.",
    )
    PACK_REQUIRED = strawberry.enum_value(
        "PACK_REQUIRED",
        description="A dollar amount where the wallet counts plan credits (8bit-ai), which "
        "are sold in credit packs: buy one by packId (Plan.creditPacks).",
    )
    INVALID_INPUT = strawberry.enum_value(
        "INVALID_INPUT", description="Another field is out of range or unknown."
    )
    PAYMENT_FAILED = strawberry.enum_value(
        "PAYMENT_FAILED",
        description="The payment provider refused or could not be reached; the message "
        "says why. Nothing was charged.",
    )
    REVEAL_UNAVAILABLE = strawberry.enum_value(
        "REVEAL_UNAVAILABLE",
        description="This server keeps no secrets to reveal (no key encryption key is "
        "configured), or the key was made before one was: rotate it for a new secret.",
    )
    NOT_REFUNDABLE = strawberry.enum_value(
        "NOT_REFUNDABLE",
        description="The organization's plan makes no refunds (Bytez: credits are "
        "non-refundable); see Plan.refundable.",
    )
    PAYMENTS_UNAVAILABLE = strawberry.enum_value(
        "PAYMENTS_UNAVAILABLE", description="This server takes no payments (none configured)."
    )
    PROMO_CODE_ALREADY_REDEEMED = strawberry.enum_value(
        "PROMO_CODE_ALREADY_REDEEMED",
        description="Your organization has redeemed this promo code as many times as each "
        "organization may (once, unless the code says more).",
    )
    PROMO_CODE_EXPIRED = strawberry.enum_value(
        "PROMO_CODE_EXPIRED", description="The promo code can no longer be redeemed."
    )
    PROMO_CODE_EXHAUSTED = strawberry.enum_value(
        "PROMO_CODE_EXHAUSTED",
        description="The promo code has been redeemed as many times as it may, by all "
        "organizations together.",
    )
    PROMO_CODE_NOT_APPLICABLE = strawberry.enum_value(
        "PROMO_CODE_NOT_APPLICABLE",
        description="The promo code grants another unit than your wallet counts: USD "
        "credits to a plan-credit wallet (8bit-ai), or plan credits to a USD one.",
    )


@strawberry.type(description="An expected failure of a mutation; the mutation changed nothing.")
class UserError:
    field: str | None = strawberry.field(
        description='The input field at fault, as the schema names it ("quotaUsd"); '
        "null when the failure is not about one field."
    )
    message: str = strawberry.field(description="For people; may change, match on `code`.")
    code: UserErrorCode = strawberry.field(description="What went wrong, for programs.")


class Refused(Exception):
    """Raised inside a mutation for an expected failure: its payload's userErrors."""

    def __init__(self, *errors: UserError) -> None:
        super().__init__(*(error.message for error in errors))
        self.errors = list(errors)


def refused(code: UserErrorCode, message: str, field: str | None = None) -> Refused:
    return Refused(UserError(field=field, message=message, code=code))


def caller(info: Info, *roles: Role) -> Principal:
    """The signed-in caller if its role is among ``roles``; else a userError FORBIDDEN."""
    principal = info.context.caller()
    if principal.role not in roles:
        raise refused(UserErrorCode.FORBIDDEN, f"the {principal.role} role may not do this")
    return principal


def usd_amounts(values: dict[str, Decimal | None], *, allow_zero: bool) -> dict[str, int | None]:
    """USD inputs by field name, in credits (null stays null); every bad one is reported."""
    result: dict[str, int | None] = {}
    errors: list[UserError] = []
    for field, value in values.items():
        try:
            result[field] = None if value is None else parse_usd(value, allow_zero=allow_zero)
        except MoneyError as exc:
            errors.append(
                UserError(field=field, message=str(exc), code=UserErrorCode.INVALID_AMOUNT)
            )
    if errors:
        raise Refused(*errors)
    return result

"""``Amount``: every sum of money in the API, in credits and in USD, both exact."""

from __future__ import annotations

import strawberry

from app.graphql.scalars import Credits, Decimal
from app.money import format_usd


@strawberry.type(description="A sum of money: exact credits and the same in USD.")
class Amount:
    credits: Credits = strawberry.field(description="Whole credits; 1 USD = 1,000,000.")
    usd: Decimal = strawberry.field(
        description='The same amount in USD, exact, always with 6 decimals: "12.500000".'
    )

    @classmethod
    def of(cls, credits: int) -> Amount:
        return cls(credits=Credits(credits), usd=Decimal(format_usd(credits)))


def amount(credits: int | None) -> Amount | None:
    return None if credits is None else Amount.of(credits)

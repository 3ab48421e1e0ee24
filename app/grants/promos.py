"""Promo codes, made by operators (``creditgraph promo``): organizations only redeem them.

Codes are matched whatever their case: stored upper-case in a unique column, and a typed
code is normalized the same way before it is looked up. They are not hashed: a code is
meant to be handed out and typed, each redemption is bounded by its limits, and
operators list them with their counts; an API key, a credential, is hashed instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.ledger.state import promo_codes_t
from app.money import format_usd
from app.pricing.book import UNITS

CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{2,63}")
UNIT_NAMES = {"usd": "USD", "credit": "plan credits"}


class PromoCodeError(ValueError):
    """A promo code that cannot be made as asked."""


def normalize(code: str) -> str:
    """The code as stored: typed codes match whatever their case and surrounding spaces."""
    return code.strip().upper()


@dataclass(frozen=True, slots=True)
class PromoTerms:
    """What a code grants, and how often."""

    amount: int  # millionths of ``unit``, per redemption
    unit: str = "usd"
    credits_expire_days: int | None = None
    max_redemptions: int | None = None
    per_organization: int = 1
    expires_at: datetime | None = None


def _check(code: str, terms: PromoTerms, now: datetime) -> None:
    if not CODE.fullmatch(code):
        raise PromoCodeError(
            f"code {code!r} must be 3 to 64 letters, digits, dashes and underscores, "
            "starting with a letter or digit"
        )
    if terms.amount <= 0:
        raise PromoCodeError("the amount must be greater than zero")
    if terms.unit not in UNITS:
        raise PromoCodeError(f"the unit must be one of {', '.join(UNITS)}, not {terms.unit!r}")
    for name, value in (
        ("credits_expire_days", terms.credits_expire_days),
        ("max_redemptions", terms.max_redemptions),
        ("per_organization", terms.per_organization),
    ):
        if value is not None and value < 1:
            raise PromoCodeError(f"{name} must be at least 1")
    if terms.expires_at is not None:
        if terms.expires_at.tzinfo is None:
            raise PromoCodeError("expires_at must have a time zone (such as Z)")
        if terms.expires_at <= now:
            raise PromoCodeError("expires_at must be in the future")


async def create_promo(
    conn: AsyncConnection, code: str, terms: PromoTerms, *, actor: str, now: datetime
) -> str:
    """Make a promo code; the code as stored (normalized)."""
    code = normalize(code)
    _check(code, terms, now)
    try:
        await conn.execute(
            insert(promo_codes_t).values(
                code=code,
                amount=terms.amount,
                unit=terms.unit,
                credits_expire_days=terms.credits_expire_days,
                max_redemptions=terms.max_redemptions,
                per_organization=terms.per_organization,
                expires_at=terms.expires_at,
                created_by=actor,
                created_at=now,
            )
        )
    except IntegrityError:  # the unique column: this code, in any case
        raise PromoCodeError(f"promo code {code} exists") from None
    return code


async def promo_codes(conn: AsyncConnection) -> list[Any]:
    """Every promo code, newest first."""
    statement = select(promo_codes_t).order_by(promo_codes_t.c.id.desc())
    return list((await conn.execute(statement)).all())


async def end_promo(conn: AsyncConnection, code: str, *, now: datetime) -> bool:
    """Stop a code's redemptions from now on (a leaked code); False: no such code. Credits
    already granted stay."""
    code = normalize(code)
    where = promo_codes_t.c.code == code
    if await conn.scalar(select(promo_codes_t.c.id).where(where)) is None:
        return False
    still_open = (promo_codes_t.c.expires_at.is_(None)) | (promo_codes_t.c.expires_at > now)
    await conn.execute(update(promo_codes_t).where(where, still_open).values(expires_at=now))
    return True


def describe(row: Any, now: datetime) -> str:
    """One line for an operator: what the code grants, its limits, its redemptions."""
    days = row.credits_expire_days
    lasting = "never expire" if days is None else f"expire {days} days after redemption"
    limit = "" if row.max_redemptions is None else f" of {row.max_redemptions}"
    if row.expires_at is None:
        until = "open"
    else:
        until = ("ended " if row.expires_at <= now else "open until ") + row.expires_at.isoformat()
    return (
        f"{row.code}  {format_usd(row.amount)} {UNIT_NAMES[row.unit]} (credits {lasting})  "
        f"redeemed {row.redemptions}{limit}, {row.per_organization} per organization  {until}"
    )

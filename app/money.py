"""Credits and US dollars: exact conversion and the one rounding rule.

1 USD = 1,000,000 credits. Every amount is an ``int`` of credits; USD appears only
at the edges, as decimal strings with at most six places. Nothing here touches a
float: a float amount is refused, not converted.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CREDITS_PER_USD = 1_000_000
USD_DECIMALS = 6
CENT = CREDITS_PER_USD // 100
# Amounts are stored in signed 64-bit columns.
MAX_CREDITS = 2**63 - 1


class MoneyError(ValueError):
    """An amount that is not a valid USD value (too precise, negative, not a number)."""


def parse_usd(value: object, *, allow_negative: bool = False, allow_zero: bool = True) -> int:
    """Convert a USD decimal string (or int) to credits exactly, or raise MoneyError.

    Strings like ``"99.99"``, ``"0.000001"`` and ``"-3"`` (when allowed) are accepted;
    more than six decimals, exponents, floats, booleans, NaN and infinities are not.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MoneyError('must be a decimal string such as "12.50"')
    if isinstance(value, int):
        credits = value * CREDITS_PER_USD
    elif value.isascii() and value.isdigit():  # whole dollars ("0" units of every call)
        credits = int(value) * CREDITS_PER_USD
    else:
        text = value.strip()
        if not text or "e" in text.lower() or "_" in text:
            raise MoneyError(f"{value!r} is not a decimal number")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"{value!r} is not a decimal number") from None
        if not amount.is_finite():
            raise MoneyError(f"{value!r} is not a finite number")
        exponent = amount.as_tuple().exponent
        assert isinstance(exponent, int)  # finite decimals have an int exponent
        if exponent < -USD_DECIMALS:
            raise MoneyError(f"{value!r} has more than {USD_DECIMALS} decimal places")
        credits = int(amount.scaleb(USD_DECIMALS))
    if credits < 0 and not allow_negative:
        raise MoneyError("must not be negative")
    if credits == 0 and not allow_zero:
        raise MoneyError("must be greater than zero")
    if abs(credits) > MAX_CREDITS:
        raise MoneyError("is out of range")
    return credits


def format_usd(credits: int) -> str:
    """Credits as an exact USD decimal string with six places: ``1500000 -> "1.500000"``."""
    sign = "-" if credits < 0 else ""
    whole, fraction = divmod(abs(credits), CREDITS_PER_USD)
    return f"{sign}{whole}.{fraction:06d}"


def amount_json(credits: int) -> dict[str, str]:
    """An amount as the REST API and webhook bodies show it: credits and USD, both strings."""
    return {"credits": str(credits), "usd": format_usd(credits)}


def format_usd_short(credits: int) -> str:
    """Credits as USD with two places, rounded down: for the envelope headers (``42.18``).

    Down, so a header never promises money that is not there; but a positive amount under
    a cent keeps its exact decimals (``4500 -> "0.0045"``), as "0.00" means nothing is left.
    """
    if 0 < credits < CENT:
        return format_usd(credits).rstrip("0")
    cents = credits // CENT  # floor: a debt of a fraction of a cent shows as -0.01
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def div_round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half-up (away from zero on a tie) to an int.

    This is the single rounding rule for computed charges: each usage record's cost
    is computed exactly as a fraction of credits and rounded here once.
    """
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if numerator < 0:
        return -div_round_half_up(-numerator, denominator)
    return (2 * numerator + denominator) // (2 * denominator)

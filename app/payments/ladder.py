"""The top-up bonus ladder and per-transaction limits, and what a top-up delivers.

The ladder is data (``ladder.toml``, or the file ``CREDITGRAPH_BONUS_LADDER_PATH``
names). A quote is exact: amounts are whole cents, percents are basis points, so the
bonus is an integer number of credits with nothing to round.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app.datafiles import read_data_file
from app.money import CREDITS_PER_USD, MoneyError, format_usd, parse_usd

# Card payments settle in cents: a top-up is a whole number of them.
CREDITS_PER_CENT = CREDITS_PER_USD // 100
BASIS_POINTS = 10_000  # in 100%


class LadderError(ValueError):
    """A ladder file that does not describe a ladder."""


class TopUpAmountError(ValueError):
    """An amount that cannot be topped up; the message says why, for the payer."""


@dataclass(frozen=True, slots=True)
class Tier:
    min_amount: int  # credits
    bonus_basis_points: int


@dataclass(frozen=True, slots=True)
class Quote:
    amount: int  # the USD charged
    # The wallet's credits it buys before the bonus: the amount itself on a USD wallet,
    # a credit pack's plan credits on a plan-credit one.
    credits_bought: int
    bonus_basis_points: int
    bonus: int

    @property
    def delivered(self) -> int:
        return self.credits_bought + self.bonus


@dataclass(frozen=True, slots=True)
class BonusLadder:
    min_top_up: int
    max_top_up: int
    tiers: tuple[Tier, ...]  # ascending by min_amount

    @classmethod
    def load(cls, path: Path | None = None) -> BonusLadder:
        source, text = read_data_file("app.payments", "ladder.toml", path)
        try:
            return _parse(tomllib.loads(text))
        except (tomllib.TOMLDecodeError, LadderError, MoneyError, KeyError, TypeError) as exc:
            raise LadderError(f"{source}: {exc}") from None

    def amount(self, usd: object) -> int:
        """A top-up amount in credits, or TopUpAmountError saying what is wrong with it."""
        try:
            credits = parse_usd(usd, allow_zero=False)
        except MoneyError as exc:
            raise TopUpAmountError(str(exc)) from None
        if credits % CREDITS_PER_CENT:
            raise TopUpAmountError("top-ups are charged in whole cents: at most 2 decimals")
        if not self.min_top_up <= credits <= self.max_top_up:
            raise TopUpAmountError(
                f"a top-up must be between {_usd(self.min_top_up)} and {_usd(self.max_top_up)} USD"
            )
        return credits

    def quote(self, amount: int, boost_basis_points: int = 0) -> Quote:
        """What ``amount`` credits (already checked by ``amount``) deliver: the ladder's
        bonus plus the plan's boost, in percentage points."""
        basis_points = boost_basis_points
        for tier in self.tiers:
            if amount >= tier.min_amount:
                basis_points = tier.bonus_basis_points + boost_basis_points
        # Whole cents times basis points: an exact number of credits.
        return Quote(amount, amount, basis_points, amount * basis_points // BASIS_POINTS)


def percent(basis_points: int) -> str:
    """Basis points as a percent string without trailing zeros: 1120 -> "11.2"."""
    return _plain(Decimal(basis_points) / 100)


def _usd(credits: int) -> str:
    return _plain(Decimal(format_usd(credits)))


def _plain(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def basis_points(value: Any) -> int:
    """A percent string with at most two decimals, as basis points: "11.2" -> 1120."""
    if not isinstance(value, str):
        raise LadderError(f"bonus_percent {value!r} must be a decimal string")
    try:
        points = Decimal(value) * 100
    except InvalidOperation:
        raise LadderError(f"bonus_percent {value!r} is not a number") from None
    if points != points.to_integral_value() or points < 0:
        raise LadderError(f"bonus_percent {value!r}: at most 2 decimals, not negative")
    return int(points)


def _parse(data: dict[str, Any]) -> BonusLadder:
    low, high = parse_usd(data["min_top_up"]), parse_usd(data["max_top_up"])
    if not 0 < low <= high or low % CREDITS_PER_CENT or high % CREDITS_PER_CENT:
        raise LadderError("need 0 < min_top_up <= max_top_up, in whole cents")
    tiers = tuple(
        Tier(parse_usd(tier["min_amount"]), basis_points(tier["bonus_percent"]))
        for tier in data.get("tiers", [])
    )
    if [t.min_amount for t in tiers] != sorted({t.min_amount for t in tiers}):
        raise LadderError("tiers must be listed by ascending min_amount, each once")
    return BonusLadder(low, high, tiers)

"""The plan catalog (``catalog.toml``): what each plan grants, allows and costs.

Plans are data: a deployment replaces the file with ``CREDITGRAPH_PLAN_CATALOG_PATH``.
Every amount is parsed exactly (``app.money.parse_usd``, whose micro precision serves
both units); percents become basis points.
"""

from __future__ import annotations

import tomllib
from calendar import monthrange
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from app.datafiles import read_data_file
from app.money import MoneyError, parse_usd
from app.payments.ladder import LadderError, basis_points
from app.pricing.book import ModelClass

Period = Literal["month", "4 weeks"]
PURCHASE_WINDOW = timedelta(days=28)  # Bytez: "credits purchased in the last 4 weeks"
MESSAGE_WINDOW = timedelta(hours=12)  # ByteSpike: "messages per 12h window"


def add_months(at: datetime, months: int) -> datetime:
    """``at`` moved by whole calendar months, clamped to the month's last day."""
    year, month = divmod(at.month - 1 + months, 12)
    year, month = at.year + year, month + 1
    return at.replace(year=year, month=month, day=min(at.day, monthrange(year, month)[1]))


class CatalogError(ValueError):
    """A catalog file that does not describe plans."""


class ConcurrencyCounts(StrEnum):
    """Which calls in flight a plan's concurrency limit counts."""

    CALLS = "calls"  # every call (ByteSpike)
    OPEN_MODEL_CALLS = "open_models"  # calls to open models only (Bytez)


@dataclass(frozen=True, slots=True)
class UnlockTier:
    purchased: int  # USD credits bought in the last 28 days to reach it
    max_open_model_params_b: int
    concurrency: int


@dataclass(frozen=True, slots=True)
class Entitlement:
    """What an organization may run now, and the purchase that unlocks more."""

    tier: int  # 0-based index in the plan's tiers; 0 without tiers
    max_open_model_params_b: int | None
    concurrency: int | None
    next_tier: int | None
    purchase_needed: int | None  # more USD credits to buy within 28 days to reach it


@dataclass(frozen=True, slots=True)
class Plan:
    code: str
    name: str
    price: int | None  # in ``currency``'s micro units; None: custom (by contract)
    currency: str
    period: Period
    unit: Literal["usd", "credit"]
    allocation: int
    rollover_basis_points: int
    overage_usd_per_credit: int | None  # micro-USD per whole plan credit
    top_up_bonus_boost_basis_points: int
    purchase_expiry_days: int | None
    # Calls per rolling 12 h window to models of each class (every class listed); empty:
    # no limit.
    messages_per_12h: tuple[tuple[ModelClass, int], ...]
    concurrency: int | None
    concurrency_counts: ConcurrencyCounts
    max_open_model_params_b: int | None
    unlock_tiers: tuple[UnlockTier, ...]
    priority: bool
    auto_top_up_min: int | None
    refundable: bool = True
    trial_grant: int = 0  # credits granted once, when an organization's first plan is this

    def messages_for(self, model_class: ModelClass) -> int | None:
        """Calls per 12 h window to models of ``model_class``; None: no limit."""
        return dict(self.messages_per_12h).get(model_class)

    def counts_in_flight(self, open_model: bool) -> bool:
        """Whether a call (to an open model or not) counts against the concurrency."""
        return self.concurrency_counts is ConcurrencyCounts.CALLS or open_model

    @property
    def paid(self) -> bool:
        return self.price is not None and self.price > 0

    def period_end(self, anchor: datetime, number: int) -> datetime:
        """When period ``number`` (0 is the first) of a subscription that began at
        ``anchor`` ends, and the next begins. Months count from the anchor, so one that
        began on the 31st renews on each month's last day without drifting."""
        if self.period == "4 weeks":
            return anchor + timedelta(weeks=4 * (number + 1))
        return add_months(anchor, number + 1)

    def rollover_cap(self) -> int:
        return self.allocation * self.rollover_basis_points // 10_000

    def entitlement(self, purchased: int) -> Entitlement:
        """What credits bought in the last 28 days unlock on this plan."""
        if not self.unlock_tiers:
            return Entitlement(0, self.max_open_model_params_b, self.concurrency, None, None)
        reached = 0
        for index, tier in enumerate(self.unlock_tiers):
            if purchased >= tier.purchased:
                reached = index
        tier = self.unlock_tiers[reached]
        following = reached + 1 if reached + 1 < len(self.unlock_tiers) else None
        needed = None if following is None else self.unlock_tiers[following].purchased - purchased
        return Entitlement(
            reached, tier.max_open_model_params_b, tier.concurrency, following, needed
        )


class Catalog:
    def __init__(self, plans: dict[str, Plan]) -> None:
        self.plans = plans

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        source, text = read_data_file("app.plans", "catalog.toml", path)
        try:
            data = tomllib.loads(text)
            return cls({code: _plan(code, raw) for code, raw in data["plans"].items()})
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"{source}: {exc}") from None

    def get(self, code: str | None) -> Plan | None:
        return None if code is None else self.plans.get(code)


def _optional_usd(value: Any) -> int | None:
    return None if value is None else parse_usd(value)


def _messages(raw: Any) -> tuple[tuple[ModelClass, int], ...]:
    """``{ premium = 50, standard = 150, light = 500 }``: a figure per model class;
    standard's is required and stands for any class not given."""
    if raw is None:
        return ()
    if not isinstance(raw, dict) or "standard" not in raw:
        raise CatalogError("messages_per_12h: a table of model classes, standard included")
    if unknown := sorted(raw.keys() - set(ModelClass)):
        raise CatalogError(f"messages_per_12h: unknown model class {', '.join(unknown)}")
    figures: dict[ModelClass, int] = {  # premium first
        c: raw[c] if c in raw else raw["standard"] for c in ModelClass
    }
    if not all(type(n) is int and n > 0 for n in figures.values()):
        raise CatalogError("messages_per_12h: each figure is a positive whole number")
    if list(figures.values()) != sorted(figures.values()):
        raise CatalogError("messages_per_12h: premium <= standard <= light")
    return tuple(figures.items())


def _plan(code: str, raw: dict[str, Any]) -> Plan:
    period = raw.get("period", "month")
    unit = raw.get("unit", "usd")
    if period not in ("month", "4 weeks") or unit not in ("usd", "credit"):
        raise CatalogError(f"{code}: period must be month or 4 weeks; unit usd or credit")
    try:
        tiers = tuple(
            UnlockTier(parse_usd(t["purchased"]), t["max_open_model_params_b"], t["concurrency"])
            for t in raw.get("unlock_tiers", [])
        )
        plan = Plan(
            code=code,
            name=raw["name"],
            price=_optional_usd(raw.get("price")),
            currency=raw["currency"],
            period=period,
            unit=unit,
            allocation=parse_usd(raw.get("allocation", "0")),
            rollover_basis_points=basis_points(raw.get("rollover_percent", "0")),
            overage_usd_per_credit=_optional_usd(raw.get("overage_usd_per_credit")),
            top_up_bonus_boost_basis_points=basis_points(
                raw.get("top_up_bonus_boost_percent", "0")
            ),
            purchase_expiry_days=raw.get("purchase_expiry_days"),
            messages_per_12h=_messages(raw.get("messages_per_12h")),
            concurrency=raw.get("concurrency"),
            concurrency_counts=ConcurrencyCounts(raw.get("concurrency_counts", "calls")),
            max_open_model_params_b=raw.get("max_open_model_params_b"),
            unlock_tiers=tiers,
            priority=bool(raw.get("priority", False)),
            auto_top_up_min=_optional_usd(raw.get("auto_top_up_min")),
            refundable=raw.get("refundable", True),
            trial_grant=parse_usd(raw.get("trial_grant", "0")),
        )
    except (MoneyError, LadderError, ValueError) as exc:  # CatalogError, a bad enum value
        raise CatalogError(f"{code}: {exc}") from None
    if not isinstance(plan.refundable, bool):
        raise CatalogError(f"{code}: refundable must be true or false")
    if [t.purchased for t in tiers] != sorted({t.purchased for t in tiers}):
        raise CatalogError(f"{code}: unlock tiers must ascend by purchased, each once")
    return plan

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
from fractions import Fraction
from math import lcm
from pathlib import Path
from typing import Any, Literal

from app.datafiles import read_data_file
from app.money import CREDITS_PER_USD, MoneyError, parse_usd
from app.payments.ladder import CREDITS_PER_CENT, LadderError, basis_points
from app.pricing.book import ModelClass

Period = Literal["month", "4 weeks"]
PURCHASE_WINDOW = timedelta(days=28)  # Bytez: "credits purchased in the last 4 weeks"
MESSAGE_WINDOW = timedelta(hours=12)  # ByteSpike: "messages per 12h window"
REQUEST_WINDOW = timedelta(seconds=1)  # Bytez Free: "10 requests/second (closed models)"


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
class CreditPack:
    """Plan credits sold for a price (8bit-ai: "Buy credit packs")."""

    id: str  # "<plan code>:<whole credits>": "8bit-starter:1000"
    credits: int  # plan credits, micro precision
    price: int  # micro-USD, whole cents


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
    # Calls per rolling 12 h window, by the called model's class (every class listed),
    # all of them sharing one window; empty: no limit.
    messages_per_12h: tuple[tuple[ModelClass, int], ...]
    closed_requests_per_second: int | None
    concurrency: int | None
    concurrency_counts: ConcurrencyCounts
    max_open_model_params_b: int | None
    unlock_tiers: tuple[UnlockTier, ...]
    priority: bool
    auto_top_up_min: int | None
    refundable: bool = True
    credit_packs: tuple[CreditPack, ...] = ()  # ascending by credits, all at one rate
    trial_grant: int = 0  # credits granted once, when an organization's first plan is this

    @property
    def message_window(self) -> int:
        """The shared 12 h window's size in weight units: every class's figure divides
        it, so a call weighs ``message_weight`` and the window holds exactly one class's
        figure of that class's calls alone (ByteSpike Pro: 50 premium, 150 standard or
        500 light ones, or a mix)."""
        return lcm(*(n for _, n in self.messages_per_12h))

    def message_weight(self, model_class: str) -> int:
        """What one call to a model of ``model_class`` takes of the window."""
        figures: dict[str, int] = dict(self.messages_per_12h)
        return self.message_window // figures[model_class]

    def in_flight(self, calls: int, slots: int) -> int:
        """What ``calls`` in flight taking ``slots`` open-model slots in all (a closed
        model's call takes none) count against the concurrency: each call one, or (Bytez)
        the slots."""
        return calls if self.concurrency_counts is ConcurrencyCounts.CALLS else slots

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

    @property
    def credits_per_usd(self) -> Fraction | None:
        """What a dollar buys in this plan's wallet: a dollar of credits on a USD plan;
        on a plan-credit plan, credits at its packs' rate (50 on 8bit-ai Starter);
        None where it sells none (priced by contract)."""
        if self.unit == "usd":
            return Fraction(1)
        if not self.credit_packs:
            return None
        return Fraction(self.credit_packs[0].credits, self.credit_packs[0].price)

    def pack(self, pack_id: str) -> CreditPack | None:
        return next((pack for pack in self.credit_packs if pack.id == pack_id), None)

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
            closed_requests_per_second=raw.get("closed_requests_per_second"),
            concurrency=raw.get("concurrency"),
            concurrency_counts=ConcurrencyCounts(raw.get("concurrency_counts", "calls")),
            max_open_model_params_b=raw.get("max_open_model_params_b"),
            unlock_tiers=tiers,
            priority=bool(raw.get("priority", False)),
            auto_top_up_min=_optional_usd(raw.get("auto_top_up_min")),
            refundable=raw.get("refundable", True),
            credit_packs=tuple(_pack(code, pack) for pack in raw.get("credit_packs", [])),
            trial_grant=parse_usd(raw.get("trial_grant", "0")),
        )
    except (MoneyError, LadderError, ValueError) as exc:  # CatalogError, a bad enum value
        raise CatalogError(f"{code}: {exc}") from None
    if not isinstance(plan.refundable, bool):
        raise CatalogError(f"{code}: refundable must be true or false")
    if [t.purchased for t in tiers] != sorted({t.purchased for t in tiers}):
        raise CatalogError(f"{code}: unlock tiers must ascend by purchased, each once")
    _check_packs(plan)
    return plan


def _pack(code: str, raw: dict[str, Any]) -> CreditPack:
    credits = parse_usd(raw["credits"], allow_zero=False)
    price = parse_usd(raw["price"], allow_zero=False)
    if credits % CREDITS_PER_USD or price % CREDITS_PER_CENT:
        raise CatalogError(f"{code}: a credit pack holds whole credits and costs whole cents")
    return CreditPack(f"{code}:{credits // CREDITS_PER_USD}", credits, price)


def _check_packs(plan: Plan) -> None:
    packs = plan.credit_packs
    if packs and plan.unit != "credit":
        raise CatalogError(f"{plan.code}: only plan-credit plans sell credit packs")
    if [p.credits for p in packs] != sorted({p.credits for p in packs}):
        raise CatalogError(f"{plan.code}: credit packs must ascend by credits, each once")
    # One rate, so auto-reload's dollars convert at the price every pack states.
    if len({Fraction(p.credits, p.price) for p in packs}) > 1:
        raise CatalogError(f"{plan.code}: every credit pack must sell credits at one rate")

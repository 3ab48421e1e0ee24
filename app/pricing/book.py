"""The price book: rate cards loaded from ``pricebook.toml`` and exact integer charges.

Every amount in the file is a decimal string parsed with :func:`app.money.parse_usd`,
so prices are stored as integer millionths of the card's unit (credits on a ``usd``
card, plan-credit units on a ``credit`` card). A charge is computed as an exact
integer fraction, the platform fee included, and rounded once, half-up, with
:func:`app.money.div_round_half_up`: a fee is never rounded on its own.
The file is validated completely at load; lookups afterwards are dictionary reads.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, assert_never

from app.datafiles import read_data_file
from app.money import CREDITS_PER_USD, MoneyError, div_round_half_up, parse_usd

# Decimal strings (prices, units, percentages) are all parsed to integer millionths.
SCALE = CREDITS_PER_USD
TOKENS_PER_PRICE = 1_000_000  # token prices are per million tokens
FINE = 1_000_000  # per-second prices are kept in millionths of a credit (VRAM rates)
PERCENT = 100 * SCALE  # fee_percent is in millionths of a percent
UNITS = ("usd", "credit")
_SIZE_CLASS = re.compile(r"[1-9][0-9]*B")


class PricingError(ValueError):
    """Bad usage input, or a price book file that does not validate."""


class UnknownModel(PricingError):
    """The model (or its rate card) is not in the price book version in force."""

    def __init__(self, card: str, model: str) -> None:
        super().__init__(f"unknown model {model!r} on rate card {card!r}")
        self.card = card
        self.model = model


class ModelClass(StrEnum):
    """How heavy a model is, for the plans that limit messages per class (ByteSpike's
    "50-500 messages per 12h": the heaviest models get the fewest)."""

    PREMIUM = "premium"
    STANDARD = "standard"
    LIGHT = "light"


class Mode(StrEnum):
    """How a model is priced; see the header of ``pricebook.toml``."""

    TOKENS = "tokens"
    PER_UNIT = "per_unit"
    PER_SECOND = "per_second"
    PER_MINUTE = "per_minute"
    PASSTHROUGH = "passthrough"


@dataclass(frozen=True, slots=True)
class Metered:
    """What one request used, as reported by the caller; validated on construction.

    ``units`` is a non-negative decimal string with at most 6 decimals: seconds for
    ``per_second`` and ``per_minute`` models, a count for ``per_unit`` models, where
    ``"0"`` (the default) counts as one request. ``provider_cost`` is in credits and
    is required by ``passthrough`` models.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    units: str = "0"
    provider_cost: int | None = None

    def __post_init__(self) -> None:
        _count("prompt_tokens", self.prompt_tokens)
        _count("completion_tokens", self.completion_tokens)
        if self.provider_cost is not None:
            _count("provider_cost", self.provider_cost)
        _scaled_units(self.units)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's row on a rate card. Prices are millionths of the card's unit."""

    name: str
    family: str
    action: str
    mode: Mode
    input_per_mtok: int = 0
    output_per_mtok: int = 0
    per_unit: int = 0
    per_minute: int = 0
    # per_second: millionths of a credit per second, from the size class or the VRAM
    per_second_micro: int = 0
    size_class: str | None = None
    params_b: int | None = None
    vram_gb: int | None = None
    # An open model's share of a plan's concurrency, in the seed's "Concurrent Requests
    # (7B)": its per-second price (VRAM, on Bytez) over the card's smallest size class,
    # rounded up; 0 for closed models, which concurrency does not count.
    slots: int = 0
    # The platform fee on top of the price, in millionths of a percent: a passthrough
    # model's (its own, else the card's), or the card's on its fee families' models.
    fee_percent: int = 0
    model_class: ModelClass = ModelClass.STANDARD

    def charge(self, metered: Metered) -> int:
        """The charge for ``metered``, the fee included, rounded once half-up."""
        numerator, denominator = self._price(metered)
        return div_round_half_up(numerator * (PERCENT + self.fee_percent), denominator * PERCENT)

    def _price(self, metered: Metered) -> tuple[int, int]:
        """The price before the fee, as an exact fraction."""
        match self.mode:
            case Mode.TOKENS:
                numerator = (
                    metered.prompt_tokens * self.input_per_mtok
                    + metered.completion_tokens * self.output_per_mtok
                )
                return numerator, TOKENS_PER_PRICE
            case Mode.PER_UNIT:
                count = _scaled_units(metered.units) or SCALE  # "0" is one request
                return count * self.per_unit, SCALE
            case Mode.PER_SECOND:
                seconds = -(-_scaled_units(metered.units) // SCALE)  # Bytez: 1-second increments
                return seconds * self.per_second_micro, FINE
            case Mode.PER_MINUTE:
                return _scaled_units(metered.units) * self.per_minute, 60 * SCALE
            case Mode.PASSTHROUGH:
                if metered.provider_cost is None:
                    raise PricingError(f"model {self.name!r} is passthrough; give provider_cost")
                return metered.provider_cost, 1
            case _:
                assert_never(self.mode)


@dataclass(frozen=True, slots=True)
class _Group:
    serves_all: bool
    families: frozenset[str]


# A version of the book: card name -> model name -> price.
_Cards = dict[str, dict[str, ModelPrice]]


class PriceBook:
    """Versioned rate cards, actions and routing groups. Build it with :meth:`load`."""

    def __init__(
        self,
        versions: list[tuple[date, _Cards]],
        units: dict[str, str],
        actions: dict[str, bool],
        groups: dict[str, _Group],
        payment_required: dict[str, str] | None = None,
    ) -> None:
        self._dates = [effective for effective, _ in versions]
        self._versions = [cards for _, cards in versions]
        self._units = units
        self._payment_required = payment_required or {}
        self._critical = actions
        self.actions = frozenset(actions)
        self._groups = groups

    @classmethod
    def load(cls, path: Path | None = None) -> PriceBook:
        """Read and validate a price book file (default: the packaged ``pricebook.toml``)."""
        source, text = read_data_file("app.pricing", "pricebook.toml", path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PricingError(f"{source}: not valid TOML: {exc}") from None
        try:
            return _parse(data)
        except PricingError as exc:
            raise PricingError(f"{source}: {exc}") from None

    @property
    def cards(self) -> tuple[str, ...]:
        return tuple(self._units)

    @property
    def groups(self) -> frozenset[str]:
        """The routing groups a key may be in; any other group serves nothing."""
        return frozenset(self._groups)

    def unit(self, card: str) -> str:
        """``"usd"`` (charges in credits) or ``"credit"`` (charges in plan-credit units)."""
        try:
            return self._units[card]
        except KeyError:
            raise PricingError(f"unknown rate card {card!r}") from None

    def payment_required_message(self, card: str) -> str | None:
        """The message a 402 gives the card's callers, when the platform words its own
        (Bytez's page shows "Insufficient credits. Please add credits to continue.")."""
        return self._payment_required.get(card)

    def is_critical(self, action: str) -> bool:
        """Whether the action keeps working when an account is paused; unknown is not."""
        return self._critical.get(action, False)

    def model(self, card: str, name: str, at: datetime) -> ModelPrice:
        """The model's price in the version in force at ``at`` (an aware datetime)."""
        if at.tzinfo is None:
            raise PricingError("naive datetime given to the price book; use aware UTC")
        index = bisect_right(self._dates, at.astimezone(UTC).date()) - 1
        models = self._versions[max(index, 0)].get(card)
        if models is None or name not in models:
            raise UnknownModel(card, name)
        return models[name]

    def knows(self, card: str, name: str, at: datetime) -> bool:
        try:
            self.model(card, name, at)
        except UnknownModel:
            return False
        return True

    def cost(self, card: str, name: str, metered: Metered, at: datetime) -> int:
        """The charge in millionths of the card's unit (credits on a ``usd`` card)."""
        return self.model(card, name, at).charge(metered)

    def max_cost(
        self, card: str, name: str, max_prompt_tokens: int, max_completion_tokens: int, at: datetime
    ) -> int:
        """The cost of the given token maxima; only token-priced models have one."""
        price = self.model(card, name, at)
        if price.mode is not Mode.TOKENS:
            raise PricingError(f"model {name!r} is not priced by tokens; give hold_usd")
        return price.charge(Metered(max_prompt_tokens, max_completion_tokens))

    def group_serves(self, group: str, card: str, model: str, at: datetime) -> bool:
        """Whether keys in ``group`` may call ``model``; unknown groups and models: no."""
        rule = self._groups.get(group)
        if rule is None:
            return False
        try:
            price = self.model(card, model, at)
        except UnknownModel:
            return False
        return rule.serves_all or price.family in rule.families


def _count(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PricingError(f"{field} must be a non-negative integer, got {value!r}")
    return value


def _scaled_units(units: object) -> int:
    """``units`` as an exact integer of millionths."""
    if isinstance(units, str):
        try:
            return parse_usd(units)
        except MoneyError:
            pass
    raise PricingError(
        f"units must be a non-negative decimal string with at most 6 decimals, got {units!r}"
    )


# Loading and validation. Errors name where in the file the problem is.

_MODE_FIELDS: dict[Mode, tuple[frozenset[str], frozenset[str]]] = {  # required, optional
    Mode.TOKENS: (frozenset({"input_per_mtok", "output_per_mtok"}), frozenset()),
    Mode.PER_UNIT: (frozenset({"per_unit"}), frozenset()),
    Mode.PER_SECOND: (frozenset({"params_b"}), frozenset({"size_class", "vram_gb"})),
    Mode.PER_MINUTE: (frozenset({"per_minute"}), frozenset()),
    Mode.PASSTHROUGH: (frozenset(), frozenset({"fee_percent"})),
}
_MODEL_FIELDS = frozenset({"family", "action", "mode"})
_OPTIONAL_FIELDS = frozenset({"model_class"})
_MODES = frozenset(mode.value for mode in Mode)
_MODEL_CLASSES = frozenset(c.value for c in ModelClass)


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PricingError(f"{where}: must be a table")
    return value


def _check_keys(
    table: dict[str, Any], where: str, required: Iterable[str], optional: Iterable[str] = ()
) -> None:
    required = set(required)
    if missing := sorted(required - table.keys()):
        raise PricingError(f"{where}: missing {', '.join(missing)}")
    if unknown := sorted(table.keys() - required - set(optional)):
        raise PricingError(f"{where}: unknown field {', '.join(unknown)}")


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PricingError(f"{where}: must be a non-empty string")
    return value


def _amount(value: object, where: str) -> int:
    if isinstance(value, float):
        raise PricingError(f'{where}: {value!r} is a float; write amounts as strings like "0.25"')
    if not isinstance(value, str):
        raise PricingError(f"{where}: amounts must be decimal strings, got {value!r}")
    try:
        return parse_usd(value)
    except MoneyError as exc:
        raise PricingError(f"{where}: {exc}") from None


def _parse(data: dict[str, Any]) -> PriceBook:
    _check_keys(data, "top level", ("actions", "groups", "versions"))
    actions: dict[str, bool] = {}
    for name, entry in _table(data["actions"], "actions").items():
        where = f"actions.{name}"
        _check_keys(_table(entry, where), where, ("critical",))
        if not isinstance(entry["critical"], bool):
            raise PricingError(f"{where}.critical: must be true or false")
        actions[name] = entry["critical"]

    raw_versions = data["versions"]
    if not isinstance(raw_versions, list) or not raw_versions:
        raise PricingError("versions: must be a non-empty array of tables ([[versions]])")
    versions: list[tuple[date, _Cards]] = []
    units: dict[str, str] = {}
    payment_required: dict[str, str] = {}
    for index, raw in enumerate(raw_versions):
        where = f"versions[{index}]"
        version = _table(raw, where)
        _check_keys(version, where, ("effective_from", "cards"))
        effective = version["effective_from"]
        if isinstance(effective, datetime) or not isinstance(effective, date):
            raise PricingError(f"{where}.effective_from: must be a date like 2026-01-01")
        if versions and effective <= versions[-1][0]:
            raise PricingError(
                f"{where}.effective_from: versions must be sorted by date, without duplicates"
            )
        cards: _Cards = {}
        for card_name, card in _table(version["cards"], f"{where}.cards").items():
            card_where = f"{where}.cards.{card_name}"
            cards[card_name] = _parse_card(_table(card, card_where), card_where, actions)
            unit = card["unit"]
            if units.setdefault(card_name, unit) != unit:
                raise PricingError(f"{card_where}.unit: a card cannot change its unit")
            if "payment_required_message" in card:  # the latest version's wording
                payment_required[card_name] = _text(
                    card["payment_required_message"], f"{card_where}.payment_required_message"
                )
        versions.append((effective, cards))

    families = {
        price.family
        for _, cards in versions
        for models in cards.values()
        for price in models.values()
    }
    groups = {
        name: _parse_group(entry, f"groups.{name}", families)
        for name, entry in _table(data["groups"], "groups").items()
    }
    return PriceBook(versions, units, actions, groups, payment_required)


def _parse_card(
    card: dict[str, Any], where: str, actions: dict[str, bool]
) -> dict[str, ModelPrice]:
    _check_keys(
        card,
        where,
        ("unit", "models"),
        (
            "fee_percent",
            "fee_families",
            "size_classes",
            "vram_usd_per_gb_second",
            "payment_required_message",
        ),
    )
    unit = card["unit"]
    if unit not in UNITS:
        raise PricingError(f"{where}.unit: must be one of {', '.join(UNITS)}, got {unit!r}")
    card_fee = (
        _amount(card["fee_percent"], f"{where}.fee_percent") if "fee_percent" in card else None
    )
    fee_families = _fee_families(card, where, card_fee)
    vram_rate = (
        _vram_rate(card["vram_usd_per_gb_second"], f"{where}.vram_usd_per_gb_second")
        if "vram_usd_per_gb_second" in card
        else None
    )
    size_classes: dict[str, int] = {}
    for size, price in _table(card.get("size_classes", {}), f"{where}.size_classes").items():
        if not _SIZE_CLASS.fullmatch(size):
            raise PricingError(f'{where}.size_classes.{size}: names look like "7B"')
        size_classes[size] = _amount(price, f"{where}.size_classes.{size}")

    models: dict[str, ModelPrice] = {}
    for name, raw in _table(card["models"], f"{where}.models").items():
        model_where = f"{where}.models.{name}"
        row = _table(raw, model_where)
        mode_text = row.get("mode")
        if not isinstance(mode_text, str) or mode_text not in _MODES:
            raise PricingError(f"{model_where}.mode: unknown mode {mode_text!r}")
        mode = Mode(mode_text)
        required, optional = _MODE_FIELDS[mode]
        _check_keys(row, model_where, _MODEL_FIELDS | required, optional | _OPTIONAL_FIELDS)
        action = _text(row["action"], f"{model_where}.action")
        if action not in actions:
            raise PricingError(f"{model_where}.action: unknown action {action!r}")
        fields: dict[str, Any] = {}
        for field in ("input_per_mtok", "output_per_mtok", "per_unit", "per_minute"):
            if field in row:
                fields[field] = _amount(row[field], f"{model_where}.{field}")
        if mode is Mode.PER_SECOND:
            fields.update(_size_fields(row, model_where, size_classes, vram_rate))
            smallest = min(size_classes.values(), default=0) * FINE
            per_second = fields["per_second_micro"]
            fields["slots"] = -(-per_second // smallest) if smallest else 1
        if mode is Mode.PASSTHROUGH:
            if unit != "usd":
                raise PricingError(f"{model_where}: passthrough needs a card whose unit is usd")
            if "fee_percent" in row:
                fields["fee_percent"] = _amount(row["fee_percent"], f"{model_where}.fee_percent")
            elif card_fee is not None:
                fields["fee_percent"] = card_fee
            else:
                raise PricingError(
                    f"{model_where}: passthrough needs fee_percent here or on the card"
                )
        model_class = row.get("model_class", ModelClass.STANDARD)
        if not isinstance(model_class, str) or model_class not in _MODEL_CLASSES:
            raise PricingError(
                f"{model_where}.model_class: one of {', '.join(ModelClass)}, got {model_class!r}"
            )
        fields["model_class"] = ModelClass(model_class)
        family = _text(row["family"], f"{model_where}.family")
        if family in fee_families and card_fee is not None:  # Bytez: closed models, any mode
            fields["fee_percent"] = card_fee
        models[name] = ModelPrice(name=name, family=family, action=action, mode=mode, **fields)
    return models


def _fee_families(card: dict[str, Any], where: str, card_fee: int | None) -> frozenset[str]:
    """The families whose models bill the card's fee on top of any price (Bytez's
    closed-model providers: "Provider price + 2% platform fee")."""
    listed = card.get("fee_families", [])
    if not isinstance(listed, list) or not all(isinstance(f, str) and f for f in listed):
        raise PricingError(f"{where}.fee_families: must be a list of family names")
    if listed and card_fee is None:
        raise PricingError(f"{where}.fee_families: needs fee_percent on the card")
    return frozenset(listed)


def _vram_rate(value: object, where: str) -> int:
    """The card's USD per GB-second of VRAM in millionths of a credit (Bytez's
    $0.0000045 is 4.5 credits: finer than the 6 decimals of other amounts)."""
    try:
        rate = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        rate = None
    if rate is None or not rate.is_finite() or rate < 0 or rate != rate.quantize(Decimal("1e-12")):
        raise PricingError(
            f"{where}: must be a non-negative decimal string with at most 12 decimals"
        )
    return int(rate.scaleb(12))


def _size_fields(
    row: dict[str, Any], where: str, size_classes: dict[str, int], vram_rate: int | None
) -> dict[str, Any]:
    """A per-second price: the size class's, else the model's VRAM at the card's rate
    per GB-second (the rule Bytez's size table comes from)."""
    params = row["params_b"]
    if isinstance(params, bool) or not isinstance(params, int) or params <= 0:
        raise PricingError(f"{where}.params_b: must be a positive integer")
    if ("size_class" in row) == ("vram_gb" in row):
        raise PricingError(f"{where}: give either size_class or vram_gb")
    if "vram_gb" in row:
        vram = row["vram_gb"]
        if isinstance(vram, bool) or not isinstance(vram, int) or vram <= 0:
            raise PricingError(f"{where}.vram_gb: must be a positive integer (GB)")
        if vram_rate is None:
            raise PricingError(f"{where}.vram_gb: needs vram_usd_per_gb_second on the card")
        return {"params_b": params, "vram_gb": vram, "per_second_micro": vram * vram_rate}
    size = row["size_class"]
    if not isinstance(size, str) or size not in size_classes:
        raise PricingError(f"{where}.size_class: unknown size class {size!r}")
    if params > int(size.removesuffix("B")):
        raise PricingError(f"{where}.params_b: {params} is above size class {size}")
    per_second = size_classes[size] * FINE
    return {"size_class": size, "params_b": params, "per_second_micro": per_second}


def _parse_group(entry: object, where: str, families: set[str]) -> _Group:
    group = _table(entry, where)
    if "all" in group:
        _check_keys(group, where, ("all",))
        if group["all"] is not True:
            raise PricingError(f"{where}.all: must be true (list families to serve fewer)")
        return _Group(serves_all=True, families=frozenset())
    _check_keys(group, where, ("families",))
    listed = group["families"]
    if not isinstance(listed, list) or not listed:
        raise PricingError(f"{where}.families: must be a non-empty list of family names")
    for family in listed:
        if not isinstance(family, str) or family not in families:
            raise PricingError(f"{where}.families: no model has family {family!r}")
    return _Group(serves_all=False, families=frozenset(listed))

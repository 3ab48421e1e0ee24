"""The price book: loading, validation, version choice and exact charges."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from math import floor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.money import div_round_half_up
from app.pricing.book import Metered, Mode, PriceBook, PricingError, UnknownModel

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BOOK = PriceBook.load()
PACKAGED = Path(__file__).parents[2] / "app" / "pricing" / "pricebook.toml"

# A small valid book with two versions; the bad-file cases below break it one way each.
TWO_VERSIONS = """
[actions]
llm_inference = { critical = false }
image = { critical = true }

[groups]
default = { all = true }
test-only = { families = ["test"] }

[[versions]]
effective_from = 2026-01-01

[versions.cards.standard]
unit = "usd"
fee_percent = "2"

[versions.cards.standard.size_classes]
7B = "0.000072"

[versions.cards.standard.models]
tiny = { family = "test", action = "llm_inference", mode = "tokens", input_per_mtok = "0.0001", output_per_mtok = "0.0003" }
small = { family = "open", action = "llm_inference", mode = "per_second", size_class = "7B", params_b = 7 }
pic = { family = "test", action = "image", mode = "passthrough", fee_percent = "10.5" }
card-fee = { family = "test", action = "image", mode = "passthrough" }

[[versions]]
effective_from = 2026-06-01

[versions.cards.standard]
unit = "usd"

[versions.cards.standard.models]
tiny = { family = "test", action = "llm_inference", mode = "tokens", input_per_mtok = "0.0002", output_per_mtok = "0.0006" }
"""  # noqa: E501 (inline tables, as in the real file)


def write_book(tmp_path: Path, text: str) -> PriceBook:
    path = tmp_path / "pricebook.toml"
    path.write_text(text, encoding="utf-8")
    return PriceBook.load(path)


@pytest.fixture
def two_versions(tmp_path: Path) -> PriceBook:
    return write_book(tmp_path, TWO_VERSIONS)


# The packaged book: exact charges by mode.


def test_packaged_book_loads_from_default_and_explicit_path() -> None:
    assert BOOK.cards == ("standard", "bytez", "8bit-ai")
    assert PriceBook.load(PACKAGED).cards == BOOK.cards
    assert BOOK.unit("standard") == "usd"
    assert BOOK.unit("8bit-ai") == "credit"
    with pytest.raises(PricingError, match="unknown rate card"):
        BOOK.unit("premium")


def test_model_row_is_parsed_to_integer_micro_units() -> None:
    price = BOOK.model("standard", "gpt-5-5", AT)
    assert price.mode is Mode.TOKENS
    assert price.family == "openai"
    assert price.action == "llm_inference"
    assert (price.input_per_mtok, price.output_per_mtok) == (1_250_000, 10_000_000)
    qwen = BOOK.model("standard", "Qwen/Qwen2.5-14B-Instruct", AT)
    assert (qwen.size_class, qwen.params_b, qwen.per_second_micro) == ("15B", 14, 108_000_000)
    assert BOOK.model("standard", "openai/sora-2", AT).fee_percent == 2_000_000


def test_token_cost_is_exact() -> None:
    # (1000 * 3 USD + 500 * 15 USD) per million tokens = 0.0105 USD.
    assert BOOK.cost("standard", "claude-sonnet-4-6", Metered(1000, 500), AT) == 10_500
    assert BOOK.cost("standard", "claude-opus-4-6", Metered(1_000_000, 1_000_000), AT) == (
        90_000_000
    )
    assert BOOK.cost("standard", "claude-haiku-4-5", Metered(), AT) == 0


@pytest.mark.parametrize(
    ("prompt_tokens", "credits"),
    [
        (1, 0),  # 0.25 rounds down
        (2, 1),  # 0.5 rounds up
        (6, 2),  # 1.5 rounds up
        (10, 3),  # 2.5 rounds up, not to even
    ],
)
def test_token_cost_rounds_half_up_once(prompt_tokens: int, credits: int) -> None:
    # gpt-5-mini input is 0.25 USD per million tokens: 0.25 credits a token.
    cost = BOOK.cost("standard", "gpt-5-mini", Metered(prompt_tokens=prompt_tokens), AT)
    assert cost == credits


@pytest.mark.parametrize(
    ("prompt_tokens", "credits"),
    [(4_999, 0), (5_000, 1), (14_999, 1), (15_000, 2), (25_000, 3)],
)
def test_fine_price_ties_round_up_and_just_below_rounds_down(
    two_versions: PriceBook, prompt_tokens: int, credits: int
) -> None:
    # 0.0001 USD per million tokens: 4,999 tokens are 0.4999 credits, 5,000 are 0.5.
    cost = two_versions.cost("standard", "tiny", Metered(prompt_tokens=prompt_tokens), AT)
    assert cost == credits


def test_rounding_happens_once_over_the_whole_record(two_versions: PriceBook) -> None:
    # Prompt 0.4 + completion 0.3 credits: rounding each part would give 0, the record 1.
    metered = Metered(prompt_tokens=4_000, completion_tokens=1_000)
    assert two_versions.cost("standard", "tiny", metered, AT) == 1
    assert two_versions.cost("standard", "tiny", Metered(prompt_tokens=4_000), AT) == 0
    assert two_versions.cost("standard", "tiny", Metered(completion_tokens=1_000), AT) == 0


@pytest.mark.parametrize(
    ("units", "credits"),
    [("1.2", 144), ("1", 72), ("1.000001", 144), ("0.000001", 72), ("0", 0), ("10", 720)],
)
def test_per_second_rounds_seconds_up(units: str, credits: int) -> None:
    model = "mistralai/Mistral-7B-Instruct-v0.3"  # 7B class: 0.000072 USD a second
    assert BOOK.cost("standard", model, Metered(units=units), AT) == credits


def test_per_second_uses_its_size_class_price() -> None:
    assert BOOK.cost("standard", "openai/gpt-oss-120b", Metered(units="2"), AT) == 720


@pytest.mark.parametrize(
    ("model", "units", "stored"),
    [
        ("8bit/tts", "90", 7_500_000),  # 5 credits a minute x 1.5 minutes
        ("8bit/tts", "60", 5_000_000),
        ("8bit/tts", "1", 83_333),  # 5 / 60 = 0.0833333...
        ("8bit/stt", "0.5", 25_000),  # 3 / 60 / 2
        ("8bit/stt", "0.000001", 0),  # 0.05 units rounds down
        ("8bit/stt", "0.00001", 1),  # 0.5 units rounds up
    ],
)
def test_per_minute_is_billed_per_second(model: str, units: str, stored: int) -> None:
    assert BOOK.cost("8bit-ai", model, Metered(units=units), AT) == stored


@pytest.mark.parametrize(
    ("model", "units", "stored"),
    [
        ("8bit/api", "0", 100_000),  # "0" (the default) is one request
        ("8bit/api", "1", 100_000),
        ("8bit/api", "3", 300_000),
        ("8bit/api", "0.5", 50_000),
        ("gpt-4", "2", 20_000_000),
        ("8bit/knowledge-base", "0", 1_000_000),
    ],
)
def test_per_unit_multiplies_the_count(model: str, units: str, stored: int) -> None:
    assert BOOK.cost("8bit-ai", model, Metered(units=units), AT) == stored


def test_per_unit_default_metered_is_one_request() -> None:
    assert BOOK.cost("8bit-ai", "8bit/api", Metered(), AT) == 100_000


def test_passthrough_adds_the_card_fee() -> None:
    metered = Metered(provider_cost=1_000_000)
    assert BOOK.cost("standard", "openai/sora-2", metered, AT) == 1_020_000
    # 25 credits x 1.02 = 25.5 -> 26: the fee is rounded once, half-up.
    assert BOOK.cost("standard", "openai/gpt-image-1", Metered(provider_cost=25), AT) == 26
    assert BOOK.cost("standard", "openai/gpt-image-1", Metered(provider_cost=0), AT) == 0


def test_passthrough_model_fee_overrides_the_card(two_versions: PriceBook) -> None:
    metered = Metered(provider_cost=1_000_000)
    assert two_versions.cost("standard", "pic", metered, AT) == 1_105_000
    assert two_versions.cost("standard", "card-fee", metered, AT) == 1_020_000


def test_passthrough_without_provider_cost_is_refused() -> None:
    with pytest.raises(PricingError, match="provider_cost"):
        BOOK.cost("standard", "elevenlabs/eleven-v3", Metered(), AT)


def test_max_cost() -> None:
    # 1000 * 3 + 2000 * 15 USD per million tokens.
    assert BOOK.max_cost("standard", "claude-sonnet-4-6", 1_000, 2_000, AT) == 33_000
    with pytest.raises(PricingError, match="not priced by tokens; give hold_usd"):
        BOOK.max_cost("8bit-ai", "8bit/api", 1_000, 1_000, AT)
    with pytest.raises(PricingError):
        BOOK.max_cost("standard", "claude-sonnet-4-6", -1, 0, AT)


# Bad input.


def test_unknown_model_names_model_and_card() -> None:
    with pytest.raises(UnknownModel, match="unknown model 'x' on rate card 'standard'") as info:
        BOOK.cost("standard", "x", Metered(), AT)
    assert (info.value.model, info.value.card) == ("x", "standard")
    assert isinstance(info.value, PricingError)
    # A model of another card is unknown on this one, and so is an unknown card.
    with pytest.raises(UnknownModel):
        BOOK.model("standard", "8bit/api", AT)
    with pytest.raises(UnknownModel):
        BOOK.model("premium", "claude-sonnet-4-6", AT)
    assert BOOK.knows("standard", "claude-sonnet-4-6", AT)
    assert not BOOK.knows("standard", "x", AT)
    assert not BOOK.knows("premium", "claude-sonnet-4-6", AT)


@pytest.mark.parametrize(
    "metered",
    [
        {"prompt_tokens": -1},
        {"completion_tokens": -5},
        {"provider_cost": -1},
        {"prompt_tokens": True},
    ],
)
def test_negative_or_non_integer_counts_are_refused(metered: dict[str, object]) -> None:
    with pytest.raises(PricingError, match="non-negative integer"):
        Metered(**metered)  # type: ignore[arg-type]


def test_negative_tokens_are_refused_before_costing() -> None:
    with pytest.raises(PricingError):
        BOOK.cost("standard", "claude-sonnet-4-6", Metered(prompt_tokens=-1), AT)


@pytest.mark.parametrize(
    "units", ["1e3", "abc", "-1", "0.0000001", "NaN", "inf", "", "1_000", "0x10"]
)
def test_bad_units_are_refused(units: str) -> None:
    with pytest.raises(PricingError, match="units must be"):
        Metered(units=units)


def test_units_must_be_a_string() -> None:
    with pytest.raises(PricingError, match="units must be"):
        Metered(units=3)  # type: ignore[arg-type]


def test_naive_time_is_refused() -> None:
    with pytest.raises(PricingError, match="naive"):
        BOOK.model("standard", "claude-sonnet-4-6", datetime(2026, 3, 1))


# Groups and actions.


def test_group_serves() -> None:
    assert BOOK.group_serves("claude-default", "standard", "claude-sonnet-4-6", AT)
    assert BOOK.group_serves("claude-default", "8bit-ai", "claude", AT)
    assert not BOOK.group_serves("claude-default", "standard", "gpt-5-5", AT)
    assert BOOK.group_serves("open-default", "standard", "meta-llama/Llama-3-70b", AT)
    assert not BOOK.group_serves("open-default", "standard", "deepseek-v4-pro", AT)
    for card in BOOK.cards:
        for model in ("claude-sonnet-4-6", "gpt-5-5", "8bit/api", "openai/sora-2"):
            if BOOK.knows(card, model, AT):
                assert BOOK.group_serves("default", card, model, AT)
                assert not BOOK.group_serves("no-such-group", card, model, AT)
    assert not BOOK.group_serves("default", "standard", "no-such-model", AT)


def test_actions() -> None:
    assert BOOK.is_critical("api_request")
    assert not BOOK.is_critical("llm_inference")
    assert not BOOK.is_critical("no_such_action")
    assert BOOK.actions == {
        "llm_inference",
        "text_to_speech",
        "speech_to_text",
        "knowledge_base_query",
        "api_request",
        "image",
        "video",
    }


# Versions.


@pytest.mark.parametrize(
    ("at", "input_per_mtok"),
    [
        (datetime(2025, 12, 31, 23, 59, tzinfo=UTC), 100),  # before the first: the first
        (datetime(2026, 1, 1, tzinfo=UTC), 100),
        (datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC), 100),
        (datetime(2026, 6, 1, tzinfo=UTC), 200),
        (datetime(2030, 1, 1, tzinfo=UTC), 200),
        # 01:00 in UTC+2 is still 31 May in UTC.
        (datetime(2026, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))), 100),
        # 20:00 on 31 May in UTC-5 is already 1 June in UTC.
        (datetime(2026, 5, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))), 200),
    ],
)
def test_version_in_force_is_chosen_by_utc_date(
    two_versions: PriceBook, at: datetime, input_per_mtok: int
) -> None:
    assert two_versions.model("standard", "tiny", at).input_per_mtok == input_per_mtok


def test_newer_version_prices_change_the_cost(two_versions: PriceBook) -> None:
    # Old prices: 1 + 0.3 credits -> 1. New prices: 2 + 0.6 credits -> 3.
    metered = Metered(prompt_tokens=10_000, completion_tokens=1_000)
    february, july = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    assert two_versions.cost("standard", "tiny", metered, february) == 1
    assert two_versions.cost("standard", "tiny", metered, july) == 3


def test_models_dropped_in_a_newer_version_are_unknown_there(two_versions: PriceBook) -> None:
    assert two_versions.knows("standard", "small", datetime(2026, 2, 1, tzinfo=UTC))
    assert not two_versions.knows("standard", "small", datetime(2026, 7, 1, tzinfo=UTC))


# Bad files.


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('input_per_mtok = "0.0001"', "input_per_mtok = 0.0001", "float"),
        ('fee_percent = "2"', "fee_percent = 2.0", "float"),
        ('output_per_mtok = "0.0003" }', "output_per_mtok = 3 }", "decimal strings"),
        ('"0.0001"', '"0.0000001"', "more than 6 decimal places"),
        ('7B = "0.000072"', '7B = "-0.000072"', "negative"),
        ('mode = "per_second"', 'mode = "per_hour"', "unknown mode 'per_hour'"),
        ("params_b = 7", "params_b = 8", "8 is above size class 7B"),
        ('size_class = "7B"', 'size_class = "8B"', "unknown size class '8B'"),
        ('7B = "0.000072"', 'seven = "0.000072"', "names look like"),
        ('["test"]', '["nobody"]', "no model has family 'nobody'"),
        ('{ families = ["test"] }', "{ families = [] }", "non-empty list"),
        ("{ all = true }", "{ all = false }", "must be true"),
        ("2026-06-01", "2025-06-01", "sorted"),
        ("2026-06-01", "2026-01-01", "without duplicates"),
        ("2026-06-01", "2026-06-01T00:00:00", "must be a date"),
        ('action = "image"', 'action = "painting"', "unknown action 'painting'"),
        ('unit = "usd"\nfee', 'unit = "eur"\nfee', "unit: must be one of"),
        ('unit = "usd"\nfee', 'unit = "credit"\nfee', "passthrough needs a card"),
        (
            'unit = "usd"\n\n[versions.cards.standard.models]',
            'unit = "credit"\n\n[versions.cards.standard.models]',
            "cannot change its unit",
        ),
        ('fee_percent = "2"\n', "", "passthrough needs fee_percent"),
        (', output_per_mtok = "0.0003"', "", "missing output_per_mtok"),
        ("params_b = 7 }", "params_b = 7, speed = 1 }", "unknown field speed"),
        ("params_b = 7 }", 'params_b = 7, model_class = "huge" }', "model_class: one of"),
        ("critical = true", "critical = 1", "true or false"),
        ("[groups]", "[[groups]]", "must be a table"),
        (
            "[[versions]]\neffective_from = 2026-01-01",
            "[x]\ny = 1\n[[versions]]",
            "unknown field x",
        ),
    ],
)
def test_bad_file_is_refused_at_load(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in TWO_VERSIONS
    with pytest.raises(PricingError, match=message) as info:
        write_book(tmp_path, TWO_VERSIONS.replace(old, new, 1))
    assert str(tmp_path / "pricebook.toml") in str(info.value)


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="not valid TOML"):
        write_book(tmp_path, TWO_VERSIONS + "\n[[")


def test_a_file_without_versions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="missing versions"):
        write_book(tmp_path, "[actions]\n[groups]\n")
    with pytest.raises(PricingError, match="non-empty array"):
        write_book(tmp_path, "versions = []\n[actions]\n[groups]\n")


# The invariant, against prices read independently from the file.

_RAW = tomllib.loads(PACKAGED.read_text(encoding="utf-8"))
_TOKEN_MODELS = {
    name: (Fraction(row["input_per_mtok"]), Fraction(row["output_per_mtok"]))
    for name, row in _RAW["versions"][0]["cards"]["standard"]["models"].items()
    if row["mode"] == "tokens"
}
_COUNTS = st.integers(min_value=0, max_value=10**10)


@given(
    model=st.sampled_from(sorted(_TOKEN_MODELS)),
    prompt=_COUNTS,
    completion=_COUNTS,
    more_prompt=st.integers(min_value=0, max_value=10**6),
    more_completion=st.integers(min_value=0, max_value=10**6),
)
def test_token_cost_is_exact_and_monotonic(
    model: str, prompt: int, completion: int, more_prompt: int, more_completion: int
) -> None:
    cost = BOOK.cost("standard", model, Metered(prompt, completion), AT)
    price = BOOK.model("standard", model, AT)
    numerator = prompt * price.input_per_mtok + completion * price.output_per_mtok
    assert cost == div_round_half_up(numerator, 1_000_000)
    # USD per million tokens x tokens / 1e6 x 1e6 credits per USD = credits, exactly.
    usd_in, usd_out = _TOKEN_MODELS[model]
    assert cost == floor(prompt * usd_in + completion * usd_out + Fraction(1, 2))
    bigger = Metered(prompt + more_prompt, completion + more_completion)
    assert BOOK.cost("standard", model, bigger, AT) >= cost

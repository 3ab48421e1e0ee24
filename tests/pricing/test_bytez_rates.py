"""Bytez's rate card: closed models bill the provider's price plus 2%, in every mode;
open models bill per whole second, by size class or by VRAM at $0.0000045/GB-second."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from math import ceil, floor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.money import parse_usd
from app.operations import create_organization
from app.pricing.book import Metered, PriceBook, PricingError
from tests.conftest import Harness, usage_event

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BOOK = PriceBook.load()
CLOSED = ("claude-sonnet-4-6", "gpt-5-5", "gemini-3-flash", "mistral-large", "command-r-plus")


def half_up(value: Fraction) -> int:
    return floor(value + Fraction(1, 2))


@pytest.mark.parametrize("model", CLOSED)
@given(prompt=st.integers(0, 10**9), completion=st.integers(0, 10**9))
def test_closed_models_bill_the_provider_token_price_plus_two_percent(
    model: str, prompt: int, completion: int
) -> None:
    provider = BOOK.model("bytez", model, AT)
    exact = Fraction(
        prompt * provider.input_per_mtok + completion * provider.output_per_mtok, 10**6
    )
    # One rounding of price x 1.02, never the price and the fee rounded apart.
    assert BOOK.cost("bytez", model, Metered(prompt, completion), AT) == half_up(
        exact * Fraction(102, 100)
    )


def test_the_fee_applies_per_image_and_per_second_of_video_too() -> None:
    assert BOOK.cost("bytez", "openai/gpt-image-1", Metered(units="3"), AT) == 122_400
    assert BOOK.cost("bytez", "openai/sora-2", Metered(units="4"), AT) == 408_000
    assert BOOK.cost("bytez", "openai/gpt-realtime", Metered(provider_cost=50), AT) == 51


def test_open_models_and_other_cards_bill_no_fee() -> None:
    assert BOOK.cost("bytez", "meta-llama/Llama-3-70b", Metered(units="1"), AT) == 216
    assert BOOK.cost("standard", "claude-sonnet-4-6", Metered(1000, 500), AT) == 10_500


@given(millis=st.integers(0, 10**9))
def test_open_models_bill_whole_seconds_rounded_up(millis: int) -> None:
    seconds = f"{millis // 1000}.{millis % 1000:03d}"
    billed = BOOK.cost("bytez", "Qwen/Qwen2.5-32B-Instruct", Metered(units=seconds), AT)
    assert billed == ceil(Fraction(millis, 1000)) * 144


def test_the_size_table_is_the_vram_rate() -> None:
    rate = Fraction(45, 10)  # $0.0000045 per GB-second, in credits
    table = {"7B": 16, "15B": 24, "35B": 32, "70B": 48, "120B": 80}
    models = {
        "7B": "mistralai/Mistral-7B-Instruct-v0.3",
        "15B": "Qwen/Qwen2.5-14B-Instruct",
        "35B": "Qwen/Qwen2.5-32B-Instruct",
        "70B": "meta-llama/Llama-3-70b",
        "120B": "openai/gpt-oss-120b",
    }
    for size, gb in table.items():
        assert BOOK.cost("bytez", models[size], Metered(units="1"), AT) == gb * rate


def test_an_open_model_takes_concurrency_in_7b_slots_by_its_vram() -> None:
    """A call takes its VRAM over the 7B class's 16 GB, rounded up: "Concurrent Requests (7B)"."""
    slots = {
        "mistralai/Mistral-7B-Instruct-v0.3": 1,  # 16 GB
        "Qwen/Qwen2.5-14B-Instruct": 2,  # 24 GB
        "Qwen/Qwen2.5-32B-Instruct": 2,  # 32 GB
        "meta-llama/Llama-3-70b": 3,  # 48 GB
        "openai/gpt-oss-120b": 5,  # 80 GB
        "google/gemma-2-9b-it": 2,  # 21 GB
        "claude-sonnet-4-6": 0,  # closed: concurrency does not count it
    }
    assert {model: BOOK.model("bytez", model, AT).slots for model in slots} == slots


@given(seconds=st.integers(0, 10**7))
def test_a_model_without_a_size_class_is_priced_by_its_vram(seconds: int) -> None:
    # 21 GB x 4.5 credits = 94.5 credits a second, rounded once per record.
    billed = BOOK.cost("bytez", "google/gemma-2-9b-it", Metered(units=str(seconds)), AT)
    assert billed == half_up(Fraction(945, 10) * seconds)


BAD_CARD = """
[actions]
llm_inference = {{ critical = false }}
[groups]
default = {{ all = true }}
[[versions]]
effective_from = 2026-01-01
[versions.cards.c]
unit = "usd"
{card}
[versions.cards.c.models]
m = {{ family = "open", action = "llm_inference", mode = "per_second", params_b = 9, {row} }}
"""


@pytest.mark.parametrize(
    ("card", "row", "error"),
    [
        ("", "vram_gb = 21", "needs vram_usd_per_gb_second"),
        ('vram_usd_per_gb_second = "0.0000000000001"', "vram_gb = 1", "12 decimals"),
        ('vram_usd_per_gb_second = "1"', 'vram_gb = 1, size_class = "7B"', "either"),
        ('vram_usd_per_gb_second = "1"', "vram_gb = 0", "positive integer"),
        ('fee_families = ["open"]', "vram_gb = 1", "needs fee_percent"),
    ],
)
def test_bad_vram_and_fee_rows_are_refused(tmp_path: Path, card: str, row: str, error: str) -> None:
    path = tmp_path / "book.toml"
    path.write_text(BAD_CARD.format(card=card, row=row), encoding="utf-8")
    with pytest.raises(PricingError, match=error):
        PriceBook.load(path)


async def test_a_bytez_org_is_billed_the_fee_through_the_usage_api(harness: Harness) -> None:
    org = await create_organization(
        harness.runtime, slug="bytez", grant=parse_usd("10"), rate_card="bytez"
    )
    key = await harness.key(org)
    closed, open_model, image = await harness.usage(
        org,
        usage_event(key.id, "r1"),  # claude-sonnet-4-6, 1000 + 200 tokens: $0.006
        usage_event(key.id, "r2", model="google/gemma-2-9b-it", units="2.01"),
        usage_event(key.id, "r3", model="openai/gpt-image-1", units="1"),
    )
    assert closed["cost"] == {"credits": "6120", "usd": "0.006120"}
    assert open_model["cost"]["credits"] == "284"  # 3 s x 94.5 = 283.5, half-up
    assert image["cost"]["credits"] == "40800"

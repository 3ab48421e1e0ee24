"""Exact USD <-> credits conversion and the one rounding rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.money import (
    MAX_CREDITS,
    MoneyError,
    div_round_half_up,
    format_usd,
    format_usd_short,
    parse_usd,
)


@pytest.mark.parametrize(
    ("text", "credits"),
    [
        ("99.99", 99_990_000),
        ("0.000001", 1),
        ("1250", 1_250_000_000),
        (" 5.5 ", 5_500_000),
        ("2147.48", 2_147_480_000),
        ("0", 0),
        (3, 3_000_000),
    ],
)
def test_parse_usd_is_exact(text: str | int, credits: int) -> None:
    assert parse_usd(text) == credits


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.0000001", "more than 6 decimal places"),
        ("1e3", "not a decimal number"),
        ("abc", "not a decimal number"),
        ("", "not a decimal number"),
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("-1", "must not be negative"),
        (1.5, "must be a decimal string"),
        (True, "must be a decimal string"),
        (None, "must be a decimal string"),
        ("9223372036855", "out of range"),
    ],
)
def test_parse_usd_refuses(value: object, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        parse_usd(value)


def test_negative_and_zero_only_when_allowed() -> None:
    assert parse_usd("-2.5", allow_negative=True) == -2_500_000
    with pytest.raises(MoneyError, match="greater than zero"):
        parse_usd("0.000000", allow_zero=False)


def test_format_usd() -> None:
    assert format_usd(1_500_000) == "1.500000"
    assert format_usd(-1) == "-0.000001"
    assert format_usd(MAX_CREDITS) == "9223372036854.775807"
    assert format_usd_short(50_000_000) == "50.00"
    assert format_usd_short(42_189_999) == "42.18"  # down: never money that is not there
    assert format_usd_short(10_000) == "0.01"
    assert format_usd_short(4_500) == "0.0045"  # under a cent: exact, never "0.00"
    assert format_usd_short(1) == "0.000001"
    assert format_usd_short(0) == "0.00"
    assert format_usd_short(-5_000) == "-0.01"


def test_half_up_rounding() -> None:
    assert div_round_half_up(5, 2) == 3
    assert div_round_half_up(7, 2) == 4
    assert div_round_half_up(14_999, 10_000) == 1
    assert div_round_half_up(15_000, 10_000) == 2
    assert div_round_half_up(-5, 2) == -3
    with pytest.raises(ValueError, match="positive"):
        div_round_half_up(1, 0)


@given(st.integers(min_value=-MAX_CREDITS, max_value=MAX_CREDITS))
def test_format_then_parse_round_trips(credits: int) -> None:
    assert parse_usd(format_usd(credits), allow_negative=True) == credits


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=1, max_value=10**9))
def test_half_up_matches_decimal(numerator: int, denominator: int) -> None:
    expected = (Decimal(numerator) / Decimal(denominator)).quantize(
        Decimal(1), rounding="ROUND_HALF_UP"
    )
    assert div_round_half_up(numerator, denominator) == int(expected)


@given(st.text(alphabet="0123456789", min_size=1, max_size=25))
def test_whole_dollars_parse_as_decimals_do(text: str) -> None:
    """Digit strings take a shortcut; it must agree with the decimal path, range included."""
    expected = int(Decimal(text).scaleb(6))
    if expected > MAX_CREDITS:
        with pytest.raises(MoneyError, match="out of range"):
            parse_usd(text)
    else:
        assert parse_usd(text) == expected

"""The money scalars: exact amounts as JSON strings, never GraphQL's 32-bit Int."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NewType

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition

from app.money import MAX_CREDITS

_INTEGER = re.compile(r"-?[0-9]{1,19}")
_DECIMAL = re.compile(r"-?[0-9]{1,16}(\.[0-9]{1,18})?")
# The parsers raise GraphQLError, not ValueError: graphql-core reports a GraphQLError as
# the client's mistake wherever the value is written, where a ValueError in an inline
# literal would reach the client as a masked internal error.


def _integer(name: str) -> Callable[[object], int]:
    """The parser of a 64-bit integer scalar sent as a JSON string."""

    def parse(value: object) -> int:
        if not isinstance(value, str) or not _INTEGER.fullmatch(value):
            raise GraphQLError(f'{name} must be a string of an integer, such as "2500000"')
        number = int(value)
        if abs(number) > MAX_CREDITS:
            raise GraphQLError(f"{name} is out of range")
        return number

    return parse


def _parse_decimal(value: object) -> str:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise GraphQLError('Decimal must be a string of a decimal number, such as "99.99"')
    return value


Credits = NewType("Credits", int)
Decimal = NewType("Decimal", str)
BigInt = NewType("BigInt", int)

SCALARS: dict[object, ScalarDefinition] = {
    Credits: strawberry.scalar(
        name="Credits",
        description=(
            "A whole number of credits (1 USD = 1,000,000 credits), as a JSON string so that "
            'amounts past 32 bits stay exact: "2500000" is 2.50 USD.'
        ),
        serialize=str,
        parse_value=_integer("Credits"),
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "A 64-bit integer that is not money (a version, a count that can pass 32 bits), "
            'as a JSON string: "4294967296".'
        ),
        serialize=str,
        parse_value=_integer("BigInt"),
    ),
    Decimal: strawberry.scalar(
        name="Decimal",
        description=(
            'An exact decimal number as a JSON string, such as "99.99". USD amounts take at '
            "most 6 decimals (one credit); floats are never used."
        ),
        serialize=str,
        parse_value=_parse_decimal,
    ),
}

"""Checks for fields of JSON bodies, shared by every JSON edge (REST and GraphQL inputs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# The largest integer a JSON client (JavaScript) reads exactly.
MAX_JSON_INT = 2**53 - 1
# The longest text field (names, ids, models) a JSON body may give.
MAX_TEXT = 200


class FieldError(ValueError):
    """A field that is missing or malformed; the message names it."""


def digits(value: str) -> bool:
    """Whether ``value`` is ASCII digits, which ``int`` reads: ``str.isdigit`` is true of
    "²" too, which ``int`` refuses."""
    return value.isascii() and value.isdigit()


def utc(at: datetime) -> datetime | None:
    """``at`` in UTC; None when it has no zone, or its zone moves it past what a datetime
    holds (``0001-01-01T00:00:00+01:00`` is in year 0 in UTC)."""
    if at.tzinfo is None:
        return None
    try:
        return at.astimezone(UTC)
    except OverflowError:
        return None


def has_nul(value: object) -> bool:
    """Whether a JSON value holds U+0000 in a string or a key, at any depth. PostgreSQL's
    text cannot store it, so the edges refuse it as a 400 before the database would
    refuse it as a 5xx. (A loop, not recursion: JSON nests deeper than Python recurses.)"""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def text(raw: dict[str, Any], name: str, *, max_length: int = MAX_TEXT) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise FieldError(f"{name}: must be a string of 1 to {max_length} characters")
    return value


def count(raw: dict[str, Any], name: str) -> int:
    """A non-negative integer; 0 when absent or null."""
    value = raw.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_JSON_INT:
        raise FieldError(f"{name}: must be a non-negative integer")
    return value

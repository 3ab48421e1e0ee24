"""Checks for fields of JSON bodies, shared by every JSON edge (REST and GraphQL inputs)."""

from __future__ import annotations

from typing import Any

# The largest integer a JSON client (JavaScript) reads exactly.
MAX_JSON_INT = 2**53 - 1
# The longest text field (names, ids, models) a JSON body may give.
MAX_TEXT = 200


class FieldError(ValueError):
    """A field that is missing or malformed; the message names it."""


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

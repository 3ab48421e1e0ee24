"""Opaque global IDs (Relay): base64 of ``<Type>:<id>``, the same on REST and GraphQL."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from app.fields import digits


def to_global_id(type_name: str, id_: int) -> str:
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


def parse_global_id(value: object) -> tuple[str, int] | None:
    """The type name and database id inside a global id, or None if it is not one."""
    if not isinstance(value, str) or len(value) > 100:
        return None
    return _parse(value)


@lru_cache(maxsize=4096)
def _parse(value: str) -> tuple[str, int] | None:
    # Kept: a gateway sends the same few key ids with every event.
    if not value.isascii():  # base64 is; b64decode raises for anything else
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    kind, _, raw = decoded.partition(":")
    if not digits(raw) or len(raw) > 18:
        return None
    return kind, int(raw)


def from_global_id(value: object, type_name: str) -> int | None:
    """The database id inside ``value`` if it is a global id of ``type_name``, else None."""
    parsed = parse_global_id(value)
    return parsed[1] if parsed is not None and parsed[0] == type_name else None

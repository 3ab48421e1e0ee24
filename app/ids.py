"""Opaque global IDs (Relay): base64 of ``<Type>:<id>``, the same on REST and GraphQL."""

from __future__ import annotations

import base64
import binascii


def to_global_id(type_name: str, id_: int) -> str:
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


def from_global_id(value: object, type_name: str) -> int | None:
    """The database id inside ``value`` if it is a global id of ``type_name``, else None."""
    if not isinstance(value, str) or len(value) > 100:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    kind, _, raw = decoded.partition(":")
    if kind != type_name or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)

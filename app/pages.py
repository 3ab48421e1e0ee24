"""Keyset pagination, newest first on (time, id): the one rule for REST and GraphQL lists.

Cursors are opaque (base64 of the last row's time and id); a page never skips or
repeats a row when rows are added meanwhile, which offsets cannot promise.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.engine import Connection

MAX_PAGE = 100


class CursorError(ValueError):
    """A cursor this API did not return."""


def encode_cursor(at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(raw: str) -> tuple[datetime, int]:
    try:
        at, _, row_id = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        return datetime.fromisoformat(at), int(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("not a cursor this API returned") from None


def count(conn: Connection, statement: Select[Any]) -> int:
    """How many rows ``statement`` gives: a list's ``totalCount``."""
    total = conn.scalar(select(func.count()).select_from(statement.subquery()))
    return int(total or 0)


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    has_next: bool


def newest_first(
    conn: Connection,
    statement: Select[Any],
    time_column: Any,
    id_column: Any,
    limit: int,
    after: str | None,
) -> Page:
    """Up to ``limit`` rows of ``statement`` after the ``after`` cursor, newest first."""
    if after is not None:
        at, row_id = decode_cursor(after)
        statement = statement.where(
            or_(time_column < at, and_(time_column == at, id_column < row_id))
        )
    statement = first_page(statement, time_column, id_column, limit)
    return page_of(list(conn.execute(statement).all()), limit)


def first_page(statement: Select[Any], time_column: Any, id_column: Any, limit: int) -> Select[Any]:
    """``statement`` ordered newest first, with one row past ``limit`` (``page_of``)."""
    return statement.order_by(time_column.desc(), id_column.desc()).limit(limit + 1)


def page_of(rows: list[Any], limit: int) -> Page:
    """The page of ``rows`` read by a ``first_page`` statement."""
    return Page(rows[:limit], len(rows) > limit)

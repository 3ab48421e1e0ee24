"""Keyset pagination, newest first: the one rule for REST and GraphQL lists.

Cursors are opaque (base64 of the last row's position: its time and id, or its version
in a wallet's ledger); a page never skips or repeats a row when rows are added
meanwhile, which offsets cannot promise.
"""

from __future__ import annotations

import base64
import binascii
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, func, or_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from app.db import Prebuilt
from app.fields import utc

MAX_PAGE = 100


class CursorError(ValueError):
    """A cursor this API did not return."""


def encode_cursor(position: tuple[Any, ...]) -> str:
    text = "|".join(v.isoformat() if isinstance(v, datetime) else str(v) for v in position)
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(raw: str, kinds: tuple[type, ...]) -> tuple[Any, ...]:
    """The position ``encode_cursor`` gave, each part of its column's Python type."""
    try:
        parts = base64.urlsafe_b64decode(raw.encode()).decode().split("|")
        if len(parts) != len(kinds):
            raise ValueError(raw)
        return tuple(_part(part, kind) for part, kind in zip(parts, kinds, strict=True))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("not a cursor this API returned") from None


def _part(part: str, kind: type) -> Any:
    """A cursor's time (with its zone, as encoded) or id (a 64-bit column's); ValueError
    for anything else, which the database would refuse as a 5xx."""
    if kind is datetime:
        at = utc(datetime.fromisoformat(part))
        if at is None:
            raise ValueError(part)
        return at
    value = int(part)
    if not -(2**63) <= value < 2**63:
        raise ValueError(part)
    return value


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    has_next: bool


def first_page(statement: Select[Any], time_column: Any, id_column: Any, limit: int) -> Select[Any]:
    """``statement`` ordered newest first, with one row past ``limit`` (``page_of``)."""
    return statement.order_by(time_column.desc(), id_column.desc()).limit(limit + 1)


def page_of(rows: list[Any], limit: int) -> Page:
    """The page of ``rows`` read by a ``first_page`` statement."""
    return Page(rows[:limit], len(rows) > limit)


# A filter of a ``Keyset``: its column and how a value compares with it.
Filter = tuple[Any, Callable[[Any, Any], ColumnElement[bool]]]


def equal(column: Any) -> Filter:
    return column, operator.eq


def at_or_after(column: Any) -> Filter:
    return column, operator.ge


def before(column: Any) -> Filter:
    return column, operator.lt


class Keyset:
    """A list in pages newest first, from statements built once per shape.

    Rows are ordered by ``order``, descending: a time and a unique id, or one unique
    column. A shape is which of the list's filters a request sets and whether it starts
    after a cursor. Each shape's page and count statements are built the first time it
    is asked for (``Prebuilt``) and then run at the driver: a request only binds its
    values, where building the statement again cost more than SQLite takes to run it.
    """

    def __init__(
        self,
        base: Callable[[], Select[Any]],
        order: tuple[Any, ...],
        filters: Mapping[str, Filter],
    ) -> None:
        self._base, self._order, self._filters = base, order, filters
        self._kinds = tuple(column.type.python_type for column in order)
        self._pages: dict[tuple[tuple[str, ...], bool], Prebuilt[Select[Any]]] = {}
        self._counts: dict[tuple[str, ...], Prebuilt[Select[Any]]] = {}

    def cursor(self, row: Any) -> str:
        """The cursor a page starts after to follow ``row``."""
        return encode_cursor(tuple(getattr(row, column.key) for column in self._order))

    def page(
        self, conn: Connection, values: Mapping[str, Any], limit: int, after: str | None
    ) -> Page:
        """Up to ``limit`` rows matching ``values`` (a filter's name to its value; None:
        not filtered by it), newest first, after the ``after`` cursor."""
        shape, params = self._bound(values)
        params["limit"] = limit + 1
        if after is not None:
            for i, value in enumerate(decode_cursor(after, self._kinds)):
                params[f"after_{i}"] = value
        statement = self._pages.get((shape, after is not None))
        if statement is None:
            statement = self._pages[shape, after is not None] = Prebuilt(
                lambda _dialect, _lock: self._page_statement(shape, after is not None)
            )
        return page_of(statement.rows(conn, params), limit)

    def count(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """How many rows match ``values``: a list's ``totalCount``."""
        shape, params = self._bound(values)
        statement = self._counts.get(shape)
        if statement is None:
            statement = self._counts[shape] = Prebuilt(
                lambda _dialect, _lock: self._where(shape).with_only_columns(
                    func.count(), maintain_column_froms=True
                )
            )
        return int(statement.first(conn, params)[0])

    def _bound(self, values: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        params = {name: value for name, value in values.items() if value is not None}
        return tuple(name for name in self._filters if name in params), params

    def _where(self, shape: tuple[str, ...]) -> Select[Any]:
        statement = self._base()
        for name in shape:
            column, compare = self._filters[name]
            statement = statement.where(compare(column, bindparam(name, type_=column.type)))
        return statement

    def _page_statement(self, shape: tuple[str, ...], after: bool) -> Select[Any]:
        statement = self._where(shape)
        if after:
            cut = [bindparam(f"after_{i}", type_=c.type) for i, c in enumerate(self._order)]
            # Past the cursor's position: (a, b) < (x, y), written out for every engine.
            past = self._order[-1] < cut[-1]
            for column, value in zip(self._order[-2::-1], cut[-2::-1], strict=True):
                past = or_(column < value, and_(column == value, past))
            statement = statement.where(past)
        return statement.order_by(*(column.desc() for column in self._order)).limit(
            bindparam("limit", type_=Integer)
        )

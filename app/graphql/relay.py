"""Relay conventions: the ``Node`` interface and keyset cursor connections."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from graphql import FieldNode
from sqlalchemy.engine import Connection as DBConnection

from app.graphql.context import Info
from app.graphql.errors import Code, error
from app.pages import MAX_PAGE, CursorError, Keyset, Page

N = TypeVar("N")


# The arguments of every list: a page size and the cursor to start after.
First = Annotated[int, strawberry.argument(description="Items per page: 1 to 100.")]
After = Annotated[
    str | None,
    strawberry.argument(description="The endCursor of the page before; null for the first page."),
]


@strawberry.interface(description="An object with an opaque global ID, fetchable by node(id:).")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global ID; stable across APIs.")


@strawberry.type(description="Where a page sits in its list.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether a later page exists.")
    has_previous_page: bool = strawberry.field(
        description="Always false: pages go forward from `after`."
    )
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge.")
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last edge: pass it as `after` for the next page."
    )


@strawberry.type(description="One item of a page and its cursor.")
class Edge(Generic[N]):
    cursor: str = strawberry.field(description="Opaque; pass as `after` to start after it.")
    node: N = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list, newest first, with keyset cursors.")
class Connection(Generic[N]):
    edges: list[Edge[N]] = strawberry.field(description="This page's items, newest first.")
    page_info: PageInfo = strawberry.field(description="Whether more follows, and from where.")
    total_count: int = strawberry.field(description="Items in the whole list, all pages.")


def require_zones(**times: datetime | None) -> None:
    """A list filter's times, by field name, each with a time zone (or not given)."""
    for name, at in times.items():
        if at is not None and at.tzinfo is None:
            raise error(Code.BAD_USER_INPUT, f"filter.{name}: give a time zone (such as Z)")


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise error(Code.BAD_USER_INPUT, f"first: must be from 1 to {MAX_PAGE}")
    return first


async def page_connection(
    info: Info,
    keyset: Keyset,
    values: Mapping[str, Any],
    first: int,
    after: str | None,
    nodes: Callable[[DBConnection, list[Any]], list[N]],
    counter: Callable[[DBConnection], int] | None = None,
) -> Connection[N]:
    """One page of ``keyset`` matching ``values`` as a connection, read in one transaction
    with its ``nodes`` (the page's rows as objects, with what they show beside them) and
    the whole list's count (by ``counter`` when given, one that need not read the list)."""
    limit = page_size(first)  # refused before any read
    counted = selects(info, "totalCount")
    # Fields that are not selected are never sent, so what they hold cannot reach a
    # client: the total is counted, and each edge's cursor made, only when asked for.
    cursor = keyset.cursor if selects(info, "edges", "cursor") else None

    def work(conn: DBConnection) -> tuple[Page, list[N], int]:
        page = keyset.page(conn, values, limit, after)
        total = 0
        if counted:
            total = counter(conn) if counter is not None else keyset.count(conn, values)
        return page, nodes(conn, page.rows), total

    try:
        page, items, total = await info.context.runtime.db.read(work)
    except CursorError as exc:
        raise error(Code.BAD_USER_INPUT, f"after: {exc}") from None
    return connection(page, items, total, keyset.cursor, cursor)


def each(node: Callable[[Any], N]) -> Callable[[DBConnection, list[Any]], list[N]]:
    """``nodes`` of ``page_connection`` that need nothing but their row."""
    return lambda _conn, rows: [node(row) for row in rows]


def selects(info: Info, *path: str) -> bool:
    """Whether the field being resolved selects the field at ``path`` (under any alias);
    assumed so behind a fragment, which this check does not follow."""
    # graphql-core's nodes: Strawberry's ``info.selected_fields`` converts the whole
    # subtree on each call, a cost WalletOverview paid on every request.
    nodes: list[Any] = list(info._raw_info.field_nodes)
    for name in path:
        found = []
        for node in nodes:
            for selection in node.selection_set.selections if node.selection_set else ():
                if not isinstance(selection, FieldNode):
                    return True
                if selection.name.value == name:
                    found.append(selection)
        if not found:
            return False
        nodes = found
    return True


def connection(
    page: Page,
    nodes: list[N],
    total: int,
    cursor: Callable[[Any], str],
    edge_cursor: Callable[[Any], str] | None,
) -> Connection[N]:
    """A connection of ``nodes``, one per row of ``page``; ``cursor`` gives a row's, for
    the page's ends and, unless ``edge_cursor`` is None (not selected), every edge."""
    rows = page.rows
    edges = [
        Edge(cursor=edge_cursor(row) if edge_cursor else "", node=node)
        for row, node in zip(rows, nodes, strict=True)
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=False,
            start_cursor=cursor(rows[0]) if rows else None,
            end_cursor=cursor(rows[-1]) if rows else None,
        ),
        total_count=total,
    )

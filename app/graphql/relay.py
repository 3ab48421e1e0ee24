"""Relay conventions: the ``Node`` interface and keyset cursor connections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from graphql import FieldNode
from sqlalchemy.engine import Connection as DBConnection

from app.graphql.context import Info
from app.graphql.errors import Code, error
from app.pages import MAX_PAGE, CursorError, Page, count, encode_cursor, newest_first

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


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise error(Code.BAD_USER_INPUT, f"first: must be from 1 to {MAX_PAGE}")
    return first


async def load_page(
    info: Info,
    statement: Any,
    time_column: Any,
    id_column: Any,
    first: int,
    after: str | None,
    counter: Callable[[DBConnection], int] | None = None,
) -> tuple[Page, int]:
    """One page of ``statement`` newest first (``pages``), and the whole list's count
    (by ``counter`` when given, one that need not read the whole list)."""

    limit = page_size(first)  # refused before any read
    counted = selects(info, "totalCount")

    def work(conn: DBConnection) -> tuple[Page, int]:
        page = newest_first(conn, statement, time_column, id_column, limit, after)
        # Counting scans the whole list: only when the query selects totalCount (a field
        # that is not selected is never sent, so the 0 cannot reach a client).
        if not counted:
            return page, 0
        return page, counter(conn) if counter is not None else count(conn, statement)

    try:
        return await info.context.runtime.db.read(work)
    except CursorError as exc:
        raise error(Code.BAD_USER_INPUT, f"after: {exc}") from None


def selects(info: Info, name: str) -> bool:
    """Whether the field being resolved selects field ``name`` (under any alias); assumed
    so behind a fragment, which this check does not follow."""
    # graphql-core's nodes: Strawberry's ``info.selected_fields`` converts the whole
    # subtree on each call, a cost WalletOverview paid on every request.
    for node in info._raw_info.field_nodes:
        for selection in node.selection_set.selections if node.selection_set else ():
            if not isinstance(selection, FieldNode) or selection.name.value == name:
                return True
    return False


def connection(page: Page, total: int, node: Callable[[Any], N]) -> Connection[N]:
    """A connection over rows with ``created_at`` and ``id``, as ``pages.newest_first`` gives."""
    edges = [
        Edge(cursor=encode_cursor(row.created_at, row.id), node=node(row)) for row in page.rows
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )

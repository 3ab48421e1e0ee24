"""``node(id:)``: any object by its global ID, only within the caller's organization.

An ID of another organization's object, an unknown type or a malformed ID all give
null, the same answer as an ID that does not exist: guessing reveals nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.graphql.context import Info
from app.graphql.keys import api_key_node
from app.graphql.org import CreditLot, LedgerEntry, Organization, wallet_node
from app.graphql.relay import Node
from app.ids import parse_global_id
from app.ledger import reads
from app.ledger.book import entries_t
from app.ledger.state import lots_t, wallets

Loader = Callable[[Info, AsyncConnection, int, int], Awaitable[Node | None]]


async def _organization(
    info: Info, _conn: AsyncConnection, org_id: int, row_id: int
) -> Node | None:
    if row_id != org_id:
        return None
    return Organization.of(await info.context.runtime.orgs.by_id(org_id))


async def _wallet_node(_info: Info, conn: AsyncConnection, org_id: int, row_id: int) -> Node | None:
    row = await reads.wallet_of(conn, org_id)
    return wallet_node(row) if row.id == row_id else None


async def _owned(conn: AsyncConnection, t: Any, org_id: int, row_id: int) -> Any:
    """The row of ``t`` (which has a wallet_id) with ``row_id``, if it is the org's."""
    statement = (
        select(t)
        .join(wallets, wallets.c.id == t.c.wallet_id)
        .where(t.c.id == row_id, wallets.c.organization_id == org_id)
    )
    return (await conn.execute(statement)).first()


async def _entry(_info: Info, conn: AsyncConnection, org_id: int, row_id: int) -> Node | None:
    row = await _owned(conn, entries_t, org_id, row_id)
    return None if row is None else LedgerEntry.of(row)


async def _lot(_info: Info, conn: AsyncConnection, org_id: int, row_id: int) -> Node | None:
    row = await _owned(conn, lots_t, org_id, row_id)
    return None if row is None else CreditLot.of(row)


LOADERS: dict[str, Loader] = {
    "Organization": _organization,
    "Wallet": _wallet_node,
    "LedgerEntry": _entry,
    "CreditLot": _lot,
    "ApiKey": api_key_node,  # an API key finds only itself
}


async def resolve_node(info: Info, global_id: str) -> Node | None:
    principal = info.context.caller()
    parsed = parse_global_id(global_id)
    if parsed is None or parsed[0] not in LOADERS:
        return None
    type_name, row_id = parsed
    async with info.context.runtime.db.reader.connect() as conn:
        return await LOADERS[type_name](info, conn, principal.organization_id, row_id)

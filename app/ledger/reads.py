"""Read-only queries over wallets, lots and entries, for the APIs (never the writer's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from app.db import Prebuilt
from app.ledger.book import entries_t
from app.ledger.state import lots_t, orgs_t, wallets
from app.pages import Page, first_page, page_of

# What a first page of lots holds when the query leaves ``first`` at its default.
FIRST_LOTS = 50

_ORG: BindParameter[int] = bindparam("organization_id")
# Built once (``Prebuilt``) and run at the driver: the dashboards' WalletOverview reads
# these on every request.
_wallet = Prebuilt(
    lambda _dialect, _lock: (
        select(wallets, orgs_t.c.spend_cap_monthly)
        .join(orgs_t, orgs_t.c.id == wallets.c.organization_id)
        .where(wallets.c.organization_id == _ORG)
    )
)
_first_lots = Prebuilt(
    lambda _dialect, _lock: first_page(
        select(lots_t)
        .join(wallets, wallets.c.id == lots_t.c.wallet_id)
        .where(wallets.c.organization_id == _ORG, lots_t.c.remaining > 0),
        lots_t.c.created_at,
        lots_t.c.id,
        FIRST_LOTS,
    )
)


def wallet_of(conn: Connection, organization_id: int) -> Any:
    """The organization's wallet row, with the org's monthly spend cap."""
    (row,) = _wallet.rows(conn, {"organization_id": organization_id})
    return row


def lots_of(wallet_id: int, *, include_spent: bool) -> Select[Any]:
    statement = select(lots_t).where(lots_t.c.wallet_id == wallet_id)
    return statement if include_spent else statement.where(lots_t.c.remaining > 0)


def first_lots(conn: Connection, organization_id: int) -> Page:
    """The first ``FIRST_LOTS`` of the organization's lots with credits left, newest
    first: ``lots_of(..., include_spent=False)``'s first page, found by organization."""
    return page_of(_first_lots.rows(conn, {"organization_id": organization_id}), FIRST_LOTS)


def entries_of(wallet_id: int) -> Select[Any]:
    return select(entries_t).where(entries_t.c.wallet_id == wallet_id)

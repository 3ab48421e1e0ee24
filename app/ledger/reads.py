"""Read-only queries over wallets, lots and entries, for the APIs (never the writer's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from app.ledger.book import entries_t
from app.ledger.state import lots_t, orgs_t, wallets


def wallet_of(conn: Connection, organization_id: int) -> Any:
    """The organization's wallet row, with the org's monthly spend cap."""
    statement = (
        select(wallets, orgs_t.c.spend_cap_monthly)
        .join(orgs_t, orgs_t.c.id == wallets.c.organization_id)
        .where(wallets.c.organization_id == organization_id)
    )
    return conn.execute(statement).one()


def lots_of(wallet_id: int, *, include_spent: bool) -> Select[Any]:
    statement = select(lots_t).where(lots_t.c.wallet_id == wallet_id)
    return statement if include_spent else statement.where(lots_t.c.remaining > 0)


def entries_of(wallet_id: int) -> Select[Any]:
    return select(entries_t).where(entries_t.c.wallet_id == wallet_id)

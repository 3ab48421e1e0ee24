"""An organization's rows that WalletOverview's fields share, read together.

The wallet row (``Wallet``, ``SpendCap``), the billing state (``app.orgs.billing.overview``:
plan, auto-reload, purchases) and the first page of lots are each read at most once per
request, and whatever the fields ask for in the same tick of the event loop is read in
one ``Database.read``: one transaction, one snapshot, one hop to the reader thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy.engine import Connection

from app.graphql.context import Info
from app.ledger import reads
from app.orgs.billing import Overview, overview
from app.pages import Page


class Part(Enum):
    WALLET = "wallet"
    BILLING = "billing"
    FIRST_LOTS = "first_lots"


_READS: dict[Part, Callable[[Connection, int, datetime], Any]] = {
    Part.WALLET: lambda conn, org, _now: reads.wallet_of(conn, org),
    Part.BILLING: overview,
    Part.FIRST_LOTS: lambda conn, org, _now: reads.first_lots(conn, org),
}


async def _part(info: Info, part: Part, organization_id: int) -> Any:
    runtime = info.context.runtime

    async def load(keys: list[tuple[Part, int]]) -> list[Any]:
        now = runtime.clock.now()
        return await runtime.db.read(
            lambda conn: [_READS[part](conn, org, now) for part, org in keys]
        )

    return await info.context.loader("organization_parts", load).load((part, organization_id))


async def wallet_row(info: Info, organization_id: int) -> Any:
    """The org's wallet row (``ledger.reads.wallet_of``)."""
    return await _part(info, Part.WALLET, organization_id)


async def overview_of(info: Info, organization_id: int) -> Overview:
    """The org's billing state (``orgs.billing.overview``); an answer built on it is
    kept no longer than its figures stay true (``response_cache.py``)."""
    billing: Overview = await _part(info, Part.BILLING, organization_id)
    info.context.changes_at(billing.changes_at)
    return billing


async def first_lots(info: Info, organization_id: int) -> Page:
    """The org's first page of lots with credits left (``ledger.reads.first_lots``)."""
    page: Page = await _part(info, Part.FIRST_LOTS, organization_id)
    return page

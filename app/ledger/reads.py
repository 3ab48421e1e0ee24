"""Read-only queries over wallets, lots, entries and billing transactions, for the APIs
(never the writer's)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from app.db import Prebuilt
from app.ledger.book import entries_t
from app.ledger.state import billing_t, lots_t, orgs_t, wallets
from app.ledger.tables import EntryKind
from app.pages import Keyset, Page, at_or_after, before, equal, first_page, page_of
from app.payments.tables import TransactionKind, TransactionStatus

# What a first page of lots holds when the query leaves ``first`` at its default.
FIRST_LOTS = 50

_ORG: BindParameter[int] = bindparam("organization_id")
# Built once (``Prebuilt``) and run at the driver: the dashboards' WalletOverview reads
# these on every request.
_wallet = Prebuilt(
    lambda _dialect, _lock: (
        select(wallets, orgs_t.c.spend_cap_monthly, orgs_t.c.rate_card)
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
    """The organization's wallet row, with the org's monthly spend cap and rate card."""
    (row,) = _wallet.rows(conn, {"organization_id": organization_id})
    return row


# A wallet's lots; ``above``: only those with more than this left.
LOTS = Keyset(
    lambda: select(lots_t),
    (lots_t.c.created_at, lots_t.c.id),
    {"wallet_id": equal(lots_t.c.wallet_id), "above": (lots_t.c.remaining, operator.gt)},
)


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Narrows a ledger (``Wallet.entries`` and its CSV); ``until`` is exclusive."""

    kind: EntryKind | None = None
    since: datetime | None = None
    until: datetime | None = None

    def values(self, wallet_id: int) -> dict[str, Any]:
        """``ENTRIES``'s values for the wallet's entries that match."""
        return {"wallet_id": wallet_id, "kind": self.kind, "since": self.since, "until": self.until}


@dataclass(frozen=True, slots=True)
class TransactionFilter:
    """Narrows billing transactions (``billingTransactions`` and the REST list and CSV);
    times are when a transaction was created, ``until`` exclusive."""

    kind: TransactionKind | None = None
    status: TransactionStatus | None = None
    since: datetime | None = None
    until: datetime | None = None

    def values(self, organization_id: int) -> dict[str, Any]:
        """``TRANSACTIONS``'s values for the organization's transactions that match."""
        return {
            "organization_id": organization_id,
            "kind": self.kind,
            "status": self.status,
            "since": self.since,
            "until": self.until,
        }


# A wallet's ledger entries, by ``EntryFilter``'s fields.
ENTRIES = Keyset(
    lambda: select(entries_t),
    # By version: their order in the ledger, on its unique (wallet, version) index.
    (entries_t.c.version,),
    {
        "wallet_id": equal(entries_t.c.wallet_id),
        "kind": equal(entries_t.c.kind),
        "since": at_or_after(entries_t.c.created_at),
        "until": before(entries_t.c.created_at),
    },
)
# An organization's billing transactions: top-ups, refunds, adjustments, expiries.
TRANSACTIONS = Keyset(
    lambda: select(billing_t),
    (billing_t.c.created_at, billing_t.c.id),
    {
        "organization_id": equal(billing_t.c.organization_id),
        "kind": equal(billing_t.c.kind),
        "status": equal(billing_t.c.status),
        "since": at_or_after(billing_t.c.created_at),
        "until": before(billing_t.c.created_at),
    },
)
_version = Prebuilt(
    lambda _dialect, _lock: select(wallets.c.version).where(wallets.c.id == bindparam("id"))
)


def first_lots(conn: Connection, organization_id: int) -> Page:
    """The first ``FIRST_LOTS`` of the organization's lots with credits left, newest
    first: the first page of ``LOTS`` above 0, found by organization."""
    return page_of(_first_lots.rows(conn, {"organization_id": organization_id}), FIRST_LOTS)


def entry_count(conn: Connection, wallet_id: int) -> int:
    """How many entries the wallet's ledger holds: its version, one per entry from 1
    (``creditgraph verify`` proves it), so counting them reads one row."""
    return int(_version.first(conn, {"id": wallet_id}).version)


def entry_at(conn: Connection, organization_id: int, version: int) -> tuple[Any, Any | None]:
    """The organization's ledger entry of ``version``, and the lot it opened (None if it
    opened none)."""
    entry = conn.execute(
        select(entries_t)
        .join(wallets, wallets.c.id == entries_t.c.wallet_id)
        .where(wallets.c.organization_id == organization_id, entries_t.c.version == version)
    ).one()
    if entry.lot_id is None or entry.amount < 0:
        return entry, None
    return entry, conn.execute(select(lots_t).where(lots_t.c.id == entry.lot_id)).one()

"""An organization's billing state as synchronous reads, one rule each.

The services read their parts through these functions (in ``Database.read``), and the
dashboards' WalletOverview reads them all in one transaction (``overview``) instead of
one round trip per field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from app.db import Prebuilt
from app.ledger.state import (
    accounts_t,
    billing_t,
    lots_t,
    month_start,
    next_month,
    periods_t,
    plan_subs_t,
    purchases,
)
from app.payments.tables import TransactionKind, TransactionStatus
from app.plans.catalog import PURCHASE_WINDOW

# Built once (``Prebuilt``) and run at the driver: building a statement, or executing it
# through SQLAlchemy, costs more than SQLite takes to run one of these, and
# WalletOverview runs them all on every request.
_ORG: BindParameter[int] = bindparam("organization_id")
_SINCE: BindParameter[datetime] = bindparam("since", type_=billing_t.c.created_at.type)

_subscription = Prebuilt(
    lambda _dialect, _lock: select(plan_subs_t).where(plan_subs_t.c.organization_id == _ORG)
)
_allocation = Prebuilt(
    # The open period's allocation lot and the lot that rolled into it.
    lambda _dialect, _lock: (
        select(func.coalesce(func.sum(lots_t.c.remaining), 0))
        .select_from(periods_t)
        .join(
            lots_t,
            or_(
                lots_t.c.id == periods_t.c.allocation_lot_id,
                lots_t.c.id == periods_t.c.rollover_lot_id,
            ),
        )
        .where(periods_t.c.organization_id == _ORG, periods_t.c.closed_at.is_(None))
    )
)
_account = Prebuilt(
    lambda _dialect, _lock: select(accounts_t).where(accounts_t.c.organization_id == _ORG)
)
_reloaded = Prebuilt(
    lambda _dialect, _lock: select(func.coalesce(func.sum(billing_t.c.amount), 0)).where(
        billing_t.c.organization_id == _ORG,
        billing_t.c.kind == TransactionKind.AUTO_RELOAD,
        billing_t.c.status == TransactionStatus.SUCCEEDED,
        billing_t.c.created_at >= _SINCE,
    )
)


def _purchased(_dialect: str, _lock: bool) -> Any:
    total, where = purchases(_SINCE)
    oldest = func.min(billing_t.c.settled_at)
    return select(total, oldest).where(billing_t.c.organization_id == _ORG, *where)


_purchased_since = Prebuilt(_purchased)


def subscription_row(conn: Connection, organization_id: int) -> Any:
    """The organization's ``plan_subscriptions`` row, whatever its status, or None."""
    return _subscription.first(conn, {"organization_id": organization_id})


def allocation_remaining(conn: Connection, organization_id: int) -> int:
    """What is left of the open period's allocation and of what rolled into it."""
    (remaining,) = _allocation.first(conn, {"organization_id": organization_id})
    return int(remaining)


def account_row(conn: Connection, organization_id: int) -> Any:
    """The organization's ``billing_accounts`` row, or None (the defaults apply)."""
    return _account.first(conn, {"organization_id": organization_id})


def reloaded_since(conn: Connection, organization_id: int, since: datetime) -> int:
    """What succeeded auto-reloads charged since ``since``."""
    params = {"organization_id": organization_id, "since": since}
    (reloaded,) = _reloaded.first(conn, params)
    return int(reloaded)


def purchased_since(
    conn: Connection, organization_id: int, since: datetime
) -> tuple[int, datetime | None]:
    """What the organization paid for credits since ``since`` (``ledger.state.purchases``),
    and when the oldest of those purchases settled (None: there is none)."""
    params = {"organization_id": organization_id, "since": since}
    total, oldest = _purchased_since.first(conn, params)
    return int(total), oldest


@dataclass(frozen=True, slots=True)
class Overview:
    subscription: Any  # the plan_subscriptions row, or None
    allocation_remaining: int
    account: Any  # the billing_accounts row, or None
    reloaded_this_month: int
    purchased_last_28_days: int
    # When the clock alone changes one of the above: the month turns (what was reloaded
    # this month) or the oldest purchase leaves the 28 days.
    changes_at: datetime


def overview(conn: Connection, organization_id: int, now: datetime) -> Overview:
    purchased, oldest = purchased_since(conn, organization_id, now - PURCHASE_WINDOW)
    changes_at = next_month(now)
    if oldest is not None:
        changes_at = min(changes_at, oldest + PURCHASE_WINDOW)
    return Overview(
        subscription_row(conn, organization_id),
        allocation_remaining(conn, organization_id),
        account_row(conn, organization_id),
        reloaded_since(conn, organization_id, month_start(now)),
        purchased,
        changes_at,
    )

"""What one write transaction loads: wallets, lots, keys, holds and window marks.

The writer gathers what every job of a batch needs, loads it here in a handful of
queries (rows locked in id order on PostgreSQL), lets the jobs work on these plain
objects, then writes the changes back in bulk (``ledger.book``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, false, func, or_, select
from sqlalchemy.engine import Connection

from app.db import any_of, table
from app.keys.tables import ApiKey, SpendMark
from app.keys.windows import WINDOWS, Window, WindowMarks, window_start
from app.ledger.lots import Lot, consumption_key
from app.ledger.tables import CreditLot, Hold, Wallet
from app.orgs.tables import Organization
from app.usage.tables import UsageRecord

wallets = table(Wallet)
lots_t = table(CreditLot)
keys_t = table(ApiKey)
holds_t = table(Hold)
marks_t = table(SpendMark)
usage_t = table(UsageRecord)
orgs_t = table(Organization)


def month_of(at: datetime) -> int:
    """The calendar month (UTC) as YYYYMM: the period of the monthly spend cap."""
    return at.year * 100 + at.month


@dataclass(slots=True)
class WalletState:
    id: int
    organization_id: int
    balance: int
    held: int
    version: int
    month: int
    month_spent: int
    spend_cap: int | None
    rate_card: str
    # In consumption order; loaded only when a job moves money.
    lots: list[Lot] | None = None
    dirty: bool = False

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(slots=True)
class KeyState:
    id: int
    organization_id: int
    secret_hash: str
    group: str
    owner: str | None
    revoked_at: datetime | None
    expires_at: datetime | None
    quota: int | None
    limits: dict[Window, int]
    spent: int
    held: int
    last_used_at: datetime | None
    # Loaded only for keys with window limits that a job checks.
    marks: dict[Window, WindowMarks] = field(default_factory=dict)
    billed: bool = False  # spend changed: write this second's spend mark
    dirty: bool = False

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(slots=True)
class HoldState:
    id: int | None
    organization_id: int
    wallet_id: int
    api_key_id: int
    request_id: str
    amount: int
    status: str
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None = None
    dirty: bool = False


@dataclass(slots=True)
class PriorUsage:
    """A usage record already billed for a request id: a replay returns it unchanged."""

    status: str
    cost: int


@dataclass(slots=True)
class Needs:
    """What the jobs of one batch will read and change."""

    orgs: set[int] = field(default_factory=set)
    orgs_with_lots: set[int] = field(default_factory=set)
    keys: set[int] = field(default_factory=set)
    window_keys: set[int] = field(default_factory=set)
    requests: set[tuple[int, str]] = field(default_factory=set)  # (organization id, request id)
    hold_ids: set[int] = field(default_factory=set)


@dataclass(slots=True)
class State:
    now: datetime
    wallets: dict[int, WalletState]  # by organization id
    keys: dict[int, KeyState]
    holds: dict[tuple[int, str], HoldState]
    prior_usage: dict[tuple[int, str], PriorUsage]
    lock: bool = True

    def locked(self, statement: Select[Any]) -> Select[Any]:
        return statement.with_for_update() if self.lock else statement


def _requests_filter(
    conn: Connection, t: Table, pairs: list[tuple[int, str]]
) -> ColumnElement[bool]:
    """``(organization_id, request_id) in pairs``, written per organization so that SQLite
    searches the (organization_id, request_id) unique index; a row-value IN scans."""
    by_org: dict[int, list[str]] = {}
    for organization_id, request_id in pairs:
        by_org.setdefault(organization_id, []).append(request_id)
    return or_(
        false(),
        *(
            and_(t.c.organization_id == organization_id, any_of(conn, t.c.request_id, request_ids))
            for organization_id, request_ids in by_org.items()
        ),
    )


def _lot(row: Any) -> Lot:
    return Lot(row.id, row.source, row.original, row.remaining, row.expires_at, row.created_at)


def load_state(conn: Connection, needs: Needs, now: datetime, *, lock: bool = True) -> State:
    """Load what ``needs`` names; ``lock`` takes row locks (the writer), reads do not."""
    state = State(now, {}, {}, {}, {}, lock)
    pairs = sorted(needs.requests)
    if pairs or needs.hold_ids:
        by_request = _requests_filter(conn, holds_t, pairs)
        rows = conn.execute(
            state.locked(
                select(holds_t).where(
                    or_(any_of(conn, holds_t.c.id, sorted(needs.hold_ids)), by_request)
                )
            )
        )
        for row in rows:
            hold = _hold(row)
            state.holds[(hold.organization_id, hold.request_id)] = hold
            # Closing a hold changes its wallet and key, whichever job closes it.
            needs.orgs.add(hold.organization_id)
            needs.keys.add(hold.api_key_id)
    if pairs:
        rows = conn.execute(
            select(
                usage_t.c.organization_id, usage_t.c.request_id, usage_t.c.status, usage_t.c.cost
            ).where(_requests_filter(conn, usage_t, pairs))
        )
        for row in rows:
            state.prior_usage[(row.organization_id, row.request_id)] = PriorUsage(
                row.status, row.cost
            )
    _load_wallets(conn, needs, state)
    _load_keys(conn, needs, state)
    return state


def _load_wallets(conn: Connection, needs: Needs, state: State) -> None:
    if not needs.orgs:
        return
    month = month_of(state.now)
    statement = (
        select(wallets, orgs_t.c.spend_cap_monthly, orgs_t.c.rate_card)
        .join(orgs_t, orgs_t.c.id == wallets.c.organization_id)
        .where(any_of(conn, wallets.c.organization_id, sorted(needs.orgs)))
        .order_by(wallets.c.id)
    )
    rows = conn.execute(statement.with_for_update(of=wallets) if state.lock else statement)
    for row in rows:
        wallet = WalletState(
            row.id,
            row.organization_id,
            row.balance,
            row.held,
            row.version,
            row.month,
            row.month_spent,
            row.spend_cap_monthly,
            row.rate_card,
        )
        if wallet.month != month:  # a new calendar month: the spend cap starts over
            wallet.month, wallet.month_spent, wallet.dirty = month, 0, True
        state.wallets[wallet.organization_id] = wallet
    with_lots = {
        w.id: w for w in state.wallets.values() if w.organization_id in needs.orgs_with_lots
    }
    if with_lots:
        for wallet in with_lots.values():
            wallet.lots = []
        rows = conn.execute(
            state.locked(
                select(lots_t).where(
                    any_of(conn, lots_t.c.wallet_id, sorted(with_lots)), lots_t.c.remaining > 0
                )
            )
        )
        for row in rows:
            lots = with_lots[row.wallet_id].lots
            assert lots is not None
            lots.append(_lot(row))
        for wallet in with_lots.values():
            assert wallet.lots is not None
            wallet.lots.sort(key=consumption_key)


def _load_keys(conn: Connection, needs: Needs, state: State) -> None:
    if not needs.keys:
        return
    rows = conn.execute(
        state.locked(
            select(keys_t)
            .where(any_of(conn, keys_t.c.id, sorted(needs.keys)))
            .order_by(keys_t.c.id)
        )
    )
    for row in rows:
        state.keys[row.id] = key_state(row)
    windowed = sorted(
        key_id for key_id in needs.window_keys if key_id in state.keys and state.keys[key_id].limits
    )
    if windowed:
        marks = load_marks(conn, windowed, int(state.now.timestamp()))
        for key_id, key_marks in marks.items():
            state.keys[key_id].marks = key_marks


def key_state(row: Any) -> KeyState:
    limits = {
        window: limit
        for window, limit in zip(WINDOWS, (row.limit_5h, row.limit_1d, row.limit_7d), strict=True)
        if limit is not None
    }
    return KeyState(
        row.id,
        row.organization_id,
        row.secret_hash,
        row.group,
        row.owner,
        row.revoked_at,
        row.expires_at,
        row.quota,
        limits,
        row.spent,
        row.held,
        row.last_used_at,
    )


def load_marks(
    conn: Connection, key_ids: list[int], now_second: int
) -> dict[int, dict[Window, WindowMarks]]:
    """Per key and window: lifetime spend at the window's start, and its first spend inside.

    Two index seeks per key and window on the (key, second) primary key, never a scan.
    """
    result: dict[int, dict[Window, WindowMarks]] = {key_id: {} for key_id in key_ids}
    for window in WINDOWS:
        start = window_start(now_second, window)
        baseline = (
            select(marks_t.c.cumulative)
            .where(marks_t.c.api_key_id == keys_t.c.id, marks_t.c.second <= start)
            .order_by(marks_t.c.second.desc())
            .limit(1)
            .scalar_subquery()
        )
        first = (
            select(func.min(marks_t.c.second))
            .where(marks_t.c.api_key_id == keys_t.c.id, marks_t.c.second > start)
            .scalar_subquery()
        )
        rows = conn.execute(
            select(keys_t.c.id, baseline, first).where(any_of(conn, keys_t.c.id, key_ids))
        )
        for key_id, base, first_second in rows:
            result[key_id][window] = WindowMarks(base or 0, first_second)
    return result


def _hold(row: Any) -> HoldState:
    return HoldState(
        row.id,
        row.organization_id,
        row.wallet_id,
        row.api_key_id,
        row.request_id,
        row.amount,
        row.status,
        row.created_at,
        row.expires_at,
        row.closed_at,
    )

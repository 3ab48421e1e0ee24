"""What one write transaction loads: wallets, lots, keys, holds and window marks.

The writer gathers what every job of a batch needs, loads it here in a handful of
queries (rows locked in id order on PostgreSQL), lets the jobs work on these plain
objects, then writes the changes back in bulk (``ledger.book``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Connection

from app.db import Prebuilt, in_list, request_pairs, table
from app.grants.tables import PromoCode, PromoRedemption
from app.keys.tables import ApiKey, SpendMark
from app.keys.windows import WINDOWS, Window, WindowMarks, window_start
from app.ledger.lots import Lot, consumption_key
from app.ledger.tables import CreditLot, Hold, HoldStatus, Wallet
from app.orgs.tables import Organization
from app.payments.tables import (
    PAYMENT_KINDS,
    BillingAccount,
    BillingTransaction,
    TransactionStatus,
)
from app.plans.catalog import MESSAGE_WINDOW, PURCHASE_WINDOW, REQUEST_WINDOW, Catalog, Plan
from app.plans.tables import PlanPeriod, PlanSubscription, SubscriptionStatus
from app.pricing.book import ModelClass
from app.usage.tables import UsageRecord

wallets = table(Wallet)
lots_t = table(CreditLot)
keys_t = table(ApiKey)
holds_t = table(Hold)
marks_t = table(SpendMark)
usage_t = table(UsageRecord)
orgs_t = table(Organization)
billing_t = table(BillingTransaction)
accounts_t = table(BillingAccount)
plan_subs_t = table(PlanSubscription)
periods_t = table(PlanPeriod)
promo_codes_t = table(PromoCode)
redemptions_t = table(PromoRedemption)


def purchases(since: datetime | BindParameter[datetime]) -> tuple[Any, list[ColumnElement[bool]]]:
    """Credits purchased since ``since``: the sum, and the rows it adds up. What was paid
    for credits (by card or auto-reload), net of refunds; bonuses and grants are not
    purchases. The one definition behind ``orgs.billing.purchased_since`` and the plans'
    unlock tiers. A purchase counts for 28 days from its settling, not at the 28th: the
    moment its credits expire (Bytez), it stops counting too."""
    total = func.coalesce(func.sum(billing_t.c.amount - billing_t.c.refunded), 0)
    return total, [
        # Not IN: an IN list is rendered per execution, which statements run at the
        # driver (``db.AtDriver``) cannot do.
        or_(*(billing_t.c.kind == kind for kind in PAYMENT_KINDS)),
        billing_t.c.status == TransactionStatus.SUCCEEDED,
        billing_t.c.settled_at > since,
    ]


def month_of(at: datetime) -> int:
    """The calendar month (UTC) as YYYYMM: the period of the monthly spend cap."""
    return at.year * 100 + at.month


def month_start(at: datetime) -> datetime:
    """When the calendar month (UTC) of ``at`` began."""
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def next_month(at: datetime) -> datetime:
    """When the calendar month (UTC) after that of ``at`` begins."""
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


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
    # Auto-reload's threshold when it is on and a card is saved: a debit leaving the
    # balance under it starts a reload after the commit.
    reload_below: int | None
    # The organization's active plan (``app.plans.catalog``), or None: prepaid only.
    plan_code: str | None
    # Whether a call that does not say autoScale scales (``app.gateway.auto_scale``).
    auto_scale: bool
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
    slots: int = 0
    model_class: str = ModelClass.STANDARD
    dirty: bool = False


@dataclass(slots=True)
class TopUpState:
    """A top-up (``billing_transactions`` row) that a job settles, fails or refunds."""

    id: int
    organization_id: int
    kind: str
    status: str
    amount: int
    credits_bought: int
    bonus: int
    refunded: int
    payment_intent_id: str | None
    paid_lot_id: int | None
    bonus_lot_id: int | None
    failure_reason: str | None
    settled_at: datetime | None
    provider: str | None = None  # "stripe", "fake": for its receipt
    # Lots opened in this transaction: their ids exist only once flushed.
    paid_lot: Lot | None = None
    bonus_lot: Lot | None = None
    dirty: bool = False


@dataclass(slots=True)
class Period:
    """A plan period to grant: its allocation and rollover lots exist once flushed."""

    plan_code: str
    start: datetime
    end: datetime
    allocation: int
    allocation_lot: Lot | None
    rollover_lot: Lot | None


@dataclass(slots=True)
class PlanState:
    """An organization's subscription and its open (granted, not closed) period, which
    renewals and plan changes move on. ``exists`` is False for an organization's first."""

    organization_id: int
    plan_code: str
    status: str
    provider: str | None
    anchor: datetime
    period_number: int
    period_start: datetime
    period_end: datetime
    next_plan_code: str | None
    exists: bool = True
    open_period_id: int | None = None
    allocation_lot_id: int | None = None
    rollover_lot_id: int | None = None
    close_open_period: bool = False
    new_period: Period | None = None
    dirty: bool = False
    # The Stripe subscription whose invoices grant the periods (provider "stripe").
    stripe_subscription_id: str | None = None


@dataclass(slots=True)
class PromoState:
    """A promo code that a job redeems, locked, and its redemptions so far: in all, and
    by each organization of the batch. The book counts the batch's own."""

    id: int
    code: str
    amount: int
    unit: str
    credits_expire_days: int | None
    max_redemptions: int | None
    per_organization: int
    expires_at: datetime | None
    redemptions: int
    by_org: dict[int, int] = field(default_factory=dict)
    dirty: bool = False


@dataclass(slots=True)
class PriorUsage:
    """A usage record already billed for a request id: a replay returns it unchanged."""

    status: str
    cost: int


@dataclass(slots=True)
class RecentCalls:
    """The holds of one model class placed within MESSAGE_WINDOW: a message window."""

    count: int
    oldest: datetime  # when the oldest of them was placed


@dataclass(slots=True)
class PlanUsage:
    """What an organization's plan limits (``app.plans.limits``), counted when loaded.
    The book counts the holds that the batch places and closes, so each job sees those
    of the jobs before it. Only the counts the plan limits are loaded."""

    plan: Plan
    in_flight: int = 0  # what the plan's concurrency counts of the active holds
    closed_last_second: int = 0  # closed-model holds placed within REQUEST_WINDOW
    oldest_closed: datetime | None = None  # when the oldest of those was placed
    recent: dict[str, RecentCalls] = field(default_factory=dict)  # by model class
    purchased: int = 0  # credits purchased within PURCHASE_WINDOW: its unlock tier

    def placed(self, hold: HoldState) -> None:
        """Count a hold the batch placed."""
        self.in_flight += self.plan.in_flight(1, hold.slots)
        if not hold.slots:
            self.closed_last_second += 1
            if self.oldest_closed is None:
                self.oldest_closed = hold.created_at
        recent = self.recent.get(hold.model_class)
        if recent is None:
            self.recent[hold.model_class] = RecentCalls(1, hold.created_at)
        else:
            recent.count += 1

    def closed(self, hold: HoldState) -> None:
        """Count a hold the batch settled, released or expired."""
        self.in_flight -= self.plan.in_flight(1, hold.slots)


@dataclass(slots=True)
class Needs:
    """What the jobs of one batch will read and change."""

    orgs: set[int] = field(default_factory=set)
    orgs_with_lots: set[int] = field(default_factory=set)
    keys: set[int] = field(default_factory=set)
    window_keys: set[int] = field(default_factory=set)
    requests: set[tuple[int, str]] = field(default_factory=set)  # (organization id, request id)
    hold_ids: set[int] = field(default_factory=set)
    top_ups: set[int] = field(default_factory=set)
    # Organizations whose plan limits a job checks: once their wallet names the plan,
    # looked up in ``catalog``, what it limits is counted (``PlanUsage``).
    plan_limits: set[int] = field(default_factory=set)
    catalog: Catalog | None = None
    plans: set[int] = field(default_factory=set)  # organizations whose plan a job moves
    promo_codes: set[str] = field(default_factory=set)  # normalized codes a job redeems


@dataclass(slots=True)
class State:
    now: datetime
    wallets: dict[int, WalletState]  # by organization id
    keys: dict[int, KeyState]
    holds: dict[tuple[int, str], HoldState]
    prior_usage: dict[tuple[int, str], PriorUsage]
    top_ups: dict[int, TopUpState] = field(default_factory=dict)
    plan_usage: dict[int, PlanUsage] = field(default_factory=dict)  # by organization id
    plans: dict[int, PlanState] = field(default_factory=dict)  # by organization id
    promos: dict[str, PromoState] = field(default_factory=dict)  # by normalized code
    lock: bool = True


# The loader's statements, built once (``Prebuilt``). The writer locks what it loads
# (FOR UPDATE on PostgreSQL, in id order; SQLite's writer holds the database lock).


def _locked(statement: Select[Any], lock: bool, of: Table) -> Select[Any]:
    return statement.with_for_update(of=of) if lock else statement


def _by_request(t: Table, columns: Sequence[Any], dialect: str) -> Select[Any]:
    pairs, organization_id, request_id = request_pairs("pairs", dialect)
    on = and_(t.c.organization_id == organization_id, t.c.request_id == request_id)
    return select(*columns).select_from(pairs.join(t, on))


_holds_by_request = Prebuilt(
    lambda dialect, lock: _locked(
        _by_request(holds_t, [holds_t], dialect).order_by(holds_t.c.id), lock, holds_t
    )
)
_holds_by_id = Prebuilt(
    lambda dialect, lock: _locked(
        select(holds_t).where(in_list(holds_t.c.id, "ids", dialect)).order_by(holds_t.c.id),
        lock,
        holds_t,
    )
)
_usage_by_request = Prebuilt(
    lambda dialect, _lock: _by_request(
        usage_t,
        [usage_t.c.organization_id, usage_t.c.request_id, usage_t.c.status, usage_t.c.cost],
        dialect,
    )
)
_reload_below = case(
    (
        and_(
            accounts_t.c.auto_reload_enabled,
            accounts_t.c.payment_method_id.is_not(None),
            accounts_t.c.auto_reload_failure.is_(None),
        ),
        accounts_t.c.auto_reload_threshold,
    ),
    else_=None,
).label("reload_below")
_wallets = Prebuilt(
    lambda dialect, lock: _locked(
        select(
            wallets,
            orgs_t.c.spend_cap_monthly,
            orgs_t.c.rate_card,
            _reload_below,
            plan_subs_t.c.plan_code,
            func.coalesce(accounts_t.c.auto_scale_default, false()).label("auto_scale"),
        )
        .join(orgs_t, orgs_t.c.id == wallets.c.organization_id)
        .outerjoin(accounts_t, accounts_t.c.organization_id == wallets.c.organization_id)
        .outerjoin(
            plan_subs_t,
            and_(
                plan_subs_t.c.organization_id == wallets.c.organization_id,
                plan_subs_t.c.status == SubscriptionStatus.ACTIVE,
            ),
        )
        .where(in_list(wallets.c.organization_id, "ids", dialect))
        .order_by(wallets.c.id),
        lock,
        wallets,
    )
)
_open_lots = Prebuilt(
    lambda dialect, lock: _locked(
        select(lots_t)
        .where(in_list(lots_t.c.wallet_id, "ids", dialect), lots_t.c.remaining > 0)
        .order_by(lots_t.c.id),
        lock,
        lots_t,
    )
)
_top_ups = Prebuilt(
    lambda dialect, lock: _locked(
        select(billing_t).where(in_list(billing_t.c.id, "ids", dialect)).order_by(billing_t.c.id),
        lock,
        billing_t,
    )
)
_plans = Prebuilt(
    lambda dialect, lock: _locked(
        select(plan_subs_t)
        .where(in_list(plan_subs_t.c.organization_id, "ids", dialect))
        .order_by(plan_subs_t.c.organization_id),
        lock,
        plan_subs_t,
    )
)
_open_periods = Prebuilt(
    lambda dialect, lock: _locked(
        select(periods_t)
        .where(
            in_list(periods_t.c.organization_id, "ids", dialect), periods_t.c.closed_at.is_(None)
        )
        .order_by(periods_t.c.id),
        lock,
        periods_t,
    )
)
_keys = Prebuilt(
    lambda dialect, lock: _locked(
        select(keys_t).where(in_list(keys_t.c.id, "ids", dialect)).order_by(keys_t.c.id),
        lock,
        keys_t,
    )
)


def _marks_statement(dialect: str, _lock: bool) -> Select[Any]:
    """Per key, for each window starting after second ``:start_<window>``: the newest mark
    at or before the start, and the first second inside with spend. Two index seeks per
    key and window on the (key, second) primary key, never a scan."""
    columns: list[Any] = [keys_t.c.id]
    for window in WINDOWS:
        start: BindParameter[int] = bindparam(f"start_{window.name}")
        columns.append(
            select(marks_t.c.cumulative)
            .where(marks_t.c.api_key_id == keys_t.c.id, marks_t.c.second <= start)
            .order_by(marks_t.c.second.desc())
            .limit(1)
            .scalar_subquery()
        )
        columns.append(
            select(func.min(marks_t.c.second))
            .where(marks_t.c.api_key_id == keys_t.c.id, marks_t.c.second > start)
            .scalar_subquery()
        )
    return select(*columns).where(in_list(keys_t.c.id, "ids", dialect))


_marks = Prebuilt(_marks_statement)

# What plans limit, per organization. Not locked: every writer locks the wallet first,
# so no other transaction places or closes the organization's holds, or settles its
# top-ups, until this one commits.
_active_holds = Prebuilt(
    lambda dialect, _lock: (
        select(holds_t.c.organization_id, func.count(), func.sum(holds_t.c.slots))
        .where(
            in_list(holds_t.c.organization_id, "ids", dialect),
            holds_t.c.status == HoldStatus.ACTIVE,
        )
        .group_by(holds_t.c.organization_id)
    )
)
_closed_holds_since = Prebuilt(
    lambda dialect, _lock: (
        select(holds_t.c.organization_id, func.count(), func.min(holds_t.c.created_at))
        .where(
            in_list(holds_t.c.organization_id, "ids", dialect),
            holds_t.c.created_at > bindparam("since", type_=holds_t.c.created_at.type),
            holds_t.c.slots == 0,
        )
        .group_by(holds_t.c.organization_id)
    )
)
_recent_holds = Prebuilt(
    lambda dialect, _lock: (
        select(
            holds_t.c.organization_id,
            holds_t.c.model_class,
            func.count(),
            func.min(holds_t.c.created_at),
        )
        .where(
            in_list(holds_t.c.organization_id, "ids", dialect),
            holds_t.c.created_at > bindparam("since", type_=holds_t.c.created_at.type),
        )
        .group_by(holds_t.c.organization_id, holds_t.c.model_class)
    )
)


def _purchased_statement(dialect: str, _lock: bool) -> Select[Any]:
    total, where = purchases(bindparam("since", type_=billing_t.c.settled_at.type))
    return (
        select(billing_t.c.organization_id, total)
        .where(in_list(billing_t.c.organization_id, "ids", dialect), *where)
        .group_by(billing_t.c.organization_id)
    )


_purchased = Prebuilt(_purchased_statement)


def _lot(row: Any) -> Lot:
    return Lot(row.id, row.source, row.original, row.remaining, row.expires_at, row.created_at)


def load_state(conn: Connection, needs: Needs, now: datetime, *, lock: bool = True) -> State:
    """Load what ``needs`` names; ``lock`` takes row locks (the writer), reads do not."""
    state = State(now, {}, {}, {}, {}, lock=lock)
    pairs = [[organization_id, request_id] for organization_id, request_id in needs.requests]
    hold_rows: list[Any] = []
    if pairs:
        hold_rows += _holds_by_request.rows(conn, {"pairs": pairs}, lock)
    if needs.hold_ids:
        hold_rows += _holds_by_id.rows(conn, {"ids": sorted(needs.hold_ids)}, lock)
    for row in hold_rows:
        hold = _hold(row)
        state.holds[(hold.organization_id, hold.request_id)] = hold
        # Closing a hold changes its wallet and key, whichever job closes it.
        needs.orgs.add(hold.organization_id)
        needs.keys.add(hold.api_key_id)
    if pairs:
        for row in _usage_by_request.rows(conn, {"pairs": pairs}):
            state.prior_usage[(row.organization_id, row.request_id)] = PriorUsage(
                row.status, row.cost
            )
    if needs.top_ups:
        for row in _top_ups.rows(conn, {"ids": sorted(needs.top_ups)}, lock):
            state.top_ups[row.id] = TopUpState(
                row.id,
                row.organization_id,
                row.kind,
                row.status,
                row.amount,
                row.credits_bought,
                row.bonus,
                row.refunded,
                row.payment_intent_id,
                row.paid_lot_id,
                row.bonus_lot_id,
                row.failure_reason,
                row.settled_at,
                row.provider,
            )
    if needs.promo_codes:
        _load_promos(conn, needs, state)
    if needs.plans:
        _load_plans(conn, needs, state)
    _load_wallets(conn, needs, state)
    if needs.plan_limits:
        _load_plan_usage(conn, needs, state)
    _load_keys(conn, needs, state)
    return state


def _load_wallets(conn: Connection, needs: Needs, state: State) -> None:
    if not needs.orgs:
        return
    month = month_of(state.now)
    for row in _wallets.rows(conn, {"ids": sorted(needs.orgs)}, state.lock):
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
            row.reload_below,
            row.plan_code,
            row.auto_scale,
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
        for row in _open_lots.rows(conn, {"ids": sorted(with_lots)}, state.lock):
            lots = with_lots[row.wallet_id].lots
            assert lots is not None
            lots.append(_lot(row))
        for wallet in with_lots.values():
            assert wallet.lots is not None
            wallet.lots.sort(key=consumption_key)


def _load_promos(conn: Connection, needs: Needs, state: State) -> None:
    """The codes, locked (rare: plain statements). Under their locks no other transaction
    redeems them, so the counts read next stay true until this one commits."""
    codes = select(promo_codes_t).where(promo_codes_t.c.code.in_(sorted(needs.promo_codes)))
    for row in conn.execute(_locked(codes.order_by(promo_codes_t.c.id), state.lock, promo_codes_t)):
        state.promos[row.code] = PromoState(
            row.id,
            row.code,
            row.amount,
            row.unit,
            row.credits_expire_days,
            row.max_redemptions,
            row.per_organization,
            row.expires_at,
            row.redemptions,
        )
    by_id = {promo.id: promo for promo in state.promos.values()}
    if not by_id or not needs.orgs:
        return
    counts = (
        select(redemptions_t.c.promo_code_id, redemptions_t.c.organization_id, func.count())
        .where(
            redemptions_t.c.promo_code_id.in_(sorted(by_id)),
            redemptions_t.c.organization_id.in_(sorted(needs.orgs)),
        )
        .group_by(redemptions_t.c.promo_code_id, redemptions_t.c.organization_id)
    )
    for promo_code_id, organization_id, count in conn.execute(counts):
        by_id[promo_code_id].by_org[organization_id] = count


def _load_plans(conn: Connection, needs: Needs, state: State) -> None:
    ids = {"ids": sorted(needs.plans)}
    for row in _plans.rows(conn, ids, state.lock):
        state.plans[row.organization_id] = PlanState(
            row.organization_id,
            row.plan_code,
            row.status,
            row.provider,
            row.anchor,
            row.period_number,
            row.current_period_start,
            row.current_period_end,
            row.next_plan_code,
            stripe_subscription_id=row.stripe_subscription_id,
        )
    for row in _open_periods.rows(conn, ids, state.lock):
        plan = state.plans.get(row.organization_id)
        if plan is not None:
            plan.open_period_id = row.id
            plan.allocation_lot_id = row.allocation_lot_id
            plan.rollover_lot_id = row.rollover_lot_id


def _load_plan_usage(conn: Connection, needs: Needs, state: State) -> None:
    """Count what the plans of ``needs.plan_limits`` limit: nothing, and no query, for
    organizations without a plan or whose plan limits none of it."""
    assert needs.catalog is not None, "a job that checks plan limits gives the catalog"
    concurrent: list[int] = []
    per_second: list[int] = []
    messages: list[int] = []
    purchased: list[int] = []
    for organization_id in sorted(needs.plan_limits):
        wallet = state.wallets.get(organization_id)
        plan = needs.catalog.get(wallet.plan_code) if wallet is not None else None
        if plan is None:
            continue
        state.plan_usage[organization_id] = PlanUsage(plan)
        if plan.concurrency is not None or plan.unlock_tiers:
            concurrent.append(organization_id)
        if plan.closed_requests_per_second is not None:
            per_second.append(organization_id)
        if plan.messages_per_12h:
            messages.append(organization_id)
        if plan.unlock_tiers:
            purchased.append(organization_id)
    usage = state.plan_usage
    if concurrent:
        for organization_id, count, slots in _active_holds.rows(conn, {"ids": concurrent}):
            plan_usage = usage[organization_id]
            plan_usage.in_flight = plan_usage.plan.in_flight(count, int(slots))
    if per_second:
        params = {"ids": per_second, "since": state.now - REQUEST_WINDOW}
        for organization_id, count, oldest in _closed_holds_since.rows(conn, params):
            usage[organization_id].closed_last_second = count
            usage[organization_id].oldest_closed = oldest
    if messages:
        params = {"ids": messages, "since": state.now - MESSAGE_WINDOW}
        for organization_id, model_class, count, oldest in _recent_holds.rows(conn, params):
            usage[organization_id].recent[model_class] = RecentCalls(count, oldest)
    if purchased:
        params = {"ids": purchased, "since": state.now - PURCHASE_WINDOW}
        for organization_id, total in _purchased.rows(conn, params):
            usage[organization_id].purchased = int(total)


def _load_keys(conn: Connection, needs: Needs, state: State) -> None:
    if not needs.keys:
        return
    for row in _keys.rows(conn, {"ids": sorted(needs.keys)}, state.lock):
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
    """Per key and window: lifetime spend at the window's start, and its first spend inside."""
    params: dict[str, Any] = {"ids": key_ids}
    for window in WINDOWS:
        params[f"start_{window.name}"] = window_start(now_second, window)
    result: dict[int, dict[Window, WindowMarks]] = {}
    for key_id, *values in _marks.rows(conn, params):
        result[key_id] = {
            window: WindowMarks(values[2 * i] or 0, values[2 * i + 1])
            for i, window in enumerate(WINDOWS)
        }
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
        row.slots,
        row.model_class,
    )

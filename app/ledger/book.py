"""The money moves of one write transaction, and how they are written back.

Jobs call ``post``, ``place_hold``, ``close_hold`` and ``bill`` on loaded state; the
Book keeps the new rows and the changed ones, and ``flush`` writes them in a few bulk
statements. The rules for lots live here and only here:

- a positive entry opens a lot (paying off any overdraft first);
- a negative entry with a lot takes from that lot (expiry, claw-back);
- a negative entry without one spends lots in consumption order (``ledger.lots``).

``ledger.verify`` replays entries with the same rules to prove the stored state.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Insert, Table, Update, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from app.audit import audit_t
from app.db import BulkInsert, Prebuilt, driver_json, driver_time, table
from app.events import BalanceChanged, Event, UsageRecorded
from app.ledger.lots import Lot, consume, consumption_key, opening_remaining
from app.ledger.state import (
    HoldState,
    KeyState,
    PromoState,
    State,
    TopUpState,
    WalletState,
    billing_t,
    holds_t,
    keys_t,
    lots_t,
    marks_t,
    periods_t,
    plan_subs_t,
    promo_codes_t,
    redemptions_t,
    usage_t,
    wallets,
)
from app.ledger.tables import HoldStatus, LedgerEntry
from app.money import amount_json
from app.pricing.book import ModelClass
from app.statements import receipts
from app.usage import rollups
from app.usage.tables import UsageRow
from app.webhooks import outbox
from app.webhooks.tables import EventType

entries_t = table(LedgerEntry)

_insert_entries = BulkInsert(
    entries_t,
    (
        "wallet_id",
        "version",
        "kind",
        "amount",
        "balance_after",
        "reference",
        "lot_id",
        "memo",
        "created_at",
    ),
)
_insert_usage = BulkInsert(usage_t, (*UsageRow._fields, "created_at"))
_insert_lots = insert(lots_t).returning(lots_t.c.id, sort_by_parameter_order=True)
_insert_holds = BulkInsert(
    holds_t,
    (
        "organization_id",
        "wallet_id",
        "api_key_id",
        "request_id",
        "amount",
        "slots",
        "model_class",
        "status",
        "created_at",
        "expires_at",
        "closed_at",
    ),
)


def _update_by_id(t: Table, *columns: str) -> Prebuilt[Update]:
    """An UPDATE of ``columns`` for executemany, keyed by ``b_id``."""
    values: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in columns}
    statement = update(t).where(t.c.id == bindparam("b_id")).values(values)
    return Prebuilt(lambda _dialect, _lock: statement)


_update_wallets = _update_by_id(wallets, "balance", "held", "version", "month", "month_spent")
_update_lots = _update_by_id(lots_t, "remaining")
# The writer owns these three key columns; settings are changed elsewhere.
_update_keys = _update_by_id(keys_t, "spent", "held", "last_used_at")
_update_holds = _update_by_id(holds_t, "status", "closed_at")
_update_top_ups = _update_by_id(
    billing_t,
    "status",
    "credits",
    "refunded",
    "payment_intent_id",
    "paid_lot_id",
    "bonus_lot_id",
    "failure_reason",
    "settled_at",
)


def _upsert_marks(dialect: str, _lock: bool) -> Insert:
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(marks_t)
    return statement.on_conflict_do_update(
        index_elements=[marks_t.c.api_key_id, marks_t.c.second],
        set_={"cumulative": statement.excluded.cumulative},
    )


_write_marks = Prebuilt(_upsert_marks)


@dataclass(slots=True)
class _Entry:
    wallet: WalletState
    version: int
    kind: str
    amount: int
    balance_after: int
    reference: str
    lot: Lot | None
    memo: str | None


@dataclass(slots=True)
class _Change:
    """A wallet's net change within one transaction: one push per wallet per commit."""

    wallet: WalletState
    delta: int
    reasons: list[str]


class Book:
    def __init__(self, state: State) -> None:
        self.state = state
        self.now = state.now
        self._entries: list[_Entry] = []
        self._new_lots: list[tuple[WalletState, Lot]] = []
        self._new_holds: list[HoldState] = []
        self._usage: list[UsageRow] = []
        self._changes: dict[int, _Change] = {}
        self._audit: list[dict[str, Any]] = []
        self._transactions: list[dict[str, Any]] = []
        self._redemptions: list[dict[str, Any]] = []
        # Receipts, each with the billing transaction (a row of ``_transactions``) it is for.
        self._receipts: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        self._notices: list[tuple[int, str, dict[str, Any]]] = []
        self.events: list[Event] = []
        # Organizations whose balance a debit left under their auto-reload threshold.
        self.low_balance: set[int] = set()

    # -- money -------------------------------------------------------------------------

    def post(
        self,
        wallet: WalletState,
        kind: str,
        amount: int,
        reference: str,
        *,
        memo: str | None = None,
        lot: Lot | None = None,
        expires_at: datetime | None = None,
    ) -> Lot | None:
        """Append one ledger entry; a credit opens a lot expiring at ``expires_at``, which
        is returned, as is the lot a targeted debit took from."""
        assert amount != 0, "a ledger entry moves money"
        assert wallet.lots is not None, "the job must declare that it moves this wallet's money"
        if amount > 0:
            assert lot is None
            lot = Lot(
                None,
                kind,
                amount,
                opening_remaining(amount, wallet.balance),
                expires_at,
                self.now,
                dirty=True,
            )
            insort(wallet.lots, lot, key=consumption_key)
            self._new_lots.append((wallet, lot))
        elif lot is not None:
            assert -amount <= lot.remaining, "a targeted debit takes at most what the lot holds"
            lot.remaining += amount
            lot.dirty = True
        else:
            consume(wallet.lots, -amount)
        wallet.balance += amount
        if amount < 0 and wallet.reload_below is not None and wallet.balance < wallet.reload_below:
            self.low_balance.add(wallet.organization_id)
        wallet.version += 1
        wallet.dirty = True
        self._entries.append(
            _Entry(wallet, wallet.version, kind, amount, wallet.balance, reference, lot, memo)
        )
        change = self._changes.get(wallet.id)
        if change is None:
            change = self._changes[wallet.id] = _Change(wallet, 0, [])
        change.delta += amount
        if kind not in change.reasons:
            change.reasons.append(kind)
        return lot

    # -- holds -------------------------------------------------------------------------

    def place_hold(
        self,
        wallet: WalletState,
        key: KeyState,
        request_id: str,
        amount: int,
        ttl: timedelta,
        *,
        slots: int = 0,
        model_class: str = ModelClass.STANDARD,
    ) -> None:
        """Reserve ``amount`` for a call; ``slots`` (its share of an open-model
        concurrency, 0 for a closed model's call) and ``model_class`` mark what a plan's
        limits count."""
        hold = HoldState(
            None,
            wallet.organization_id,
            wallet.id,
            key.id,
            request_id,
            amount,
            HoldStatus.ACTIVE,
            self.now,
            self.now + ttl,
            slots=slots,
            model_class=model_class,
        )
        self._new_holds.append(hold)
        self.state.holds[(wallet.organization_id, request_id)] = hold
        self._reserve(wallet, key, amount)
        usage = self.state.plan_usage.get(wallet.organization_id)
        if usage is not None:  # the next authorization of the batch counts this one
            usage.placed(hold)

    def close_hold(self, hold: HoldState, status: HoldStatus) -> None:
        """Settle, release or expire an active hold: its amount is no longer reserved."""
        assert hold.status == HoldStatus.ACTIVE
        hold.status, hold.closed_at, hold.dirty = status, self.now, True
        usage = self.state.plan_usage.get(hold.organization_id)
        if usage is not None:
            usage.closed(hold)
        wallet = self.state.wallets[hold.organization_id]
        self._reserve(wallet, self.state.keys[hold.api_key_id], -hold.amount)

    @staticmethod
    def _reserve(wallet: WalletState, key: KeyState, amount: int) -> None:
        wallet.held += amount
        key.held += amount
        wallet.dirty = key.dirty = True

    # -- usage -------------------------------------------------------------------------

    def bill(self, wallet: WalletState, key: KeyState, usage: UsageRow) -> None:
        """Store a usage record and charge its cost, even past zero: the call happened."""
        self._usage.append(usage)
        key.last_used_at = self.now
        key.dirty = True
        cost = usage.cost
        if cost > 0:
            key.spent += cost
            key.billed = True
            wallet.month_spent += cost
            self.post(wallet, "usage", -cost, f"usage:{usage.request_id}")
            cap = wallet.spend_cap
            if cap is not None and wallet.month_spent - cost < cap <= wallet.month_spent:
                self._cap_reached(wallet, cap)
        self.events.append(
            UsageRecorded(
                wallet.organization_id,
                key.id,
                usage.request_id,
                usage.model,
                usage.action,
                usage.status,
                cost,
                self.now,
            )
        )

    def _cap_reached(self, wallet: WalletState, cap: int) -> None:
        """This bill took the month's spend to the cap: once a month (a lowered cap that
        is already passed is not reached by any bill)."""
        self.notify(
            wallet.organization_id,
            EventType.SPEND_CAP_REACHED,
            {
                "month": f"{self.now:%Y-%m}",
                "monthlyLimit": amount_json(cap),
                "monthSpent": amount_json(wallet.month_spent),
            },
        )

    def notify(self, organization_id: int, type_: str, data: dict[str, Any]) -> None:
        """A webhook event (``app.webhooks.outbox``) that commits with this transaction."""
        self._notices.append((organization_id, type_, data))

    def audit(
        self,
        organization_id: int,
        actor: str,
        action: str,
        target: str,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        """An audit event (``app.audit``) that commits with this transaction's money."""
        self._audit.append(
            {
                "organization_id": organization_id,
                "actor": actor,
                "action": action,
                "target": target,
                "before": before,
                "after": after,
                "created_at": self.now,
            }
        )

    def record(
        self, organization_id: int, kind: str, amount: int, *, actor: str, **columns: Any
    ) -> dict[str, Any]:
        """A settled billing transaction (``app.payments.tables``) for money this
        transaction moves: refunds, adjustments, expiry. Its row, for ``receipt``."""
        row = {
            "organization_id": organization_id,
            "kind": kind,
            "status": "succeeded",
            "amount": amount,
            "credits": amount,
            "actor": actor,
            "created_at": self.now,
            "settled_at": self.now,
        } | columns
        self._transactions.append(row)
        return row

    def receipt(
        self,
        organization_id: int,
        kind: str,
        *,
        transaction: dict[str, Any] | None = None,
        **columns: Any,
    ) -> None:
        """A receipt (``app.statements``) issued with this transaction's money: for an
        existing billing transaction (``transaction_id`` among ``columns``), for one
        ``record`` returned (``transaction``), or for none (a plan invoice)."""
        row = {"organization_id": organization_id, "kind": kind, "issued_at": self.now} | columns
        self._receipts.append((row, transaction))

    def redeem(self, promo: PromoState, organization_id: int, actor: str) -> int:
        """Count one redemption of ``promo`` by the organization: its number, from 1."""
        promo.redemptions += 1
        promo.by_org[organization_id] = promo.by_org.get(organization_id, 0) + 1
        promo.dirty = True
        self._redemptions.append(
            {
                "promo_code_id": promo.id,
                "organization_id": organization_id,
                "number": promo.redemptions,
                "actor": actor,
                "created_at": self.now,
            }
        )
        return promo.redemptions

    # -- write back --------------------------------------------------------------------

    def flush(self, conn: Connection) -> None:
        """Write every change of the transaction in bulk, then queue the pushes."""
        if self._new_lots:
            result = conn.execute(
                _insert_lots,
                [
                    {
                        "wallet_id": wallet.id,
                        "source": lot.source,
                        "original": lot.original,
                        "remaining": lot.remaining,
                        "expires_at": lot.expires_at,
                        "created_at": lot.created_at,
                    }
                    for wallet, lot in self._new_lots
                ],
            )
            for (_, lot), (lot_id,) in zip(self._new_lots, result, strict=True):
                lot.id = lot_id
        to_driver = driver_time(conn)
        now = to_driver(self.now)
        _insert_entries.execute(
            conn,
            [
                (
                    e.wallet.id,
                    e.version,
                    e.kind,
                    e.amount,
                    e.balance_after,
                    e.reference,
                    e.lot.id if e.lot else None,
                    e.memo,
                    now,
                )
                for e in self._entries
            ],
        )
        # The last two fields need converting for the driver; the rest go as they are.
        _insert_usage.execute(
            conn,
            [
                (
                    *u[:-2],
                    driver_json(u.tags),
                    now if u.occurred_at is self.now else to_driver(u.occurred_at),
                    now,
                )
                for u in self._usage
            ],
        )
        # Same transaction as the usage: charts never drift.
        rollups.write(conn, self._usage, self.now)
        self._update_rows(conn)
        _insert_holds.execute(
            conn,
            [
                (
                    h.organization_id,
                    h.wallet_id,
                    h.api_key_id,
                    h.request_id,
                    h.amount,
                    h.slots,
                    str(h.model_class),
                    str(h.status),
                    now if h.created_at is self.now else to_driver(h.created_at),
                    to_driver(h.expires_at),
                    None if h.closed_at is None else to_driver(h.closed_at),
                )
                for h in self._new_holds
            ],
        )
        if self._audit:
            conn.execute(insert(audit_t), self._audit)
        self._flush_transactions(conn)
        for organization_id, type_, data in self._notices:
            outbox.record(conn, organization_id, type_, data, self.now)
        self._flush_plans(conn)
        self._flush_promos(conn)
        marks = [
            {"api_key_id": k.id, "second": int(self.now.timestamp()), "cumulative": k.spent}
            for k in self.state.keys.values()
            if k.billed
        ]
        _write_marks.execute_many(conn, marks)
        for change in self._changes.values():
            wallet = change.wallet
            self.events.append(
                BalanceChanged(
                    wallet.organization_id,
                    wallet.id,
                    wallet.balance,
                    change.delta,
                    ",".join(change.reasons),
                    wallet.version,
                    self.now,
                )
            )

    def _flush_transactions(self, conn: Connection) -> None:
        """Billing transactions in bulk, but those with a receipt one by one: the receipt
        needs their id. Then the receipts, numbered."""
        with_receipt = {id(t) for _, t in self._receipts if t is not None}
        plain = [t for t in self._transactions if id(t) not in with_receipt]
        if plain:
            conn.execute(insert(billing_t), plain)
        for row, transaction in self._receipts:
            if transaction is not None:
                row["transaction_id"] = conn.execute(
                    insert(billing_t).values(transaction).returning(billing_t.c.id)
                ).scalar_one()
        if self._receipts:
            receipts.issue(conn, [row for row, _ in self._receipts])

    def _flush_plans(self, conn: Connection) -> None:
        """Subscriptions and periods that renewals and plan changes moved (rare: plain
        statements)."""
        for plan in self.state.plans.values():
            if not plan.dirty:
                continue
            values = {
                "plan_code": plan.plan_code,
                "status": plan.status,
                "provider": plan.provider,
                "anchor": plan.anchor,
                "period_number": plan.period_number,
                "current_period_start": plan.period_start,
                "current_period_end": plan.period_end,
                "next_plan_code": plan.next_plan_code,
                "stripe_subscription_id": plan.stripe_subscription_id,
                "updated_at": self.now,
            }
            where = plan_subs_t.c.organization_id == plan.organization_id
            if plan.exists:
                conn.execute(update(plan_subs_t).where(where).values(values))
            else:
                conn.execute(
                    insert(plan_subs_t).values(
                        organization_id=plan.organization_id, created_at=self.now, **values
                    )
                )
            if plan.close_open_period and plan.open_period_id is not None:
                conn.execute(
                    update(periods_t)
                    .where(periods_t.c.id == plan.open_period_id)
                    .values(closed_at=self.now)
                )
            period = plan.new_period
            if period is not None:
                conn.execute(
                    insert(periods_t).values(
                        organization_id=plan.organization_id,
                        plan_code=period.plan_code,
                        period_start=period.start,
                        period_end=period.end,
                        allocation=period.allocation,
                        allocation_lot_id=_lot_id(period.allocation_lot),
                        rollover_lot_id=_lot_id(period.rollover_lot),
                    )
                )

    def _flush_promos(self, conn: Connection) -> None:
        """Promo codes redeemed, and their redemptions (rare: plain statements)."""
        for promo in self.state.promos.values():
            if promo.dirty:
                conn.execute(
                    update(promo_codes_t)
                    .where(promo_codes_t.c.id == promo.id)
                    .values(redemptions=promo.redemptions)
                )
        if self._redemptions:
            conn.execute(insert(redemptions_t), self._redemptions)

    def _update_rows(self, conn: Connection) -> None:
        state = self.state
        # New lots were inserted with their final remaining amount.
        new_lots = {id(lot) for _, lot in self._new_lots}
        for statement, rows in (
            (
                _update_wallets,
                [
                    {
                        "b_id": w.id,
                        "balance": w.balance,
                        "held": w.held,
                        "version": w.version,
                        "month": w.month,
                        "month_spent": w.month_spent,
                    }
                    for w in state.wallets.values()
                    if w.dirty
                ],
            ),
            (
                _update_lots,
                [
                    {"b_id": lot.id, "remaining": lot.remaining}
                    for w in state.wallets.values()
                    for lot in w.lots or ()
                    if lot.dirty and id(lot) not in new_lots
                ],
            ),
            (
                _update_keys,
                [
                    {"b_id": k.id, "spent": k.spent, "held": k.held, "last_used_at": k.last_used_at}
                    for k in state.keys.values()
                    if k.dirty
                ],
            ),
            (
                _update_holds,
                [
                    {"b_id": h.id, "status": h.status, "closed_at": h.closed_at}
                    for h in state.holds.values()
                    if h.dirty and h.id is not None
                ],
            ),
            (
                _update_top_ups,
                [_top_up_row(t) for t in state.top_ups.values() if t.dirty],
            ),
        ):
            statement.execute_many(conn, rows)


def _lot_id(lot: Lot | None) -> int | None:
    return None if lot is None else lot.id


def _top_up_row(top_up: TopUpState) -> dict[str, Any]:
    paid, bonus = top_up.paid_lot, top_up.bonus_lot
    return {
        "b_id": top_up.id,
        "status": top_up.status,
        "credits": top_up.credits_bought + top_up.bonus if top_up.status == "succeeded" else 0,
        "refunded": top_up.refunded,
        "payment_intent_id": top_up.payment_intent_id,
        "paid_lot_id": paid.id if paid is not None else top_up.paid_lot_id,
        "bonus_lot_id": bonus.id if bonus is not None else top_up.bonus_lot_id,
        "failure_reason": top_up.failure_reason,
        "settled_at": top_up.settled_at,
    }

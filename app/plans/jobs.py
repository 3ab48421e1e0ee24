"""Writer jobs for plans: a period begins, the one before it closes.

An organization's first plan grants the plan's trial allowance (``trial_grant``: ByteSpike
Free's), once: the subscription row it leaves behind, whatever plans follow, makes every
later period a later one.

Closing a period carries what the rollover policy allows of its unused allocation into
a ``rollover`` lot expiring with the next period (one cycle), expires the rest and what
rolled into it, and settles overage: on a plan that allows it, a negative balance is
usage past the allocation, owed in USD at the plan's rate, and an ``overage`` entry
brings the wallet back to zero so the next allocation arrives whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.ledger.book import Book
from app.ledger.jobs import credits_expired
from app.ledger.lots import Lot
from app.ledger.state import Needs, Period, PlanState, WalletState
from app.ledger.tables import EntryKind
from app.money import CREDITS_PER_USD, amount_json, div_round_half_up
from app.payments.provider import SubscriptionInvoice, from_minor_units
from app.payments.tables import TransactionKind, TransactionStatus
from app.plans.catalog import Plan
from app.plans.tables import SubscriptionStatus
from app.statements.tables import ReceiptKind
from app.webhooks.tables import EventType

PLAN_CHANGE = "plan.change"


def plan_change(
    before: tuple[str | None, str | None], after: tuple[str | None, str | None], effective: datetime
) -> dict[str, dict[str, Any]]:
    """A plan change's audit values: (plan, next plan) codes before and after, and when
    the change applies (a scheduled downgrade: at the period's end)."""
    return {
        "before": {"plan": before[0], "next_plan": before[1]},
        "after": {"plan": after[0], "next_plan": after[1], "effective_at": effective.isoformat()},
    }


def plan_changed(
    before: tuple[str | None, str | None], after: tuple[str | None, str | None], effective: datetime
) -> dict[str, Any]:
    """The ``plan.changed`` webhook event's data, from the values ``plan_change`` takes."""
    return {
        "plan": after[0],
        "nextPlan": after[1],
        "previousPlan": before[0],
        "previousNextPlan": before[1],
        "effectiveAt": effective.isoformat(),
    }


@dataclass(slots=True)
class StartPeriod:
    """Begin period ``number`` of ``plan`` at ``start``, closing the open one first.

    Idempotent: a period that has already begun at or after ``start`` makes it a no-op,
    so a renewal run twice (or on two instances) grants once. A period a Stripe invoice
    paid for (``stripe_subscription_id``) is a no-op only after a period of the same
    subscription: a new subscription replaces the plan before it even if that plan's
    renewal began after the subscription's own start (its first period then begins just
    after that renewal, keeping periods in order).
    """

    organization_id: int
    plan: Plan
    # The plan whose period closes (its rollover and overage rules); None for the first.
    closing: Plan | None
    anchor: datetime
    number: int
    start: datetime
    end: datetime
    provider: str | None
    # Who the change is by, for the audit log when the plan changes (a renewal of the
    # same plan is no change).
    actor: str
    next_plan_code: str | None = None
    # The Stripe subscription whose invoice paid for this period (provider "stripe").
    stripe_subscription_id: str | None = None
    # That invoice: the period's receipt.
    invoice: SubscriptionInvoice | None = None

    def needs(self, needs: Needs) -> None:
        needs.orgs.add(self.organization_id)
        needs.orgs_with_lots.add(self.organization_id)
        needs.plans.add(self.organization_id)

    def apply(self, book: Book) -> bool:
        plan = book.state.plans.get(self.organization_id)
        start = self.start
        if plan is not None and plan.open_period_id is not None and plan.period_start >= start:
            stripe_id = self.stripe_subscription_id
            if stripe_id is None or plan.stripe_subscription_id == stripe_id:
                return False
            start = plan.period_start + timedelta(seconds=1)
        was: tuple[str | None, str | None] = (None, None)
        if plan is not None and plan.status == SubscriptionStatus.ACTIVE:
            was = (plan.plan_code, plan.next_plan_code)
        becomes = (self.plan.code, self.next_plan_code)
        if was[0] != self.plan.code:
            book.audit(
                self.organization_id,
                self.actor,
                PLAN_CHANGE,
                f"organization:{self.organization_id}",
                **plan_change(was, becomes, start),
            )
            book.notify(
                self.organization_id, EventType.PLAN_CHANGED, plan_changed(was, becomes, start)
            )
        else:
            renewed = {
                "plan": self.plan.code,
                "periodStart": start.isoformat(),
                "periodEnd": self.end.isoformat(),
                "allocation": amount_json(self.plan.allocation),
            }
            book.notify(self.organization_id, EventType.PERIOD_RENEWED, renewed)
        wallet = book.state.wallets[self.organization_id]
        reference = f"plan:{self.plan.code}:{start:%Y-%m-%dT%H:%M:%SZ}"
        rollover: Lot | None = None
        if plan is not None and self.closing is not None:
            rollover = _close(book, wallet, plan, self.closing, self.end, reference)
        allocation = None
        if self.plan.allocation:
            allocation = book.post(
                wallet,
                EntryKind.PLAN_ALLOCATION,
                self.plan.allocation,
                reference,
                expires_at=self.end,
            )
            book.record(
                self.organization_id,
                TransactionKind.PLAN_ALLOCATION,
                self.plan.allocation,
                actor="plan",
                memo=self.plan.name,
            )
        if plan is None and self.plan.trial_grant:
            _grant_trial(book, wallet, self.plan)
        if plan is None:
            plan = book.state.plans[self.organization_id] = PlanState(
                self.organization_id,
                self.plan.code,
                SubscriptionStatus.ACTIVE,
                self.provider,
                self.anchor,
                self.number,
                start,
                self.end,
                None,
                exists=False,
            )
        plan.close_open_period = plan.open_period_id is not None
        plan.plan_code, plan.status, plan.provider = (
            self.plan.code,
            SubscriptionStatus.ACTIVE,
            self.provider,
        )
        plan.anchor, plan.period_number = self.anchor, self.number
        plan.period_start, plan.period_end = start, self.end
        plan.next_plan_code = self.next_plan_code
        plan.stripe_subscription_id = self.stripe_subscription_id
        plan.new_period = Period(
            self.plan.code, start, self.end, self.plan.allocation, allocation, rollover
        )
        plan.dirty = True
        if self.invoice is not None:
            _invoice_receipt(book, self.organization_id, self.plan, self.invoice, self.provider)
        return True


def _invoice_receipt(
    book: Book,
    organization_id: int,
    plan: Plan,
    invoice: SubscriptionInvoice,
    provider: str | None,
) -> None:
    """The receipt of the invoice that paid for the period: its amount, in its currency."""
    currency = invoice.currency.upper()
    book.receipt(
        organization_id,
        ReceiptKind.PLAN_INVOICE,
        provider=provider,
        provider_reference=invoice.invoice_id,
        description=f"{plan.name}: {invoice.period_start:%Y-%m-%d} to "
        f"{invoice.period_end:%Y-%m-%d}",
        currency=currency,
        amount=from_minor_units(invoice.amount_paid, currency),
        tax=None if invoice.tax is None else from_minor_units(invoice.tax, currency),
        credits=plan.allocation,
    )


def _grant_trial(book: Book, wallet: WalletState, plan: Plan) -> None:
    memo = f"{plan.name}: trial allowance for a new organization"
    book.post(wallet, EntryKind.TRIAL, plan.trial_grant, f"trial:{plan.code}", memo=memo)
    book.record(
        wallet.organization_id, TransactionKind.TRIAL, plan.trial_grant, actor="plan", memo=memo
    )


def _open_lot(wallet: WalletState, lot_id: int | None) -> Lot | None:
    assert wallet.lots is not None
    return next((lot for lot in wallet.lots if lot.id == lot_id and lot.remaining), None)


def _close(
    book: Book, wallet: WalletState, plan: PlanState, closing: Plan, end: datetime, reference: str
) -> Lot | None:
    """Close the open period; the rollover lot opened for the next one, if any."""
    allocation = _open_lot(wallet, plan.allocation_lot_id)
    carried = _open_lot(wallet, plan.rollover_lot_id)
    rollover = None
    carry = min(allocation.remaining, closing.rollover_cap()) if allocation else 0
    if allocation is not None and carry:
        book.post(wallet, EntryKind.ROLLOVER, -carry, reference, lot=allocation)
        rollover = book.post(wallet, EntryKind.ROLLOVER, carry, reference, expires_at=end)
    expired = 0
    for lot in (allocation, carried):
        if lot is not None and lot.remaining:
            expired += lot.remaining
            book.post(wallet, EntryKind.EXPIRY, -lot.remaining, f"lot:{lot.id}", lot=lot)
    if expired:
        book.record(wallet.organization_id, TransactionKind.EXPIRY, -expired, actor="plan")
        credits_expired(book, wallet.organization_id, expired, "plan_period")
    rate = closing.overage_usd_per_credit
    if rate is not None and wallet.balance < 0:
        used = -wallet.balance
        book.post(wallet, EntryKind.OVERAGE, used, reference)
        book.record(
            wallet.organization_id,
            TransactionKind.OVERAGE,
            # Micro plan credits times micro-USD per credit: micro-USD, rounded once.
            div_round_half_up(used * rate, CREDITS_PER_USD),
            actor="plan",
            status=TransactionStatus.PENDING,
            credits=used,
            settled_at=None,
            memo=f"{closing.name}: usage past the allocation",
        )
    return rollover

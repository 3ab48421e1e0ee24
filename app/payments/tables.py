"""Billing transactions, each organization's billing account, Stripe events seen, and
the fake provider's saved cards."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from app.db import credits_field, time_field
from app.money import CREDITS_PER_USD


class TransactionKind(StrEnum):
    """Every wallet movement that is not an API call has one of these kinds."""

    TOP_UP = "top_up"
    AUTO_RELOAD = "auto_reload"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    GRANT = "grant"  # an admin's grant or a promo code's credits (``EntryKind.GRANT``)
    EXPIRY = "expiry"
    PLAN_ALLOCATION = "plan_allocation"
    TRIAL = "trial"  # a plan's trial allowance (``EntryKind.TRIAL``)
    # Usage past a plan's allocation, owed in USD at its overage rate (``amount``).
    OVERAGE = "overage"


PAYMENT_KINDS = (TransactionKind.TOP_UP, TransactionKind.AUTO_RELOAD)


class TransactionStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_ONE_PENDING_RELOAD = "kind = 'auto_reload' AND status = 'pending'"


class BillingTransaction(SQLModel, table=True):
    """A top-up (paid by card or by auto-reload), a refund, an adjustment or an expiry.

    A top-up starts ``pending`` and is settled by its provider's webhook; the rest are
    written ``succeeded`` by the job that moves their money, in the same transaction.
    """

    __tablename__ = "billing_transactions"
    __table_args__ = (
        Index("ix_billing_transactions_page", "organization_id", "created_at", "id"),
        # Auto-reload charges one at a time per organization, across every instance.
        Index(
            "uq_billing_transactions_one_pending_reload",
            "organization_id",
            unique=True,
            sqlite_where=text(_ONE_PENDING_RELOAD),
            postgresql_where=text(_ONE_PENDING_RELOAD),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    kind: str = Field(max_length=32)
    status: str = Field(max_length=16)
    # Top-ups: the USD paid; refunds: the USD refunded; others: the ledger amount.
    amount: int = credits_field()
    # Top-ups: the wallet's credits the payment buys, before its bonus: ``amount`` on a
    # USD wallet, a credit pack's (or auto-reload's converted) plan credits on another.
    credits_bought: int = credits_field(default=0)
    # Top-ups: the bonus the quote promised, and its percent in basis points (1120 = 11.2%).
    bonus: int = credits_field(default=0)
    bonus_basis_points: int = Field(default=0)
    # Credits that reached the wallet (negative when taken from it).
    credits: int = credits_field(default=0)
    # Top-ups: how much of the payment has been refunded so far.
    refunded: int = credits_field(default=0)
    # Refunds: credits owed back that were already spent, so could not be taken.
    shortfall: int = credits_field(default=0)
    provider: str | None = Field(default=None, max_length=16)
    payment_intent_id: str | None = Field(default=None, unique=True, max_length=255)
    checkout_session_id: str | None = Field(default=None, unique=True, max_length=255)
    # Refunds: the top-up refunded.
    top_up_id: int | None = Field(default=None, foreign_key="billing_transactions.id")
    # Top-ups: the lots the payment and its bonus opened.
    paid_lot_id: int | None = Field(default=None, foreign_key="credit_lots.id")
    bonus_lot_id: int | None = Field(default=None, foreign_key="credit_lots.id")
    failure_reason: str | None = Field(default=None, max_length=500)
    actor: str = Field(max_length=200)
    memo: str | None = Field(default=None, max_length=500)
    created_at: datetime = time_field()
    settled_at: datetime | None = time_field(default=None, nullable=True)


class BillingAccount(SQLModel, table=True):
    """An organization's payment details and auto-reload settings (Bytez's defaults)."""

    __tablename__ = "billing_accounts"

    organization_id: int = Field(primary_key=True, foreign_key="organizations.id")
    customer_id: str | None = Field(default=None, max_length=255)
    # The saved card auto-reload, autoScale and overage billing charge: a payment's card
    # when none is chosen (or the chosen one was declined), else the one chosen
    # (``app.payments.cards``). The provider keeps the list of saved cards.
    payment_method_id: str | None = Field(default=None, max_length=255)
    auto_reload_enabled: bool = Field(default=False)
    auto_reload_threshold: int = credits_field(default=3 * CREDITS_PER_USD)
    auto_reload_amount: int = credits_field(default=10 * CREDITS_PER_USD)
    auto_reload_monthly_max: int = credits_field(default=100 * CREDITS_PER_USD)
    # Why the last automatic charge failed. Auto-reload waits until the settings are
    # saved again or a payment saves a card, rather than retry a declined card on
    # every debit.
    auto_reload_failure: str | None = Field(default=None, max_length=500)
    # autoScale for calls that do not say (``app.gateway.auto_scale``): its purchases
    # count against auto_reload_monthly_max with the reloads.
    auto_scale_default: bool = Field(default=False)
    # Purchased credits expire this many days after purchase (Bytez: 28); None = never
    # (ByteSpike). Bonus credits expire with the purchase they came with.
    purchase_expiry_days: int | None = Field(default=None)


class StripeEvent(SQLModel, table=True):
    """Each webhook event once: Stripe delivers at least once, so repeats are answered
    without being processed again."""

    __tablename__ = "stripe_events"

    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100)
    received_at: datetime = time_field()
    processed_at: datetime | None = time_field(default=None, nullable=True)


class FakeCard(SQLModel, table=True):
    """A card the fake provider of local development saved for a customer, as Stripe
    keeps a customer's PaymentMethods; removing it deletes the row."""

    __tablename__ = "fake_cards"

    id: int | None = Field(default=None, primary_key=True)
    payment_method_id: str = Field(unique=True, max_length=255)
    customer_id: str = Field(index=True, max_length=255)
    brand: str = Field(max_length=32)
    last4: str = Field(max_length=4)
    exp_month: int
    exp_year: int

"""The receipts table: one row per payment that succeeded and per refund, never changed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import credits_field, time_field


class ReceiptKind(StrEnum):
    """What a receipt is for."""

    TOP_UP = "top_up"
    AUTO_RELOAD = "auto_reload"  # auto-reload's and autoScale's purchases
    PLAN_INVOICE = "plan_invoice"  # a plan's period, paid by a Stripe invoice
    OVERAGE = "overage"  # a closed period's overage, charged to the saved card
    REFUND = "refund"


class Receipt(SQLModel, table=True):
    """Written in the transaction that moves the money it is for, numbered 1, 2, 3... per
    organization under the wallet's lock (``app.statements.receipts.issue``)."""

    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("organization_id", "sequence"),
        Index("ix_receipts_page", "organization_id", "issued_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    sequence: int
    # "ACME-000001": the slug at issue and the sequence, kept as printed.
    number: str = Field(max_length=80)
    kind: str = Field(max_length=32)
    # The billing transaction paid or refunded (none for a plan invoice).
    transaction_id: int | None = Field(
        default=None, foreign_key="billing_transactions.id", unique=True
    )
    # Refunds: the receipt of the payment refunded.
    refund_of_id: int | None = Field(default=None, foreign_key="receipts.id")
    provider: str | None = Field(default=None, max_length=16)
    # The provider's object: a PaymentIntent ("pi_..."), an invoice ("in_...").
    provider_reference: str | None = Field(default=None, max_length=255)
    description: str = Field(max_length=300)
    # What was paid (or refunded), tax included, in millionths of ``currency``.
    currency: str = Field(max_length=3)
    amount: int = credits_field()
    # The tax within ``amount`` when Stripe Tax computed one; None otherwise.
    tax: int | None = credits_field(default=None, nullable=True)
    # The wallet's credits it delivered (negative: taken back by a refund), and the bonus.
    credits: int = credits_field(default=0)
    bonus: int = credits_field(default=0)
    card_brand: str | None = Field(default=None, max_length=32)
    card_last4: str | None = Field(default=None, max_length=4)
    issued_at: datetime = time_field()

"""Wallet, ledger entry, credit lot and hold tables."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import credits_field, time_field


class EntryKind(StrEnum):
    """Why a ledger entry moved money."""

    TOP_UP = "top_up"
    BONUS = "bonus"
    PLAN_ALLOCATION = "plan_allocation"
    ROLLOVER = "rollover"
    # A plan's trial allowance, granted once to an organization whose first plan it is.
    TRIAL = "trial"
    USAGE = "usage"
    # Usage past the allocation on a plan with overage, billed in USD when the period
    # closes: this entry brings the wallet back to zero for the next allocation.
    OVERAGE = "overage"
    EXPIRY = "expiry"
    REFUND = "refund"
    # An operator's correction (``creditgraph adjust``), either sign.
    ADJUSTMENT = "adjustment"
    # Credits given, not bought: an admin's grant or a promo code's (``app.grants``).
    GRANT = "grant"
    REVERSAL = "reversal"


class HoldStatus(StrEnum):
    ACTIVE = "active"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


class Wallet(SQLModel, table=True):
    """One per organization. Every counter here is derivable from entries and holds."""

    __tablename__ = "wallets"

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", unique=True)
    balance: int = credits_field(default=0)
    # Sum of active holds: reserved for calls in flight.
    held: int = credits_field(default=0)
    # Bumped by every entry; entries carry it, so it orders them and dates pushes.
    version: int = Field(default=0)
    # Usage billed in the calendar month (UTC) ``month`` (YYYYMM), for the spend cap.
    month: int = Field(default=0)
    month_spent: int = credits_field(default=0)


class LedgerEntry(SQLModel, table=True):
    """An append-only movement of credits. Never updated, never deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("wallet_id", "version"),
        # A statement's month of a wallet's entries, and its balance at a time.
        Index("ix_ledger_entries_wallet_time", "wallet_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    wallet_id: int = Field(foreign_key="wallets.id")
    version: int
    kind: str = Field(max_length=32)
    amount: int = credits_field()
    balance_after: int = credits_field()
    # What caused it: "usage:<request id>", "lot:<id>", "top_up:<id>", ...
    reference: str = Field(max_length=300)
    # A credit creates this lot; an expiry or claw-back takes from it. Usage debits
    # have none: they consume lots in the order ``ledger.lots.consumption_order``.
    lot_id: int | None = Field(default=None, foreign_key="credit_lots.id")
    memo: str | None = Field(default=None, max_length=500)
    created_at: datetime = time_field()


class CreditLot(SQLModel, table=True):
    """Credits granted together, with one expiry; spent soonest-expiring first."""

    __tablename__ = "credit_lots"
    __table_args__ = (Index("ix_credit_lots_open", "wallet_id", "remaining"),)

    id: int | None = Field(default=None, primary_key=True)
    wallet_id: int = Field(foreign_key="wallets.id")
    source: str = Field(max_length=32)
    original: int = credits_field()
    remaining: int = credits_field()
    expires_at: datetime | None = time_field(default=None, nullable=True)
    created_at: datetime = time_field()


class Hold(SQLModel, table=True):
    """Credits reserved by an authorization until its usage record settles it."""

    __tablename__ = "holds"
    __table_args__ = (
        UniqueConstraint("organization_id", "request_id"),
        Index("ix_holds_active_expiry", "status", "expires_at"),
        # A plan's concurrency counts the org's active holds; its message windows, the
        # holds placed in the last 12 hours (by model class).
        Index("ix_holds_org_status", "organization_id", "status"),
        Index("ix_holds_org_created", "organization_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    wallet_id: int = Field(foreign_key="wallets.id")
    api_key_id: int = Field(foreign_key="api_keys.id")
    request_id: str = Field(max_length=200)
    amount: int = credits_field()
    # An open model's call: its share of a plan's concurrency (``ModelPrice.slots``,
    # Bytez); 0 for a closed model's, which a plan's requests per second count instead.
    slots: int = Field(default=0)
    # The model's class in the price book: what its call weighs in a plan's message window.
    model_class: str = Field(default="standard", max_length=16)
    status: str = Field(default=HoldStatus.ACTIVE, max_length=16)
    created_at: datetime = time_field()
    expires_at: datetime = time_field()
    closed_at: datetime | None = time_field(default=None, nullable=True)

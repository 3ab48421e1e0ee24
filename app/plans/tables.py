"""Which plan each organization is on, and the periods it has been granted."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import credits_field, time_field


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    # Waiting for the first payment of a paid plan (Stripe Checkout in subscription mode).
    INCOMPLETE = "incomplete"
    CANCELED = "canceled"


class PlanSubscription(SQLModel, table=True):
    """An organization's plan. Periods count from ``anchor``; ``period_number`` is the
    current one (0 is the first)."""

    __tablename__ = "plan_subscriptions"

    organization_id: int = Field(primary_key=True, foreign_key="organizations.id")
    plan_code: str = Field(max_length=64)
    status: str = Field(max_length=16)
    # "stripe" when Stripe bills it (its invoices grant the periods), else None.
    provider: str | None = Field(default=None, max_length=16)
    stripe_subscription_id: str | None = Field(default=None, unique=True, max_length=255)
    anchor: datetime = time_field()
    period_number: int = Field(default=0)
    current_period_start: datetime = time_field()
    current_period_end: datetime = time_field()
    # A downgrade waits for the period's end (the documented rule in app/plans/service.py).
    next_plan_code: str | None = Field(default=None, max_length=64)
    created_at: datetime = time_field()
    updated_at: datetime = time_field()


class PlanPeriod(SQLModel, table=True):
    """One granted period: its allocation lot and what rolled over into it. Unique per
    organization and start, so a renewal that runs twice grants once."""

    __tablename__ = "plan_periods"
    __table_args__ = (UniqueConstraint("organization_id", "period_start"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    plan_code: str = Field(max_length=64)
    period_start: datetime = time_field()
    period_end: datetime = time_field()
    allocation: int = credits_field()
    allocation_lot_id: int | None = Field(default=None, foreign_key="credit_lots.id")
    rollover_lot_id: int | None = Field(default=None, foreign_key="credit_lots.id")
    # Set when the period ended: its rollover carried, the rest expired, overage billed.
    closed_at: datetime | None = time_field(default=None, nullable=True)

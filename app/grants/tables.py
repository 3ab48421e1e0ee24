"""Promo codes and their redemptions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import credits_field, time_field


class PromoCode(SQLModel, table=True):
    """A code an operator made: each redemption grants ``amount`` as a new lot."""

    __tablename__ = "promo_codes"
    __table_args__ = (
        # The writer checks the limit under the row's lock; the database refuses too.
        CheckConstraint(
            "max_redemptions IS NULL OR redemptions <= max_redemptions",
            name="ck_promo_codes_within_limit",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Normalized (``grants.promos.normalize``): codes match whatever their case.
    code: str = Field(unique=True, max_length=64)
    # Millionths of ``unit``: USD credits ("usd") or plan credits ("credit"); only wallets
    # counting that unit may redeem it.
    amount: int = credits_field()
    unit: str = Field(max_length=16)
    # The credits it grants expire this many days after the redemption; None: never.
    credits_expire_days: int | None = Field(default=None)
    max_redemptions: int | None = Field(default=None)  # None: no limit
    per_organization: int = Field(default=1)
    # No redemption from then on; None: it never expires.
    expires_at: datetime | None = time_field(default=None, nullable=True)
    # How many times it has been redeemed: the writer's counter, checked by verify.
    redemptions: int = Field(default=0)
    created_by: str = Field(max_length=200)
    created_at: datetime = time_field()


class PromoRedemption(SQLModel, table=True):
    """One redemption: its GRANT entry's reference is ``promo:<code>:<number>``."""

    __tablename__ = "promo_redemptions"
    __table_args__ = (
        # ``number`` counts the code's redemptions from 1: two transactions can never
        # both take the last one.
        UniqueConstraint("promo_code_id", "number"),
        Index("ix_promo_redemptions_org", "promo_code_id", "organization_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    promo_code_id: int = Field(foreign_key="promo_codes.id")
    organization_id: int = Field(foreign_key="organizations.id")
    number: int
    actor: str = Field(max_length=200)
    created_at: datetime = time_field()

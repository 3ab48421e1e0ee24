"""The organization table."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db import credits_field, time_field


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, max_length=64)
    name: str = Field(max_length=200)
    # Which price-book rate card bills this organization's usage.
    rate_card: str = Field(default="standard", max_length=64)
    # Hard cap on usage per calendar month (UTC), in credits; None = no cap.
    spend_cap_monthly: int | None = credits_field(default=None, nullable=True)
    created_at: datetime = time_field()

"""The usage record table."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import credits_field, time_field


class UsageStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class UsageRecord(SQLModel, table=True):
    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("organization_id", "request_id"),
        Index("ix_usage_org_time", "organization_id", "created_at", "id"),
        Index("ix_usage_key_time", "api_key_id", "created_at"),
        # The usage log's filters, newest first, on the index (issue 6); a key's calls
        # use ix_usage_key_time (a key belongs to one organization).
        Index("ix_usage_org_model_time", "organization_id", "model", "created_at", "id"),
        Index("ix_usage_org_action_time", "organization_id", "action", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    api_key_id: int = Field(foreign_key="api_keys.id")
    request_id: str = Field(max_length=200)
    model: str = Field(max_length=200)
    action: str = Field(max_length=64)
    status: str = Field(max_length=16)
    prompt_tokens: int = Field(default=0, sa_type=BigInteger)
    completion_tokens: int = Field(default=0, sa_type=BigInteger)
    # Seconds, minutes or a count, by the model's price; a decimal string.
    units: str = Field(default="0", max_length=40)
    provider_cost: int | None = credits_field(default=None, nullable=True)
    cost: int = credits_field()
    tags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = time_field()
    # When it was billed: the time rolling windows and the monthly cap count it at.
    created_at: datetime = time_field()


class UsageRow(NamedTuple):
    """A usage record as the writer inserts it, in column order; ``created_at`` is the
    time of the transaction that bills it."""

    organization_id: int
    api_key_id: int
    request_id: str
    model: str
    action: str
    status: str
    prompt_tokens: int
    completion_tokens: int
    units: str
    provider_cost: int | None
    cost: int
    tags: dict[str, str]
    occurred_at: datetime

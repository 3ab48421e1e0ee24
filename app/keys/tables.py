"""API key and spend-mark tables."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from app.db import credits_field, time_field


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", index=True)
    name: str = Field(max_length=200)
    # The secret's visible start, ``sk-1a2b3c4d`` of ``sk-1a2b3c4d-<random>``: shown in
    # lists, never secret.
    prefix: str = Field(unique=True, max_length=32)
    secret_hash: str = Field(unique=True, max_length=64)
    # Fernet token of the secret, kept only when a key encryption key is configured.
    secret_encrypted: str | None = Field(default=None, max_length=500)
    group: str = Field(default="default", max_length=64)
    # The JWT subject that owns the key; None for org-owned keys.
    owner: str | None = Field(default=None, max_length=200)
    revoked_at: datetime | None = time_field(default=None, nullable=True)
    expires_at: datetime | None = time_field(default=None, nullable=True)
    # Caps in credits; None = no cap (a quota of 0 is stored as None: "unlimited").
    quota: int | None = credits_field(default=None, nullable=True)
    limit_5h: int | None = credits_field(default=None, nullable=True)
    limit_1d: int | None = credits_field(default=None, nullable=True)
    limit_7d: int | None = credits_field(default=None, nullable=True)
    # Lifetime billed usage and active holds; derivable from usage records and holds.
    spent: int = credits_field(default=0)
    held: int = credits_field(default=0)
    last_used_at: datetime | None = time_field(default=None, nullable=True)
    created_at: datetime = time_field()


class SpendMark(SQLModel, table=True):
    """The key's lifetime spend at the end of one second in which it was billed.

    Spend inside a rolling window is ``spent - cumulative`` at the last mark at or before
    the window's start: one index seek per window, exact to the second, however busy
    the key. Marks older than the longest window are pruned but for the newest one.
    """

    __tablename__ = "spend_marks"

    api_key_id: int = Field(foreign_key="api_keys.id", primary_key=True)
    second: int = Field(primary_key=True)  # Unix time
    cumulative: int = credits_field()

"""Alert rules and the events they fired; their webhooks are delivered by ``app.webhooks``.

Thresholds and values are integers in millionths: credits (1,000,000 per USD) for the
USD kinds, millionths of a percent for the percent kinds, so both read back exactly as
six-decimal strings.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.db import credits_field, table, time_field


class AlertKind(StrEnum):
    BALANCE_BELOW = "balance_below"
    SPEND_PERCENT_OF_ALLOCATION = "spend_percent_of_allocation"
    KEY_CAP_PERCENT = "key_cap_percent"
    DAILY_SPEND_ABOVE = "daily_spend_above"
    AUTO_RELOAD_FAILED = "auto_reload_failed"


class RuleState(StrEnum):
    ARMED = "armed"  # the condition does not hold: the next crossing fires
    FIRING = "firing"  # it fired and holds still: nothing more until it re-arms


class AlertRule(SQLModel, table=True):
    __tablename__ = "alert_rules"
    __table_args__ = (Index("ix_alert_rules_org", "organization_id", "deleted_at"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    kind: str = Field(max_length=32)
    # Millionths of a USD (credits) or of a percent; None for AUTO_RELOAD_FAILED.
    threshold: int | None = credits_field(default=None, nullable=True)
    api_key_id: int | None = Field(default=None, foreign_key="api_keys.id")
    webhook_url: str | None = Field(default=None, max_length=2000)
    # Signs webhook bodies (HMAC-SHA256); shown once, when the rule is created, and kept
    # sealed (``app.webhooks.signing``).
    webhook_secret_encrypted: str = Field(max_length=500)
    enabled: bool = Field(default=True)
    # Changed only by conditional UPDATEs (armed -> firing fires), so one instance fires.
    state: str = Field(default=RuleState.ARMED, max_length=16)
    created_by: str = Field(max_length=200)
    created_at: datetime = time_field()
    # Deleted rules stay for their events' sake, out of every list and evaluation.
    deleted_at: datetime | None = time_field(default=None, nullable=True)


class AlertEvent(SQLModel, table=True):
    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_org_time", "organization_id", "created_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    rule_id: int = Field(foreign_key="alert_rules.id")
    message: str = Field(max_length=500)
    # The measured value in the rule's unit (millionths); None for AUTO_RELOAD_FAILED.
    value: int | None = credits_field(default=None, nullable=True)
    created_at: datetime = time_field()  # fired at
    acknowledged_at: datetime | None = time_field(default=None, nullable=True)
    acknowledged_by: str | None = Field(default=None, max_length=200)


rules_t = table(AlertRule)
alert_events_t = table(AlertEvent)

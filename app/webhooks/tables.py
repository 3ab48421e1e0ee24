"""Webhook endpoints, the events recorded for them (the outbox), and every delivery of an
event with each of its attempts. Alert rules' own webhooks are delivered through the
same deliveries: a delivery goes to an endpoint or to an alert rule's URL."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from app.db import table, time_field


class EventType(StrEnum):
    """What an endpoint may subscribe to; the value is the body's ``type``."""

    TOP_UP_SUCCEEDED = "top_up.succeeded"
    TOP_UP_FAILED = "top_up.failed"
    REFUND_CREATED = "refund.created"
    AUTO_RELOAD_SUCCEEDED = "auto_reload.succeeded"
    AUTO_RELOAD_FAILED = "auto_reload.failed"
    BALANCE_LOW = "balance.low"
    PLAN_CHANGED = "plan.changed"
    PERIOD_RENEWED = "period.renewed"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    SPEND_CAP_REACHED = "spend_cap.reached"
    CREDITS_EXPIRED = "credits.expired"


# Not subscribable: sent to one endpoint by sendTestWebhookEvent, and to an alert
# rule's own URL when it fires.
TEST_EVENT = "webhook.test"
ALERT_FIRED = "alert.fired"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed, or its endpoint went away


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_org", "organization_id", "deleted_at"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    url: str = Field(max_length=2000)
    description: str | None = Field(default=None, max_length=200)
    # The EventType values it receives, in the order they were given.
    events: list[str] = Field(sa_column=Column(JSON, nullable=False))
    # A Fernet token of the signing secret (``app.webhooks.signing``), never the secret.
    secret_encrypted: str = Field(max_length=500)
    enabled: bool = Field(default=True)
    created_by: str = Field(max_length=200)
    created_at: datetime = time_field()
    # Deleted endpoints stay for their deliveries' sake, out of every list and delivery.
    deleted_at: datetime | None = time_field(default=None, nullable=True)


class WebhookEvent(SQLModel, table=True):
    """One event, written in the transaction of the change it reports; its body is fixed
    then, so every delivery and redelivery sends the same bytes."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_org_time", "organization_id", "created_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    type: str = Field(max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = time_field()


class WebhookDelivery(SQLModel, table=True):
    """One event to one destination: an endpoint, or (``alert.fired``) an alert rule's
    URL. Each POST is an attempt; the URL and secret are the destination's at the time."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id")
    event_id: int = Field(foreign_key="webhook_events.id", index=True)
    # Exactly one of the two is set.
    endpoint_id: int | None = Field(default=None, foreign_key="webhook_endpoints.id")
    alert_rule_id: int | None = Field(default=None, foreign_key="alert_rules.id")
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16)
    attempts: int = Field(default=0)
    # When the next attempt is due; moved ahead while an instance holds the delivery.
    next_attempt_at: datetime = time_field()
    created_at: datetime = time_field()


class WebhookDeliveryAttempt(SQLModel, table=True):
    __tablename__ = "webhook_delivery_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_deliveries.id", index=True)
    attempt: int
    status_code: int | None = Field(default=None)
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = time_field()


endpoints_t = table(WebhookEndpoint)
events_t = table(WebhookEvent)
deliveries_t = table(WebhookDelivery)
attempts_t = table(WebhookDeliveryAttempt)

"""Every table, imported in one place so the metadata (and Alembic) sees them all."""

from sqlmodel import SQLModel

from app.alerts.tables import AlertEvent, AlertRule
from app.audit import AuditEvent
from app.grants.tables import PromoCode, PromoRedemption
from app.keys.tables import ApiKey, SpendMark
from app.ledger.tables import CreditLot, Hold, LedgerEntry, Wallet
from app.orgs.tables import Organization
from app.payments.tables import BillingAccount, BillingTransaction, FakeCard, StripeEvent
from app.plans.tables import PlanPeriod, PlanSubscription
from app.statements.tables import Receipt
from app.usage.rollups import UsageDaily, UsageDailyBy, UsageHourly, UsageHourlyBy
from app.usage.tables import UsageRecord
from app.webhooks.tables import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
    WebhookEvent,
)

metadata = SQLModel.metadata

__all__ = [
    "AlertEvent",
    "AlertRule",
    "ApiKey",
    "AuditEvent",
    "BillingAccount",
    "BillingTransaction",
    "CreditLot",
    "FakeCard",
    "Hold",
    "LedgerEntry",
    "Organization",
    "PlanPeriod",
    "PlanSubscription",
    "PromoCode",
    "PromoRedemption",
    "Receipt",
    "SpendMark",
    "StripeEvent",
    "UsageDaily",
    "UsageDailyBy",
    "UsageHourly",
    "UsageHourlyBy",
    "UsageRecord",
    "Wallet",
    "WebhookDelivery",
    "WebhookDeliveryAttempt",
    "WebhookEndpoint",
    "WebhookEvent",
    "metadata",
]

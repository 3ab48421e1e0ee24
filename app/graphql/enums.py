"""The domain's enums, registered once as GraphQL enums, every value described.

Every module that uses one of them in a GraphQL type imports this module, so the
registration has happened whatever the import order.
"""

from __future__ import annotations

from enum import Enum

import strawberry

from app.alerts.tables import AlertKind
from app.auth import Role
from app.keys.tables import KeyStatus
from app.keys.windows import Window
from app.ledger.tables import EntryKind
from app.payments.tables import TransactionKind, TransactionStatus
from app.plans.catalog import ConcurrencyCounts
from app.pricing.book import ModelClass
from app.statements.tables import ReceiptKind
from app.usage.tables import UsageStatus
from app.webhooks.tables import DeliveryStatus, EventType


def _register(enum: type[Enum], name: str, description: str, values: dict[str, str]) -> None:
    """Register ``enum`` under ``name``; ``values`` describes each member (all of them:
    a new member without a description fails at import)."""
    strawberry.enum(enum, name=name, description=description)
    for value in getattr(enum, "__strawberry_definition__").values:  # noqa: B009
        value.description = values[value.name]


_register(
    Role,
    "ViewerRole",
    "What the caller may do.",
    {
        "OWNER": "Everything, including revealing API key secrets.",
        "ADMIN": "Everything but revealing secrets: keys, caps, the spend cap, the audit log.",
        "MEMBER": "Reads the organization; creates keys and manages the keys it owns.",
        "VIEWER": "Reads the organization; changes nothing.",
        "SERVICE": "The gateway: authorizes and records usage.",
        "API_KEY": "Signed in with an API key secret: sees its own key and calls, the "
        "balance and the billing history (not the ledger, which lists every key's calls).",
    },
)
_register(
    EntryKind,
    "LedgerEntryKind",
    "Why a ledger entry moved money.",
    {
        "TOP_UP": "Credits bought (a paid top-up).",
        "BONUS": "The bonus a top-up earned on the bonus ladder.",
        "PLAN_ALLOCATION": "A plan period's allocation.",
        "ROLLOVER": "Unused allocation carried into the next period.",
        "TRIAL": "A plan's trial allowance (ByteSpike Free's), granted once to an "
        "organization whose first plan it is; the memo says so.",
        "USAGE": "A billed call.",
        "OVERAGE": "Usage past the plan's allocation, billed in USD at the plan's overage "
        "rate when the period closed; it brings the wallet back to zero.",
        "EXPIRY": "What was left of a lot when it expired.",
        "REFUND": "Credits clawed back when a top-up was refunded.",
        "ADJUSTMENT": "An operator's manual correction, with its reason in the memo.",
        "GRANT": "Credits given, not bought: an admin's grant (its reason in the memo) or "
        'a promo code\'s (reference "promo:<CODE>:<n>", memo "promo code <CODE>").',
        "REVERSAL": "An entry undone by a new one (nothing is ever edited).",
    },
)
_register(
    KeyStatus,
    "ApiKeyStatus",
    "Whether the gateway accepts the key.",
    {
        "ACTIVE": "Accepted.",
        "REVOKED": "Refused for good.",
        "EXPIRED": "Refused: past its expiresAt.",
    },
)
_register(
    Window,
    "SpendWindow",
    "A rolling window, exact to the second: nothing resets on the clock; spend leaves "
    "the window as it ages.",
    {
        "FIVE_HOURS": "The last 5 hours.",
        "ONE_DAY": "The last 24 hours.",
        "SEVEN_DAYS": "The last 7 days.",
    },
)
_register(
    UsageStatus,
    "UsageStatus",
    "How the call ended.",
    {
        "SUCCEEDED": "Completed: billed, even past a zero balance.",
        "FAILED": "Failed: recorded, never billed; its hold is released.",
    },
)

_register(
    TransactionKind,
    "BillingTransactionKind",
    "A wallet movement that is not an API call.",
    {
        "TOP_UP": "Credits bought by card (Stripe), with the bonus ladder's bonus.",
        "AUTO_RELOAD": "A top-up charged to the saved card when the balance fell under the "
        'auto-reload threshold, or by autoScale to unlock a tier (memo "autoScale").',
        "REFUND": "Part or all of a top-up's payment given back; its credits clawed back.",
        "ADJUSTMENT": "An operator's manual correction, with its reason in the memo.",
        "GRANT": "Credits given, not bought: an admin's grant or a promo code's (memo "
        '"promo code <CODE>"); never a purchase, so never in purchasedLast28Days.',
        "EXPIRY": "Credits that expired unspent (one per organization per expiry sweep).",
        "PLAN_ALLOCATION": "A plan period's allocation, expiring at the period's end.",
        "TRIAL": "A plan's trial allowance for a new organization (ByteSpike Free's), "
        "granted once.",
        "OVERAGE": "Usage past the plan's allocation when the period closed: `credits` is "
        "what was used beyond it, `amount` the USD owed at the plan's overage rate, PENDING "
        "until charged to the saved card.",
    },
)
_register(
    TransactionStatus,
    "BillingTransactionStatus",
    "Where a transaction stands. Only top-ups wait for a payment; the rest are "
    "SUCCEEDED when written.",
    {
        "PENDING": "Waiting for the payment provider to confirm the payment.",
        "SUCCEEDED": "Done: the credits (and any bonus) are in the wallet.",
        "FAILED": "The payment did not go through; nothing was credited. A card payment "
        "can still succeed later if the payer retries it.",
    },
)

_register(
    ModelClass,
    "ModelClass",
    "How heavy a model is (the price book's model_class): plans may allow each class its "
    "own number of messages per 12 hours.",
    {
        "PREMIUM": "The heaviest models (claude-opus-4-6): the fewest messages.",
        "STANDARD": "Models the price book gives no other class.",
        "LIGHT": "The lightest models (claude-haiku-4-5, gpt-5-mini, gemini-3-flash, "
        "deepseek-v4-pro): the most messages.",
    },
)
_register(
    ConcurrencyCounts,
    "ConcurrencyCounts",
    "Which calls in flight a plan's concurrency limit counts.",
    {
        "CALLS": "Every call (ByteSpike).",
        "OPEN_MODEL_CALLS": "Calls to open models only; closed models are not limited (Bytez).",
    },
)

_register(
    ReceiptKind,
    "ReceiptKind",
    "What a receipt is for.",
    {
        "TOP_UP": "A top-up paid by card: the credits it bought and its bonus.",
        "AUTO_RELOAD": "An automatic purchase charged to the saved card: auto-reload's, or "
        "autoScale's.",
        "PLAN_INVOICE": "A plan's period, paid by its Stripe invoice (in the plan's currency); "
        "credits: the period's allocation.",
        "OVERAGE": "A closed period's usage past its allocation, charged to the saved card "
        "in whole cents; credits: the plan credits it paid for.",
        "REFUND": "Money given back for a payment; credits: those clawed back (negative).",
    },
)
_register(
    EventType,
    "WebhookEventType",
    "An event a webhook endpoint may subscribe to; the body's `type` is the value shown.",
    {
        "TOP_UP_SUCCEEDED": '"top_up.succeeded": a top-up was paid and its credits landed.',
        "TOP_UP_FAILED": '"top_up.failed": a top-up\'s payment failed (with the reason).',
        "REFUND_CREATED": '"refund.created": a payment was refunded, in part or whole, with '
        "what was clawed back and the shortfall.",
        "AUTO_RELOAD_SUCCEEDED": '"auto_reload.succeeded": an automatic purchase (auto-reload\'s '
        "or autoScale's) was paid and its credits landed.",
        "AUTO_RELOAD_FAILED": '"auto_reload.failed": an automatic purchase\'s charge failed; '
        "automatic purchases pause until the settings or the card change.",
        "BALANCE_LOW": '"balance.low": a BALANCE_BELOW alert rule fired (once per crossing).',
        "PLAN_CHANGED": '"plan.changed": a plan began, a downgrade was scheduled or canceled, '
        "or a subscription ended.",
        "PERIOD_RENEWED": '"period.renewed": the plan began a new period with its allocation.',
        "API_KEY_CREATED": '"api_key.created": an API key was created (never its secret).',
        "API_KEY_REVOKED": '"api_key.revoked": an API key was revoked.',
        "SPEND_CAP_REACHED": '"spend_cap.reached": this month\'s usage reached the monthly '
        "spend cap; non-critical actions are refused until the month ends or the cap rises.",
        "CREDITS_EXPIRED": '"credits.expired": credits expired (their lots\' expiry, or '
        "a plan period's unused allocation).",
    },
)
_register(
    DeliveryStatus,
    "WebhookDeliveryStatus",
    "Where a webhook delivery stands.",
    {
        "PENDING": "Not delivered yet: the next attempt is due at nextAttemptAt.",
        "DELIVERED": "The endpoint answered 2xx.",
        "FAILED": "Given up: every attempt failed, or the endpoint was disabled or deleted.",
    },
)

__all__ = [
    "AlertKind",
    "ConcurrencyCounts",
    "DeliveryStatus",
    "EntryKind",
    "EventType",
    "KeyStatus",
    "ModelClass",
    "ReceiptKind",
    "Role",
    "TransactionKind",
    "TransactionStatus",
    "UsageStatus",
    "Window",
]


_register(
    AlertKind,
    "AlertKind",
    "What an alert rule watches, and the unit of its threshold.",
    {
        "BALANCE_BELOW": "The wallet's balance falls below the threshold, in USD.",
        "SPEND_PERCENT_OF_ALLOCATION": "Spend reaches this percent of the current plan "
        'period\'s allocation (threshold in percent, "80" for 80%). Never fires without a '
        "plan period.",
        "KEY_CAP_PERCENT": "An API key (apiKeyId) reaches this percent of its lifetime quota "
        "or of its tightest rolling window, holds included (threshold in percent).",
        "DAILY_SPEND_ABOVE": "Usage billed since midnight UTC goes above the threshold, in USD.",
        "AUTO_RELOAD_FAILED": "An automatic purchase's charge (auto-reload's or autoScale's) "
        "failed; fires on every failure. No threshold.",
    },
)

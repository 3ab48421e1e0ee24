"""Stripe's webhook events, verified, recorded once and turned into payment changes.

Stripe delivers each event at least once, in any order, and one payment can produce
both a Checkout Session event and a PaymentIntent event. Every handler below acts
through ``Payments``, whose jobs look at the top-up's current state, so whichever
event comes first does the work and the rest find it done.

Plan subscriptions (Checkout Sessions in subscription mode, invoices, subscriptions)
go to ``Plans`` (``app.plans.service``, whose docstring has the rules): a paid invoice
begins the period it paid for, once, whether it comes as ``invoice.paid`` or through
its Checkout Session's completion.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import stripe
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.db import is_postgres, table
from app.fields import digits, has_nul
from app.payments.ladder import CREDITS_PER_CENT
from app.payments.provider import Card, Payment, PaymentError
from app.payments.service import Payments
from app.payments.stripe_provider import checkout_tax, subscription_invoice
from app.payments.tables import StripeEvent

log = logging.getLogger(__name__)
events_t = table(StripeEvent)
ACTOR = "stripe"


class InvalidEvent(ValueError):
    """A webhook whose signature does not verify, or whose body is not an event."""


def verified_event(payload: bytes, signature: str | None, secret: str, tolerance: int) -> Any:
    """The event, once the library has checked its signature and its timestamp."""
    try:
        stripe.WebhookSignature.verify_header(payload.decode(), signature or "", secret, tolerance)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise InvalidEvent("the Stripe-Signature header does not verify") from None
    try:
        event = orjson.loads(payload)
        event["id"], event["type"], event["data"]["object"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise InvalidEvent("the body is not a Stripe event") from None
    if not isinstance(event["id"], str) or not isinstance(event["type"], str):
        raise InvalidEvent("the body is not a Stripe event")
    if has_nul(event):  # Stripe sends none; the database could not store it
        raise InvalidEvent("the body is not a Stripe event: it holds a NUL character")
    return event


async def receive(payments: Payments, event: dict[str, Any]) -> str:
    """Process an event unless it was processed before; what happened, for the reply."""
    db, now = payments.db, payments.clock.now()
    async with db.write(None) as conn:
        insert = (postgresql.insert if is_postgres(conn) else sqlite.insert)(events_t)
        await conn.execute(
            insert.values(
                id=event["id"][:255], type=event["type"][:100], received_at=now
            ).on_conflict_do_nothing()
        )
        processed = await conn.scalar(
            select(events_t.c.processed_at).where(events_t.c.id == event["id"][:255])
        )
    if processed is not None:
        return "duplicate"
    # A delivery racing this one may process it too: every handler is idempotent.
    outcome = await _handle(payments, event["type"], event["data"]["object"])
    async with db.write(None) as conn:
        await conn.execute(
            update(events_t)
            .where(events_t.c.id == event["id"][:255])
            .values(processed_at=payments.clock.now())
        )
    return outcome


async def _handle(payments: Payments, kind: str, obj: Any) -> str:
    if not isinstance(obj, dict):
        return "ignored"
    if kind.startswith("checkout.session.") and obj.get("mode") == "subscription":
        return await _subscription_checkout(payments, kind, obj)
    if kind == "invoice.paid":
        invoice = subscription_invoice(obj)
        return "ignored" if invoice is None else await payments.plans.invoice_paid(invoice)
    if kind in ("customer.subscription.updated", "customer.subscription.deleted"):
        subscription_id = _id(obj.get("id"))
        if subscription_id is None:
            return "ignored"
        if kind == "customer.subscription.deleted":
            return await payments.plans.subscription_ended(subscription_id)
        status = obj.get("status")
        return await payments.plans.subscription_updated(
            subscription_id,
            status if isinstance(status, str) else None,
            obj.get("cancel_at_period_end") is True,
        )
    if kind == "payment_intent.succeeded":
        return await _settle(payments, obj, obj.get("amount"), _id(obj.get("payment_method")))
    if kind == "payment_intent.payment_failed":
        return await _fail(payments, obj, _decline_reason(obj.get("last_payment_error")))
    if kind == "checkout.session.completed":
        # Unpaid means an asynchronous method (a bank debit) is still on its way.
        if obj.get("payment_status") != "paid":
            return "pending"
        return await _settle(payments, obj, obj.get("amount_total"), None)
    if kind == "checkout.session.async_payment_succeeded":
        return await _settle(payments, obj, obj.get("amount_total"), None)
    if kind == "checkout.session.async_payment_failed":
        return await _fail(payments, obj, "the payment failed")
    if kind == "checkout.session.expired":
        return await _fail(payments, obj, "the checkout page expired before payment")
    if kind == "charge.refunded":
        top_up = await payments.find(payment_intent_id=_id(obj.get("payment_intent")))
        total = obj.get("amount_refunded")
        if top_up is None or not isinstance(total, int):
            return "unknown payment"
        await payments.refunded(top_up.organization_id, top_up.top_up_id, total, actor=ACTOR)
        return "refunded"
    return "ignored"


async def _subscription_checkout(payments: Payments, kind: str, obj: dict[str, Any]) -> str:
    """A plan's Checkout page was paid: its subscription's first invoice, looked up at
    Stripe, begins the plan (as its ``invoice.paid`` would, whichever comes first). Nothing
    was recorded when the page opened, so one that expires or fails changes nothing."""
    paid = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
    if kind not in paid:
        return "ignored"
    invoice_id = _id(obj.get("invoice"))
    if obj.get("payment_status") != "paid" or invoice_id is None or payments.provider is None:
        return "pending"  # the invoice's own event will begin the plan
    try:
        invoice = await payments.provider.subscription_invoice(invoice_id)
    except PaymentError:
        return "pending"
    return "pending" if invoice is None else await payments.plans.invoice_paid(invoice)


async def _settle(payments: Payments, obj: dict[str, Any], cents: Any, card: str | None) -> str:
    top_up = await _top_up(payments, obj)
    if top_up is None:
        return "unknown payment"
    if cents != top_up.amount // CREDITS_PER_CENT or obj.get("currency", "usd") != "usd":
        # Never credit what was not paid; retrying will not change it, so a person must look.
        log.error(
            "Stripe %s paid %r, not top-up %d's amount", obj.get("id"), cents, top_up.top_up_id
        )
        return "amount mismatch"
    intent = _id(
        obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    )
    payment = Payment(
        "succeeded",
        intent,
        card,
        # A payment already credited has its receipt.
        card=None if top_up.status == "succeeded" else await _card_charged(payments, intent),
        tax_cents=checkout_tax(obj),
    )
    await payments.apply(top_up.organization_id, top_up.top_up_id, payment, actor=ACTOR)
    return "succeeded"


async def _card_charged(payments: Payments, intent: str | None) -> Card | None:
    """The card a payment was charged to, for its receipt: events carry its charge only as
    an id, so it is looked up; without an answer the receipt shows no card (the payment
    stands all the same)."""
    if intent is None or payments.provider is None:
        return None
    try:
        found = await payments.provider.payment(payment_intent_id=intent, checkout_session_id=None)
    except PaymentError:
        return None
    return found.card


async def _fail(payments: Payments, obj: dict[str, Any], reason: str) -> str:
    top_up = await _top_up(payments, obj)
    if top_up is None:
        return "unknown payment"
    payment = Payment("failed", None, failure_reason=reason)
    await payments.apply(top_up.organization_id, top_up.top_up_id, payment, actor=ACTOR)
    return "failed"


async def _top_up(payments: Payments, obj: dict[str, Any]) -> Any:
    """The top-up an object pays for: by the id we put in its metadata, else by its own."""
    metadata = obj.get("metadata") or {}
    raw_id = metadata.get("creditgraph_top_up_id") if isinstance(metadata, dict) else None
    if isinstance(raw_id, str) and digits(raw_id):
        top_up = await payments.find(top_up_id=int(raw_id))
        if top_up is not None:
            return top_up
    if obj.get("object") == "payment_intent":
        return await payments.find(payment_intent_id=_id(obj.get("id")))
    if obj.get("object") == "checkout.session":
        return await payments.find(checkout_session_id=_id(obj.get("id")))
    return None


def _id(value: Any) -> str | None:
    """An object's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _decline_reason(error: Any) -> str:
    if not isinstance(error, dict):
        return "the payment failed"
    message = error.get("message") or "the payment failed"
    code = error.get("decline_code") or error.get("code")
    return f"{message} ({code})" if code else str(message)

"""Webhook events shaped like Stripe's, and their ``Stripe-Signature`` header.

Builders take the ids a test already has (often from the stand-in) and fill in the rest
the way Stripe does; given ``top_up_id`` / ``organization_id`` they put creditgraph's
metadata keys on the object, as ``StripeProvider`` asks Stripe to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import stripe

Obj = dict[str, Any]

CARD = "pm_card_visa"


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def metadata(top_up_id: int | None = None, organization_id: int | None = None) -> dict[str, str]:
    keys = {"creditgraph_top_up_id": top_up_id, "creditgraph_organization_id": organization_id}
    return {key: str(value) for key, value in keys.items() if value is not None}


def event(
    type_: str,
    obj: Obj,
    *,
    previous_attributes: Obj | None = None,
    created: int | None = None,
    event_id: str | None = None,
) -> Obj:
    """An event of ``type_`` about ``obj`` (a builder's, or a stand-in object)."""
    data: Obj = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id or _id("evt"),
        "object": "event",
        "api_version": stripe.api_version,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def body(evt: Obj) -> bytes:
    """The body Stripe would POST for ``evt``."""
    return json.dumps(evt, indent=2).encode()


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload``: an HMAC-SHA256 with the endpoint's
    signing secret over ``"{t}.{payload}"``."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def payment_intent(
    intent_id: str | None = None,
    *,
    amount: int,
    status: str,
    customer: str | None = None,
    payment_method: str | None = None,
    latest_charge: str | None = None,
    last_payment_error: Obj | None = None,
    top_up_id: int | None = None,
    organization_id: int | None = None,
) -> Obj:
    intent_id = intent_id or _id("pi")
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "capture_method": "automatic",
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
        "created": int(time.time()),
        "currency": "usd",
        "customer": customer,
        "last_payment_error": last_payment_error,
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": metadata(top_up_id, organization_id),
        "payment_method": payment_method,
        "setup_future_usage": "off_session",
        "status": status,
    }


def payment_intent_succeeded(
    intent_id: str | None = None,
    *,
    amount: int,
    payment_method: str = CARD,
    customer: str | None = None,
    top_up_id: int | None = None,
    organization_id: int | None = None,
) -> Obj:
    intent = payment_intent(
        intent_id,
        amount=amount,
        status="succeeded",
        customer=customer,
        payment_method=payment_method,
        latest_charge=_id("ch"),
        top_up_id=top_up_id,
        organization_id=organization_id,
    )
    return event("payment_intent.succeeded", intent)


def payment_intent_payment_failed(
    intent_id: str | None = None,
    *,
    amount: int,
    message: str = "Your card was declined.",
    decline_code: str | None = "generic_decline",
    code: str = "card_declined",
    customer: str | None = None,
    top_up_id: int | None = None,
    organization_id: int | None = None,
) -> Obj:
    charge = _id("ch")
    error = {
        "type": "card_error",
        "charge": charge,
        "code": code,
        "decline_code": decline_code,
        "message": message,
    }
    intent = payment_intent(
        intent_id,
        amount=amount,
        status="requires_payment_method",
        customer=customer,
        latest_charge=charge,
        last_payment_error=error,
        top_up_id=top_up_id,
        organization_id=organization_id,
    )
    return event("payment_intent.payment_failed", intent)


def checkout_session(
    session_id: str | None = None,
    *,
    amount: int,
    payment_intent_id: str | None,
    paid: bool,
    customer: str | None = None,
    top_up_id: int | None = None,
    organization_id: int | None = None,
) -> Obj:
    """A completed Checkout Session; ``paid`` False is a payment still settling (a bank
    debit), which later ends in ``async_payment_succeeded`` or ``..._failed``."""
    return {
        "id": session_id or f"cs_test_{secrets.token_hex(29)}",
        "object": "checkout.session",
        "amount_subtotal": amount,
        "amount_total": amount,
        "client_reference_id": None if top_up_id is None else str(top_up_id),
        "created": int(time.time()),
        "currency": "usd",
        "customer": customer,
        "livemode": False,
        "metadata": metadata(top_up_id, organization_id),
        "mode": "payment",
        "payment_intent": payment_intent_id,
        "payment_status": "paid" if paid else "unpaid",
        "status": "complete",
        "url": None,
    }


def checkout_session_completed(
    session_id: str | None = None,
    *,
    amount: int,
    payment_intent_id: str | None,
    paid: bool = True,
    customer: str | None = None,
    top_up_id: int | None = None,
    organization_id: int | None = None,
) -> Obj:
    session = checkout_session(
        session_id,
        amount=amount,
        payment_intent_id=payment_intent_id,
        paid=paid,
        customer=customer,
        top_up_id=top_up_id,
        organization_id=organization_id,
    )
    return event("checkout.session.completed", session)


def checkout_session_async_payment_succeeded(
    session_id: str | None = None,
    *,
    amount: int,
    payment_intent_id: str | None,
    customer: str | None = None,
    top_up_id: int | None = None,
    organization_id: int | None = None,
) -> Obj:
    session = checkout_session(
        session_id,
        amount=amount,
        payment_intent_id=payment_intent_id,
        paid=True,
        customer=customer,
        top_up_id=top_up_id,
        organization_id=organization_id,
    )
    return event("checkout.session.async_payment_succeeded", session)


def checkout_session_async_payment_failed(
    session_id: str | None = None,
    *,
    amount: int,
    payment_intent_id: str | None,
    customer: str | None = None,
    top_up_id: int | None = None,
    organization_id: int | None = None,
) -> Obj:
    session = checkout_session(
        session_id,
        amount=amount,
        payment_intent_id=payment_intent_id,
        paid=False,
        customer=customer,
        top_up_id=top_up_id,
        organization_id=organization_id,
    )
    return event("checkout.session.async_payment_failed", session)


def charge_refunded(
    charge_id: str | None = None,
    *,
    payment_intent_id: str,
    amount: int,
    amount_refunded: int,
    previously_refunded: int = 0,
    customer: str | None = None,
    payment_method: str = CARD,
    top_up_id: int | None = None,
    organization_id: int | None = None,
) -> Obj:
    """A refund of a charge; ``amount_refunded`` is the charge's running total, as Stripe
    reports it, and ``previously_refunded`` the total before this refund."""
    charge = {
        "id": charge_id or _id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "captured": True,
        "created": int(time.time()),
        "currency": "usd",
        "customer": customer,
        "livemode": False,
        "metadata": metadata(top_up_id, organization_id),
        "paid": True,
        "payment_intent": payment_intent_id,
        "payment_method": payment_method,
        "refunded": amount_refunded == amount,
        "status": "succeeded",
    }
    previous = {"amount_refunded": previously_refunded, "refunded": False}
    return event("charge.refunded", charge, previous_attributes=previous)


# -- plan subscriptions (Checkout in subscription mode) ----------------------------------


def plan_metadata(organization_id: int | None, plan_code: str | None) -> dict[str, str]:
    """The metadata ``StripeProvider`` puts on a plan's subscription."""
    keys = {"creditgraph_organization_id": organization_id, "creditgraph_plan_code": plan_code}
    return {key: str(value) for key, value in keys.items() if value is not None}


def subscription(
    subscription_id: str | None = None,
    *,
    customer: str,
    amount: int,
    period_start: int,
    period_end: int,
    currency: str = "usd",
    interval: str = "week",
    interval_count: int = 4,
    status: str = "active",
    cancel_at_period_end: bool = False,
    latest_invoice: str | None = None,
    organization_id: int | None = None,
    plan_code: str | None = None,
) -> Obj:
    """A subscription of one item, as API versions from 2025-03-31 shape it: the billing
    period is the item's (``items.data[0].current_period_*``), no longer the subscription's."""
    subscription_id = subscription_id or _id("sub")
    return {
        "id": subscription_id,
        "object": "subscription",
        "billing_cycle_anchor": period_start,
        "cancel_at": period_end if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": None,
        "collection_method": "charge_automatically",
        "created": period_start,
        "currency": currency,
        "customer": customer,
        "ended_at": None,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": _id("si"),
                    "object": "subscription_item",
                    "current_period_start": period_start,
                    "current_period_end": period_end,
                    "metadata": {},
                    "price": {
                        "id": _id("price"),
                        "object": "price",
                        "currency": currency,
                        "product": _id("prod"),
                        "recurring": {"interval": interval, "interval_count": interval_count},
                        "type": "recurring",
                        "unit_amount": amount,
                    },
                    "quantity": 1,
                    "subscription": subscription_id,
                }
            ],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={subscription_id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": False,
        "metadata": plan_metadata(organization_id, plan_code),
        "status": status,
    }


def invoice(
    invoice_id: str | None = None,
    *,
    subscription_id: str,
    amount_paid: int,
    period_start: int,
    period_end: int,
    currency: str = "usd",
    billing_reason: str = "subscription_cycle",
    customer: str | None = None,
    description: str = "Plan",
    organization_id: int | None = None,
    plan_code: str | None = None,
    legacy: bool = False,
) -> Obj:
    """A paid subscription invoice. Its subscription and that subscription's metadata are
    under ``parent.subscription_details`` (API versions from 2025-03-31), or with
    ``legacy`` at the top level (``subscription``, ``subscription_details``) as before.
    The period paid for is its line's; the invoice's own ``period_*`` is the past one."""
    invoice_id = invoice_id or _id("in")
    metadata = plan_metadata(organization_id, plan_code)
    line: Obj = {
        "id": _id("il"),
        "object": "line_item",
        "amount": amount_paid,
        "currency": currency,
        "description": description,
        "invoice": invoice_id,
        "metadata": metadata,
        "period": {"start": period_start, "end": period_end},
        "quantity": 1,
    }
    obj: Obj = {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": amount_paid,
        "amount_paid": amount_paid,
        "amount_remaining": 0,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": period_start,
        "currency": currency,
        "customer": customer,
        "lines": {
            "object": "list",
            "data": [line],
            "has_more": False,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "period_end": period_start,
        "period_start": period_start,
        "status": "paid",
        "status_transitions": {"paid_at": period_start},
        "subtotal": amount_paid,
        "total": amount_paid,
    }
    if legacy:
        obj["subscription"] = subscription_id
        obj["subscription_details"] = {"metadata": metadata}
        line |= {"type": "subscription", "subscription": subscription_id}
    else:
        obj["parent"] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": metadata,
                "subscription": subscription_id,
                "subscription_proration_date": None,
            },
        }
        line["parent"] = {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "proration": False,
                "subscription": subscription_id,
                "subscription_item": _id("si"),
            },
        }
    return obj


def invoice_paid(obj: Obj) -> Obj:
    return event("invoice.paid", obj)


def customer_subscription_updated(obj: Obj, previous_attributes: Obj) -> Obj:
    return event("customer.subscription.updated", obj, previous_attributes=previous_attributes)


def customer_subscription_deleted(obj: Obj) -> Obj:
    return event("customer.subscription.deleted", obj)

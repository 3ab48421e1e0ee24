"""Stripe as the payment provider, through the official library's async API.

Every create carries an idempotency key derived from our row ids, so a retry (ours, or
the library's own network retries) never creates a second customer or charges twice.
No Stripe exception leaves this module: each becomes a ``Payment`` or a ``PaymentError``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, Self

import stripe

from app.fields import digits
from app.payments.provider import (
    Card,
    Checkout,
    Interval,
    Payment,
    PaymentError,
    SavedCard,
    SubscriptionInvoice,
)
from app.settings import Settings

log = logging.getLogger(__name__)

UNREACHABLE = "the payment provider could not be reached; try again"
DECLINED = "the card was declined"
# An off-session charge the bank wants authenticated (3-D Secure) cannot go through: nobody
# is there to authenticate, so the payer has to pay once by hand to re-authorize the card.
NEEDS_AUTHENTICATION = "the card requires authentication, which an automatic charge cannot do"


class _HTTPXClient(stripe.HTTPXClient):
    """stripe's HTTPXClient, handing httpx the encoded form body as ``content=``.

    stripe passes it as ``data=``, which httpx deprecates for raw bodies: a
    DeprecationWarning on every POST, which stripe reports as a connection error
    wherever warnings are errors (our test suite).
    """

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), str | bytes):
            kwargs["content"] = kwargs.pop("data")
        return [args, kwargs]


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def _id(field: str | _HasId | None) -> str | None:
    """The id of a field Stripe returns either as an id or, expanded, as the object."""
    return field if field is None or isinstance(field, str) else field.id


def _metadata(top_up_id: int, organization_id: int) -> dict[str, str]:
    # Webhook handlers find the top-up from these, and people find it in the dashboard.
    return {
        "creditgraph_top_up_id": str(top_up_id),
        "creditgraph_organization_id": str(organization_id),
    }


def _top_up_key(top_up_id: int) -> stripe.RequestOptions:
    return {"idempotency_key": f"creditgraph-top-up-{top_up_id}"}


def card_of(charge: str | stripe.Charge | None) -> Card | None:
    """The card a charge was made with (its ``payment_method_details.card``), when the
    charge came expanded and was paid by card."""
    if not isinstance(charge, stripe.Charge):
        return None
    # Absent keys of a Stripe object raise AttributeError: another method has no card.
    card = getattr(getattr(charge, "payment_method_details", None), "card", None)
    brand, last4 = getattr(card, "brand", None), getattr(card, "last4", None)
    return Card(brand, last4) if isinstance(brand, str) and isinstance(last4, str) else None


def invoice_tax(invoice: Mapping[str, Any]) -> int | None:
    """The tax on an invoice (minor unit) when Stripe Tax computed one: ``total_taxes``
    (API versions from 2025-03-31) or ``tax`` before them; None without tax lines."""
    taxes = invoice.get("total_taxes")
    if isinstance(taxes, list) and taxes:
        amounts = [t.get("amount") for t in taxes if isinstance(t, Mapping)]
        return sum(a for a in amounts if isinstance(a, int))
    tax = invoice.get("tax")
    return tax if isinstance(tax, int) else None


def checkout_tax(session: Mapping[str, Any]) -> int | None:
    """The tax on a Checkout Session (cents) when Stripe Tax computed it (``automatic_tax``
    on); None otherwise, where its ``amount_tax`` of 0 says nothing."""
    automatic = session.get("automatic_tax")
    totals = session.get("total_details")
    if not (isinstance(automatic, Mapping) and automatic.get("enabled") is True):
        return None
    tax = totals.get("amount_tax") if isinstance(totals, Mapping) else None
    return tax if isinstance(tax, int) else None


def _unix_time(value: object) -> datetime | None:
    """A Unix time as Stripe sends one; None for anything else, a time past year 9999
    included (``fromtimestamp`` raises for it)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def subscription_invoice(invoice: Any) -> SubscriptionInvoice | None:
    """A subscription's invoice from its JSON (a webhook's, or the API's as a dict), in
    either API shape: ``parent.subscription_details`` (API versions from 2025-03-31) or
    the top-level ``subscription`` and ``subscription_details`` before them. None when it
    is no subscription's, or lacks what a period needs (its line's period)."""
    if not isinstance(invoice, Mapping):
        return None
    parent = invoice.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    if isinstance(details, Mapping):
        subscription, metadata = details.get("subscription"), details.get("metadata")
    else:
        legacy = invoice.get("subscription_details")
        subscription = invoice.get("subscription")
        metadata = legacy.get("metadata") if isinstance(legacy, Mapping) else None
    if isinstance(subscription, Mapping):  # expanded
        subscription = subscription.get("id")
    lines = invoice.get("lines")
    data = lines.get("data") if isinstance(lines, Mapping) else None
    line = data[0] if isinstance(data, list) and data else None
    period = line.get("period") if isinstance(line, Mapping) else None
    start = period.get("start") if isinstance(period, Mapping) else None
    end = period.get("end") if isinstance(period, Mapping) else None
    fields = (invoice.get("id"), invoice.get("status"), invoice.get("currency"))
    period_start, period_end = _unix_time(start), _unix_time(end)
    if not (
        isinstance(subscription, str)
        and all(isinstance(field, str) for field in fields)
        and isinstance(invoice.get("amount_paid"), int)
        and period_start is not None
        and period_end is not None
    ):
        return None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    organization = metadata.get("creditgraph_organization_id")
    plan_code = metadata.get("creditgraph_plan_code")
    return SubscriptionInvoice(
        invoice_id=invoice["id"],
        subscription_id=subscription,
        status=invoice["status"],
        billing_reason=str(invoice.get("billing_reason")),
        amount_paid=invoice["amount_paid"],
        currency=invoice["currency"],
        period_start=period_start,
        period_end=period_end,
        organization_id=int(organization)
        if isinstance(organization, str) and digits(organization)
        else None,
        plan_code=plan_code if isinstance(plan_code, str) else None,
        tax=invoice_tax(invoice),
    )


@contextmanager
def _provider_errors(action: str) -> Iterator[None]:
    """Turn what the library raises into a ``PaymentError`` a payer may be shown."""
    try:
        yield
    except (stripe.InvalidRequestError, stripe.IdempotencyError) as error:
        # Our request was wrong (e.g. refunding more than is left): retrying cannot help,
        # and Stripe's message says what was wrong.
        log.warning("Stripe refused to %s: %r", action, error)
        message: str = error.user_message or "the payment provider refused the request"
        raise PaymentError(message, code=error.code or "invalid_request") from error
    except stripe.StripeError as error:
        log.warning("Stripe failed to %s: %r", action, error)
        raise PaymentError(UNREACHABLE, code="provider_unavailable") from error


def _intent_payment(intent: stripe.PaymentIntent) -> Payment:
    """Where a PaymentIntent stands: its last attempt declined is failed, and anything
    not yet final (the payer still confirming, a bank debit settling) is pending."""
    if intent.status == "succeeded":
        card = card_of(intent.latest_charge)
        return Payment("succeeded", intent.id, _id(intent.payment_method), card=card)
    if intent.status == "canceled":
        return Payment("failed", intent.id, None, "canceled")
    error = intent.last_payment_error
    if intent.status == "requires_payment_method" and error is not None:
        return Payment("failed", intent.id, None, error.message or DECLINED)
    return Payment("pending", intent.id)


def _saved_card(method: stripe.PaymentMethod) -> SavedCard | None:
    """A card PaymentMethod as a saved card; None for other types (a bank account)."""
    card = method.card if method.type == "card" else None
    if card is None:
        return None
    return SavedCard(method.id, card.brand, card.last4, card.exp_month, card.exp_year)


class StripeProvider:
    """``PaymentProvider`` on Stripe: PaymentIntents for Elements, or hosted Checkout.

    Payments settle later, by webhook (or ``payment`` when reconciling a missed one).
    """

    name = "stripe"
    settles_at_once = False

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None,
        flow: Literal["elements", "checkout"],
        success_url: str,
        cancel_url: str,
        plan_success_url: str,
        plan_cancel_url: str,
    ) -> None:
        self._http = _HTTPXClient()
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=2,
        )
        self._flow = flow
        self._success_url = success_url
        self._cancel_url = cancel_url
        self._plan_success_url = plan_success_url
        self._plan_cancel_url = plan_cancel_url

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        if settings.stripe_secret_key is None:
            raise ValueError("Stripe payments need CREDITGRAPH_STRIPE_SECRET_KEY")
        return cls(
            settings.stripe_secret_key,
            api_base=settings.stripe_api_base,
            flow=settings.top_up_flow,
            success_url=settings.checkout_success_url,
            cancel_url=settings.checkout_cancel_url,
            plan_success_url=settings.plan_checkout_success_url,
            plan_cancel_url=settings.plan_checkout_cancel_url,
        )

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(self, *, organization_id: int, name: str) -> str:
        with _provider_errors("create a customer"):
            customer = await self._client.v1.customers.create_async(
                {"name": name, "metadata": {"creditgraph_organization_id": str(organization_id)}},
                {"idempotency_key": f"creditgraph-customer-{organization_id}"},
            )
        return customer.id

    async def start_payment(
        self, *, top_up_id: int, organization_id: int, customer_id: str, amount_cents: int
    ) -> Checkout:
        metadata = _metadata(top_up_id, organization_id)
        if self._flow == "checkout":
            return await self._start_checkout(top_up_id, customer_id, amount_cents, metadata)
        with _provider_errors("start a payment"):
            intent = await self._client.v1.payment_intents.create_async(
                {
                    "amount": amount_cents,
                    "currency": "usd",
                    "customer": customer_id,
                    # Keeps the card for auto-reload's off-session charges.
                    "setup_future_usage": "off_session",
                    "automatic_payment_methods": {"enabled": True},
                    "metadata": metadata,
                },
                _top_up_key(top_up_id),
            )
        return Checkout(intent.id, None, intent.client_secret, None)

    async def _start_checkout(
        self, top_up_id: int, customer_id: str, amount_cents: int, metadata: dict[str, str]
    ) -> Checkout:
        with _provider_errors("start a checkout"):
            session = await self._client.v1.checkout.sessions.create_async(
                {
                    "mode": "payment",
                    "customer": customer_id,
                    "line_items": [
                        {
                            "price_data": {
                                "currency": "usd",
                                "unit_amount": amount_cents,
                                "product_data": {"name": "Credits"},
                            },
                            "quantity": 1,
                        }
                    ],
                    "payment_intent_data": {
                        "setup_future_usage": "off_session",
                        "metadata": metadata,
                    },
                    "metadata": metadata,
                    "client_reference_id": str(top_up_id),
                    # replace(), not format(): Stripe fills in its own {CHECKOUT_SESSION_ID}.
                    "success_url": self._success_url.replace("{top_up_id}", str(top_up_id)),
                    "cancel_url": self._cancel_url.replace("{top_up_id}", str(top_up_id)),
                },
                _top_up_key(top_up_id),
            )
        # Stripe creates the PaymentIntent only once the payer submits the page.
        return Checkout(_id(session.payment_intent), session.id, None, session.url)

    async def charge_saved(
        self,
        *,
        top_up_id: int,
        organization_id: int,
        customer_id: str,
        payment_method_id: str,
        amount_cents: int,
    ) -> Payment:
        with _provider_errors("charge a saved card"):
            try:
                intent = await self._client.v1.payment_intents.create_async(
                    {
                        "amount": amount_cents,
                        "currency": "usd",
                        "customer": customer_id,
                        "payment_method": payment_method_id,
                        "off_session": True,
                        "confirm": True,
                        "metadata": _metadata(top_up_id, organization_id),
                        # The charge, for the receipt's card.
                        "expand": ["latest_charge"],
                    },
                    _top_up_key(top_up_id),
                )
            except stripe.CardError as decline:
                # A decline is an answer, not an outage: Stripe says why in words fit
                # for the payer, and returns the failed PaymentIntent with it.
                declined = decline.error.payment_intent if decline.error else None
                reason: str | None = decline.user_message
                return Payment("failed", _id(declined), None, reason or DECLINED)
        if intent.status == "requires_action":
            return Payment("failed", intent.id, None, NEEDS_AUTHENTICATION)
        if intent.status == "requires_payment_method" and intent.last_payment_error is None:
            return Payment("failed", intent.id, None, DECLINED)
        return _intent_payment(intent)

    async def saved_cards(self, *, customer_id: str) -> list[SavedCard]:
        with _provider_errors("list saved cards"):
            page = await self._client.v1.payment_methods.list_async(
                {"customer": customer_id, "type": "card", "limit": 100}
            )
            methods = [method async for method in page.auto_paging_iter()]
        return [card for method in methods if (card := _saved_card(method)) is not None]

    async def saved_card(self, *, customer_id: str, payment_method_id: str) -> SavedCard | None:
        with _provider_errors("look up a saved card"):
            try:
                method = await self._client.v1.payment_methods.retrieve_async(payment_method_id)
            except stripe.InvalidRequestError as error:
                if error.code == "resource_missing":
                    return None
                raise
        # Detached ones have no customer, and another customer's are not ours to touch.
        return _saved_card(method) if _id(method.customer) == customer_id else None

    async def remove_card(self, *, payment_method_id: str) -> None:
        with _provider_errors("remove a saved card"):
            await self._client.v1.payment_methods.detach_async(payment_method_id)

    async def refund(
        self, *, payment_intent_id: str, amount_cents: int, refunded_cents: int, key: str
    ) -> int:
        with _provider_errors("refund a payment"):
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": payment_intent_id, "amount": amount_cents},
                {"idempotency_key": key},
            )
            charge_id = _id(refund.charge)
            if charge_id is None:
                # Only refunds of payments without a charge lack one; ours all have one.
                return refunded_cents + refund.amount
            # The charge's total counts refunds made elsewhere (the dashboard) too.
            charge = await self._client.v1.charges.retrieve_async(charge_id)
        return charge.amount_refunded

    async def payment(
        self, *, payment_intent_id: str | None, checkout_session_id: str | None
    ) -> Payment:
        # A Checkout payer retries a declined card on the same page, so a checkout's
        # standing is the session's, not its PaymentIntent's last attempt.
        if checkout_session_id is not None:
            with _provider_errors("look up a checkout"):
                session = await self._client.v1.checkout.sessions.retrieve_async(
                    checkout_session_id,
                    {"expand": ["payment_intent", "payment_intent.latest_charge"]},
                )
            intent = session.payment_intent
            if session.status == "expired":
                return Payment("failed", _id(intent), None, "checkout expired")
            if session.payment_status == "paid":
                paid = intent if isinstance(intent, stripe.PaymentIntent) else None
                return Payment(
                    "succeeded",
                    _id(intent),
                    None if paid is None else _id(paid.payment_method),
                    card=None if paid is None else card_of(paid.latest_charge),
                    tax_cents=checkout_tax(session.to_dict()),
                )
            return Payment("pending", _id(intent))
        if payment_intent_id is None:
            raise ValueError("payment() needs a PaymentIntent or a Checkout Session id")
        with _provider_errors("look up a payment"):
            found = await self._client.v1.payment_intents.retrieve_async(
                payment_intent_id, {"expand": ["latest_charge"]}
            )
        return _intent_payment(found)

    async def start_subscription(
        self,
        *,
        organization_id: int,
        customer_id: str,
        plan_code: str,
        name: str,
        amount: int,
        currency: str,
        interval: Interval,
        interval_count: int,
        key: str,
    ) -> Checkout:
        # On the subscription (its invoices carry a copy) for the webhooks; on the
        # session for people reading the dashboard.
        metadata = {
            "creditgraph_organization_id": str(organization_id),
            "creditgraph_plan_code": plan_code,
        }
        with _provider_errors("start a subscription"):
            session = await self._client.v1.checkout.sessions.create_async(
                {
                    "mode": "subscription",
                    "customer": customer_id,
                    "line_items": [
                        {
                            "price_data": {
                                "currency": currency.lower(),
                                "unit_amount": amount,
                                "recurring": {
                                    "interval": interval,
                                    "interval_count": interval_count,
                                },
                                "product_data": {"name": name},
                            },
                            "quantity": 1,
                        }
                    ],
                    "subscription_data": {"metadata": metadata},
                    "metadata": metadata,
                    "client_reference_id": str(organization_id),
                    "success_url": self._plan_success_url.replace("{plan_code}", plan_code),
                    "cancel_url": self._plan_cancel_url.replace("{plan_code}", plan_code),
                },
                {"idempotency_key": key},
            )
        return Checkout(None, session.id, None, session.url)

    async def subscription_invoice(self, invoice_id: str) -> SubscriptionInvoice | None:
        with _provider_errors("look up an invoice"):
            invoice = await self._client.v1.invoices.retrieve_async(invoice_id)
        return subscription_invoice(invoice.to_dict())

    async def renew_subscription(self, *, subscription_id: str, renew: bool) -> None:
        with _provider_errors("change a subscription"):
            await self._client.v1.subscriptions.update_async(
                subscription_id, {"cancel_at_period_end": not renew}
            )

    async def cancel_subscription(self, *, subscription_id: str) -> None:
        with _provider_errors("cancel a subscription"):
            await self._client.v1.subscriptions.cancel_async(subscription_id)

"""What creditgraph asks of a payment provider, and the fake one for local development.

Amounts cross this boundary in cents (the unit card payments settle in; a plan's price,
in the minor unit of its currency: ``minor_units``); everything inside creditgraph stays
in credits. Every call that creates something at the provider carries an idempotency
key derived from our own ids, so a retried request never charges twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import delete, func, insert, select

from app.db import Database, table
from app.payments.tables import FakeCard

PaymentStatus = Literal["pending", "succeeded", "failed"]
Interval = Literal["month", "week"]

# Currencies a provider counts in whole units (Stripe's zero-decimal currencies); the
# others, in hundredths (cents, fen).
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA"}
    | {"PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)


def _per_minor_unit(currency: str) -> int:
    return 1_000_000 if currency.upper() in ZERO_DECIMAL else 10_000


def minor_units(micro: int, currency: str) -> int | None:
    """``micro`` millionths of ``currency`` in its minor unit, as a provider charges it;
    None when that is not a whole number of them."""
    per = _per_minor_unit(currency)
    return None if micro % per else micro // per


def from_minor_units(amount: int, currency: str) -> int:
    """An amount in the minor unit of ``currency`` (as a provider reports it) in millionths."""
    return amount * _per_minor_unit(currency)


class PaymentError(Exception):
    """The provider refused or could not be reached; ``message`` is safe to show a payer."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Checkout:
    """How the payer completes a payment: Stripe Elements confirms ``client_secret`` in
    the page; Stripe Checkout is a hosted page at ``checkout_url``."""

    payment_intent_id: str | None
    checkout_session_id: str | None
    client_secret: str | None
    checkout_url: str | None


@dataclass(frozen=True, slots=True)
class Card:
    """The card a payment was made with, as receipts show it."""

    brand: str  # "visa", "mastercard", as Stripe names them
    last4: str


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment as the provider sees it now."""

    status: PaymentStatus
    payment_intent_id: str | None
    # The card kept for off-session charges (auto-reload), when the payer agreed to it.
    payment_method_id: str | None = None
    failure_reason: str | None = None
    # The card charged, when the provider says (its charge's payment_method_details).
    card: Card | None = None
    # The tax within the amount, in cents, when the provider computed one (Stripe Tax).
    tax_cents: int | None = None


@dataclass(frozen=True, slots=True)
class SavedCard:
    """A card saved at the provider for a customer's off-session charges."""

    id: str  # the provider's: Stripe's "pm_..."
    brand: str  # as the provider names it: "visa", "mastercard", "amex"
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class SubscriptionInvoice:
    """An invoice of a subscription at the provider, with what creditgraph put in the
    subscription's metadata (None when absent or malformed)."""

    invoice_id: str
    subscription_id: str
    status: str  # "paid" once paid
    # "subscription_create" (its first), "subscription_cycle" (a renewal), or another.
    billing_reason: str
    amount_paid: int  # in the currency's minor unit
    currency: str  # as the provider writes it: "usd"
    period_start: datetime  # the period the invoice pays for, from its line
    period_end: datetime
    organization_id: int | None
    plan_code: str | None
    # The tax within ``amount_paid`` (minor unit), when Stripe Tax computed one.
    tax: int | None = None


class PaymentProvider(Protocol):
    name: str
    # True for the fake provider: a payment it starts has already succeeded.
    settles_at_once: bool

    async def create_customer(self, *, organization_id: int, name: str) -> str:
        """The provider's customer for an organization; saved cards hang off it."""
        ...

    async def start_payment(
        self, *, top_up_id: int, organization_id: int, customer_id: str, amount_cents: int
    ) -> Checkout:
        """Begin collecting ``amount_cents`` USD from the payer, saving the card for later."""
        ...

    async def charge_saved(
        self,
        *,
        top_up_id: int,
        organization_id: int,
        customer_id: str,
        payment_method_id: str,
        amount_cents: int,
    ) -> Payment:
        """Charge a saved card with nobody present (auto-reload); a decline is ``failed``."""
        ...

    async def saved_cards(self, *, customer_id: str) -> list[SavedCard]:
        """The customer's saved cards, newest first."""
        ...

    async def saved_card(self, *, customer_id: str, payment_method_id: str) -> SavedCard | None:
        """The customer's saved card ``payment_method_id``; None when there is no such card
        or it is another customer's."""
        ...

    async def remove_card(self, *, payment_method_id: str) -> None:
        """Detach a saved card from its customer: it can never be charged again."""
        ...

    async def refund(
        self, *, payment_intent_id: str, amount_cents: int, refunded_cents: int, key: str
    ) -> int:
        """Refund ``amount_cents`` more of a payment of which we know ``refunded_cents``
        were refunded already; returns the refunded total in cents as the provider now
        reports it. ``key`` is the idempotency key."""
        ...

    async def payment(
        self, *, payment_intent_id: str | None, checkout_session_id: str | None
    ) -> Payment:
        """Ask the provider where a payment stands (reconciling a missed webhook)."""
        ...

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
        """A hosted page where the payer subscribes to a plan: ``amount`` (in the minor
        unit of ``currency``) every ``interval_count`` ``interval``s. The subscription
        exists once the page is paid; its invoices say which periods are paid for.
        ``key`` is the idempotency key."""
        ...

    async def subscription_invoice(self, invoice_id: str) -> SubscriptionInvoice | None:
        """A subscription's invoice as the provider has it now; None if it is not one."""
        ...

    async def renew_subscription(self, *, subscription_id: str, renew: bool) -> None:
        """Whether a subscription renews at its period's end (False: it ends then)."""
        ...

    async def cancel_subscription(self, *, subscription_id: str) -> None:
        """End a subscription now, refunding nothing."""
        ...

    async def close(self) -> None:
        """Release connections, at shutdown."""
        ...


fake_cards_t = table(FakeCard)
# Stripe's test cards (brand, last four), which the fake provider's payers take in turn.
FAKE_CARDS = (("visa", "4242"), ("mastercard", "4444"), ("amex", "0005"))


class FakeProvider:
    """Payments that succeed at once, for local development and demos.

    Runtime refuses it in production and whenever Stripe keys are configured, so it can
    never mint credits on a real deployment. Each payment's payer enters another card,
    which is saved in the database (``FakeCard``) as Stripe would keep it, so a process
    sees the cards another saved (the demo seeds in one and serves in the next).
    """

    name = "fake"
    settles_at_once = True

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_customer(self, *, organization_id: int, name: str) -> str:
        return f"cus_fake_{organization_id}"

    async def start_payment(
        self, *, top_up_id: int, organization_id: int, customer_id: str, amount_cents: int
    ) -> Checkout:
        # The fake's own rows, which no cached answer reads: outside ``Database.write``.
        async with self._db.writer.begin() as conn:
            saved = await conn.scalar(
                select(func.count()).where(fake_cards_t.c.customer_id == customer_id)
            )
            brand, last4 = FAKE_CARDS[(saved or 0) % len(FAKE_CARDS)]
            await conn.execute(
                insert(fake_cards_t).values(
                    payment_method_id=_fake_card(top_up_id),
                    customer_id=customer_id,
                    brand=brand,
                    last4=last4,
                    exp_month=12,
                    exp_year=datetime.now(UTC).year + 4,
                )
            )
        return Checkout(f"pi_fake_{top_up_id}", None, None, None)

    async def saved_cards(self, *, customer_id: str) -> list[SavedCard]:
        async with self._db.reader.connect() as conn:
            rows = await conn.execute(
                select(fake_cards_t)
                .where(fake_cards_t.c.customer_id == customer_id)
                .order_by(fake_cards_t.c.id.desc())
            )
            return [_saved(row) for row in rows]

    async def saved_card(self, *, customer_id: str, payment_method_id: str) -> SavedCard | None:
        async with self._db.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(fake_cards_t).where(
                        fake_cards_t.c.customer_id == customer_id,
                        fake_cards_t.c.payment_method_id == payment_method_id,
                    )
                )
            ).first()
        return None if row is None else _saved(row)

    async def remove_card(self, *, payment_method_id: str) -> None:
        async with self._db.writer.begin() as conn:
            await conn.execute(
                delete(fake_cards_t).where(fake_cards_t.c.payment_method_id == payment_method_id)
            )

    async def charge_saved(
        self,
        *,
        top_up_id: int,
        organization_id: int,
        customer_id: str,
        payment_method_id: str,
        amount_cents: int,
    ) -> Payment:
        # As Stripe refuses a detached card: one removed (or never saved) is not charged.
        card = await self.saved_card(customer_id=customer_id, payment_method_id=payment_method_id)
        if card is not None:
            shown = Card(card.brand, card.last4)
            return Payment("succeeded", f"pi_fake_{top_up_id}", payment_method_id, card=shown)
        return Payment("failed", None, None, "the saved card was removed")

    async def refund(
        self, *, payment_intent_id: str, amount_cents: int, refunded_cents: int, key: str
    ) -> int:
        return refunded_cents + amount_cents

    async def payment(
        self, *, payment_intent_id: str | None, checkout_session_id: str | None
    ) -> Payment:
        # The card its payer entered when it started (``start_payment``).
        top_up_id = (payment_intent_id or "").removeprefix("pi_fake_")
        card = _fake_card(top_up_id)
        async with self._db.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(fake_cards_t.c.brand, fake_cards_t.c.last4).where(
                        fake_cards_t.c.payment_method_id == card
                    )
                )
            ).first()
        shown = None if row is None else Card(row.brand, row.last4)
        return Payment("succeeded", payment_intent_id, card, card=shown)

    # The fake provider bills no subscriptions: with it a paid plan applies at once
    # (``settles_at_once``), so plans never ask it for one.

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
        raise PaymentError(NO_SUBSCRIPTIONS)

    async def subscription_invoice(self, invoice_id: str) -> SubscriptionInvoice | None:
        raise PaymentError(NO_SUBSCRIPTIONS)

    async def renew_subscription(self, *, subscription_id: str, renew: bool) -> None:
        raise PaymentError(NO_SUBSCRIPTIONS)

    async def cancel_subscription(self, *, subscription_id: str) -> None:
        raise PaymentError(NO_SUBSCRIPTIONS)

    async def close(self) -> None:
        pass


NO_SUBSCRIPTIONS = "the fake payment provider bills no subscriptions"


def _fake_card(top_up_id: int | str) -> str:
    return f"pm_fake_{top_up_id}"


def _saved(row: Any) -> SavedCard:
    return SavedCard(row.payment_method_id, row.brand, row.last4, row.exp_month, row.exp_year)

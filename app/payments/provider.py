"""What creditgraph asks of a payment provider, and the fake one for local development.

Amounts cross this boundary in cents (the unit card payments settle in); everything
inside creditgraph stays in credits. Every call that creates something at the provider
carries an idempotency key derived from our own row ids, so a retried request never
charges twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

PaymentStatus = Literal["pending", "succeeded", "failed"]


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
class Payment:
    """A payment as the provider sees it now."""

    status: PaymentStatus
    payment_intent_id: str | None
    # The card kept for off-session charges (auto-reload), when the payer agreed to it.
    payment_method_id: str | None = None
    failure_reason: str | None = None


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

    async def close(self) -> None:
        """Release connections, at shutdown."""
        ...


class FakeProvider:
    """Payments that succeed at once, for local development and demos.

    Runtime refuses it in production and whenever Stripe keys are configured, so it can
    never mint credits on a real deployment.
    """

    name = "fake"
    settles_at_once = True

    async def create_customer(self, *, organization_id: int, name: str) -> str:
        return f"cus_fake_{organization_id}"

    async def start_payment(
        self, *, top_up_id: int, organization_id: int, customer_id: str, amount_cents: int
    ) -> Checkout:
        return Checkout(f"pi_fake_{top_up_id}", None, None, None)

    async def charge_saved(
        self,
        *,
        top_up_id: int,
        organization_id: int,
        customer_id: str,
        payment_method_id: str,
        amount_cents: int,
    ) -> Payment:
        return Payment("succeeded", f"pi_fake_{top_up_id}", payment_method_id)

    async def refund(
        self, *, payment_intent_id: str, amount_cents: int, refunded_cents: int, key: str
    ) -> int:
        return refunded_cents + amount_cents

    async def payment(
        self, *, payment_intent_id: str | None, checkout_session_id: str | None
    ) -> Payment:
        return Payment("succeeded", payment_intent_id, FAKE_CARD)

    async def close(self) -> None:
        pass


# The card the fake provider "saves" with every payment, so auto-reload works locally.
FAKE_CARD = "pm_fake_card"

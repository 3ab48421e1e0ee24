"""Saved cards: the provider's list of an organization's cards, and which one automatic
charges use.

The provider keeps the cards (Stripe: the customer's card PaymentMethods, saved by the
payments made with ``setup_future_usage``); the billing account keeps the one that
auto-reload, autoScale and overage billing charge (``payment_method_id``). A payment's
card becomes that one when none is chosen (``Payments._save_card``); choosing another
here replaces it. Removing a card detaches it at the provider, for good; removing the
chosen one leaves automatic charges without a card until another is chosen or a top-up
paid by card saves one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from app import audit
from app.ledger.state import accounts_t
from app.payments.customers import ensure_account
from app.payments.provider import PaymentProvider, SavedCard
from app.payments.service import Payments, PaymentsUnavailable

# The width of ``BillingAccount.payment_method_id``: a longer id is no saved card's.
_MAX_ID = 255


class NoSuchCard(LookupError):
    """No saved card of the organization's has this id (another's, removed, or unknown)."""


@dataclass(frozen=True, slots=True)
class Cards:
    """The organization's saved cards, newest first, and the id of the one automatic
    charges use (None: none; it may be missing from ``saved`` when it was removed at the
    provider directly)."""

    saved: list[SavedCard]
    default_id: str | None


async def _account(payments: Payments, organization_id: int) -> tuple[str | None, str | None]:
    """The organization's customer at the provider and its chosen card's id."""
    async with payments.db.reader.connect() as conn:
        row = (
            await conn.execute(
                select(accounts_t.c.customer_id, accounts_t.c.payment_method_id).where(
                    accounts_t.c.organization_id == organization_id
                )
            )
        ).first()
    return (None, None) if row is None else (row.customer_id, row.payment_method_id)


async def saved_cards(payments: Payments, organization_id: int) -> Cards:
    """The organization's saved cards, as the provider has them now (PaymentError when
    it cannot be reached); none without a provider or before a first payment."""
    customer_id, default_id = await _account(payments, organization_id)
    if payments.provider is None or customer_id is None:
        return Cards([], default_id)
    return Cards(await payments.provider.saved_cards(customer_id=customer_id), default_id)


async def _card(
    payments: Payments, organization_id: int, payment_method_id: str
) -> tuple[PaymentProvider, SavedCard]:
    """The provider and the organization's saved card ``payment_method_id`` (else
    NoSuchCard)."""
    provider = payments.provider
    if provider is None:
        raise PaymentsUnavailable("payments are not configured on this server")
    customer_id, _ = await _account(payments, organization_id)
    card = None
    if customer_id is not None and 0 < len(payment_method_id) <= _MAX_ID:
        card = await provider.saved_card(
            customer_id=customer_id, payment_method_id=payment_method_id
        )
    if card is None:
        raise NoSuchCard("no such saved card")
    return provider, card


async def choose_card(
    payments: Payments, organization_id: int, payment_method_id: str, *, actor: str
) -> SavedCard:
    """Make a saved card the one automatic charges use (audited); choosing lifts the pause
    a declined charge left, as paying with a card does."""
    _, card = await _card(payments, organization_id, payment_method_id)
    where = accounts_t.c.organization_id == organization_id
    async with payments.db.write(organization_id) as conn:
        await ensure_account(conn, organization_id)
        before = await conn.scalar(
            select(accounts_t.c.payment_method_id).where(where).with_for_update()
        )
        await conn.execute(
            update(accounts_t)
            .where(where)
            .values(payment_method_id=card.id, auto_reload_failure=None)
        )
        await audit.record(
            conn,
            organization_id=organization_id,
            actor=actor,
            action="payment_method.default",
            target=f"payment_method:{card.id}",
            at=payments.clock.now(),
            before={"payment_method_id": before},
            after={"payment_method_id": card.id, "brand": card.brand, "last4": card.last4},
        )
    return card


async def remove_card(
    payments: Payments, organization_id: int, payment_method_id: str, *, actor: str
) -> None:
    """Detach a saved card at the provider (audited). Removing the chosen one leaves
    automatic charges without a card (nothing reloads, autoScale buys nothing, overage
    stays owed), and the pause a decline of it left goes with it."""
    provider, card = await _card(payments, organization_id, payment_method_id)
    await provider.remove_card(payment_method_id=card.id)
    a = accounts_t.c
    async with payments.db.write(organization_id) as conn:
        cleared = await conn.execute(
            update(accounts_t)
            .where(a.organization_id == organization_id, a.payment_method_id == card.id)
            .values(payment_method_id=None, auto_reload_failure=None)
        )
        await audit.record(
            conn,
            organization_id=organization_id,
            actor=actor,
            action="payment_method.remove",
            target=f"payment_method:{card.id}",
            at=payments.clock.now(),
            before={
                "payment_method_id": card.id,
                "brand": card.brand,
                "last4": card.last4,
                "default": cleared.rowcount > 0,
            },
        )

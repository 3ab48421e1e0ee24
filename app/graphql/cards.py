"""Saved cards: ``Organization.paymentMethods``, ``setDefaultPaymentMethod`` and
``removePaymentMethod``, for owners and admins (``app.payments.cards``)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import ADMINS, Info
from app.graphql.errors import Code, error
from app.graphql.payloads import Refused, UserError, UserErrorCode, caller, refused
from app.graphql.payments import AutoReload, auto_reload, payments_unavailable
from app.payments.cards import NoSuchCard, choose_card, remove_card, saved_cards
from app.payments.provider import PaymentError, SavedCard
from app.payments.service import PaymentsUnavailable


@strawberry.type(
    description="A card saved at the payment provider by a top-up paid by card (Stripe: "
    "a PaymentMethod of the organization's customer)."
)
class PaymentMethod:
    id: strawberry.ID = strawberry.field(
        description="The provider's ID (Stripe's \"pm_...\"): what setDefaultPaymentMethod "
        "and removePaymentMethod take."
    )
    brand: str = strawberry.field(
        description='The card network as the provider names it: "visa", "mastercard", "amex", ...'
    )
    last4: str = strawberry.field(description="The last four digits of the card number.")
    exp_month: int = strawberry.field(description="The month it expires, 1 to 12.")
    exp_year: int = strawberry.field(description="The year it expires, four digits.")
    is_default: bool = strawberry.field(
        description="Whether this is the card that auto-reload, autoScale and overage "
        "billing charge; at most one is."
    )

    @classmethod
    def of(cls, card: SavedCard, default_id: str | None) -> PaymentMethod:
        return cls(
            id=strawberry.ID(card.id),
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            is_default=card.id == default_id,
        )


async def payment_methods(info: Info, organization_id: int) -> list[PaymentMethod]:
    """The saved cards, read from the provider; owners and admins only."""
    info.context.caller(*ADMINS)
    try:
        cards = await saved_cards(info.context.runtime.payments, organization_id)
    except PaymentError as exc:
        raise error(Code.UNAVAILABLE, exc.message) from None
    return [PaymentMethod.of(card, cards.default_id) for card in cards.saved]


@strawberry.input(description="The saved card to make auto-reload's.")
class SetDefaultPaymentMethodInput:
    payment_method_id: strawberry.ID = strawberry.field(
        description="A PaymentMethod's id; one that is not the organization's saved card "
        "(another organization's, removed, unknown) is NOT_FOUND."
    )


@strawberry.type(description="The card auto-reload charges now.")
class SetDefaultPaymentMethodPayload:
    payment_method: PaymentMethod | None = strawberry.field(
        default=None, description="The chosen card; null when there are userErrors."
    )
    auto_reload: AutoReload | None = strawberry.field(
        default=None, description="Auto-reload as it is now; null when there are userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


@strawberry.input(description="The saved card to remove.")
class RemovePaymentMethodInput:
    payment_method_id: strawberry.ID = strawberry.field(
        description="A PaymentMethod's id; one that is not the organization's saved card "
        "(another organization's, removed, unknown) is NOT_FOUND."
    )


@strawberry.type(description="The card removed, and auto-reload without it.")
class RemovePaymentMethodPayload:
    removed_payment_method_id: strawberry.ID | None = strawberry.field(
        default=None, description="The card removed; null when there are userErrors."
    )
    auto_reload: AutoReload | None = strawberry.field(
        default=None,
        description="Auto-reload as it is now: cardSaved is false when the card removed "
        "was the default. Null when there are userErrors.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why nothing was changed; empty on success."
    )


# Why a card cannot be chosen or removed now.
_CARD_ERRORS = (NoSuchCard, PaymentsUnavailable, PaymentError)


def _refusal(exc: NoSuchCard | PaymentsUnavailable | PaymentError) -> Refused:
    if isinstance(exc, NoSuchCard):
        return refused(UserErrorCode.NOT_FOUND, str(exc), "paymentMethodId")
    if isinstance(exc, PaymentsUnavailable):
        return payments_unavailable()
    return refused(UserErrorCode.PAYMENT_FAILED, exc.message)


@strawberry.type
class PaymentMethodMutations:
    @strawberry.mutation(
        description="Choose the saved card that auto-reload, autoScale and overage billing "
        "charge (owners and admins; audited as payment_method.default). Choosing lifts the "
        "pause a declined charge left. A later top-up paid with another card saves that "
        "card without changing the choice."
    )
    async def set_default_payment_method(
        self,
        info: Info,
        input: Annotated[
            SetDefaultPaymentMethodInput, strawberry.argument(description="The card.")
        ],
    ) -> SetDefaultPaymentMethodPayload:
        payments = info.context.runtime.payments
        try:
            principal = caller(info, *ADMINS)
            try:
                card = await choose_card(
                    payments,
                    principal.organization_id,
                    input.payment_method_id,
                    actor=principal.actor,
                )
            except _CARD_ERRORS as exc:
                raise _refusal(exc) from None
        except Refused as refusal:
            return SetDefaultPaymentMethodPayload(user_errors=refusal.errors)
        return SetDefaultPaymentMethodPayload(
            payment_method=PaymentMethod.of(card, card.id),
            auto_reload=await auto_reload(info, principal.organization_id),
        )

    @strawberry.mutation(
        description="Remove a saved card (owners and admins; audited as "
        "payment_method.remove): it is detached at the payment provider and can never be "
        "charged again. Removing the default leaves no card to charge: auto-reload stops "
        "reloading (AutoReload.cardSaved turns false), autoScale refuses to buy "
        "(auto_scale_unavailable) and overage stays owed, until a card is chosen with "
        "setDefaultPaymentMethod or a top-up paid by card saves one."
    )
    async def remove_payment_method(
        self,
        info: Info,
        input: Annotated[RemovePaymentMethodInput, strawberry.argument(description="The card.")],
    ) -> RemovePaymentMethodPayload:
        payments = info.context.runtime.payments
        try:
            principal = caller(info, *ADMINS)
            try:
                await remove_card(
                    payments,
                    principal.organization_id,
                    input.payment_method_id,
                    actor=principal.actor,
                )
            except _CARD_ERRORS as exc:
                raise _refusal(exc) from None
        except Refused as refusal:
            return RemovePaymentMethodPayload(user_errors=refusal.errors)
        return RemovePaymentMethodPayload(
            removed_payment_method_id=input.payment_method_id,
            auto_reload=await auto_reload(info, principal.organization_id),
        )

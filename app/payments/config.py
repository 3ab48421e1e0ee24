"""Which payment provider a process uses, from its settings; refusing unsafe setups."""

from __future__ import annotations

from app.db import Database
from app.payments.provider import FakeProvider, PaymentProvider
from app.payments.stripe_provider import StripeProvider
from app.settings import Settings


class PaymentConfigError(ValueError):
    """Settings that would take money wrongly: the process refuses to start."""


def payment_provider(settings: Settings, db: Database) -> PaymentProvider | None:
    """Stripe when its keys are set; else the fake one in development (the default
    there, so the demo can top up), keeping its saved cards in ``db``; else none, and
    top-ups say payments are off."""
    stripe_keys = settings.stripe_secret_key is not None
    if settings.payment_provider == "fake" or (
        settings.payment_provider is None and not stripe_keys and not settings.is_production
    ):
        if stripe_keys:
            raise PaymentConfigError(
                "the fake payment provider is refused when Stripe keys are set"
            )
        if settings.is_production:
            raise PaymentConfigError("the fake payment provider is refused in production")
        return FakeProvider(db)
    if not stripe_keys:
        if settings.payment_provider == "stripe":
            raise PaymentConfigError("the Stripe provider needs CREDITGRAPH_STRIPE_SECRET_KEY")
        return None
    if settings.stripe_webhook_secret is None:
        # Without it no webhook can be verified, so no payment would ever settle.
        raise PaymentConfigError("Stripe needs CREDITGRAPH_STRIPE_WEBHOOK_SECRET as well")
    return StripeProvider.from_settings(settings)

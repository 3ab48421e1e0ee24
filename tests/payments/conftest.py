"""The Stripe stand-in on a local port, and creditgraph paying through it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe

from app.clock import Clock
from app.settings import Settings
from tests.conftest import Harness, running_app
from tests.payments import stripe_events
from tests.payments.stripe_standin import StripeStandin


@pytest.fixture
async def stripe_standin(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StripeStandin]:
    # The library backs off 0.5 s and more between retries; tests of outages need not wait.
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    async with StripeStandin().serve() as standin:
        yield standin


WEBHOOK_SECRET = "whsec_test_creditgraph"


@dataclass
class StripeHarness:
    """The app paying through the stand-in, and a way to send it signed webhooks."""

    app: Harness
    standin: StripeStandin

    async def webhook(
        self, evt: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
    ) -> httpx.Response:
        payload = stripe_events.body(evt)
        signature = stripe_events.sign(payload, secret, timestamp)
        return await self.app.http.post(
            "/webhooks/stripe",
            content=payload,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )


def stripe_settings(settings: Settings, standin: StripeStandin, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "stripe_secret_key": standin.secret_key,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "stripe_api_base": standin.url,
        }
        | extra
    )


@pytest.fixture
async def paying(
    settings: Settings, clock: Clock, stripe_standin: StripeStandin
) -> AsyncIterator[StripeHarness]:
    """creditgraph with Stripe (Elements flow) pointed at the stand-in."""
    async with running_app(stripe_settings(settings, stripe_standin), clock) as app:
        yield StripeHarness(app, stripe_standin)

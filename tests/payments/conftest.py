"""The Stripe stand-in, running on a local port for the ``stripe`` library to talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import stripe

from tests.payments.stripe_standin import StripeStandin


@pytest.fixture
async def stripe_standin(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StripeStandin]:
    # The library backs off 0.5 s and more between retries; tests of outages need not wait.
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    async with StripeStandin().serve() as standin:
        yield standin

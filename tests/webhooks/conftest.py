"""Webhooks tests: deliveries may go to this host, retried after 30 s, 3 attempts in all,
on a frozen clock; a receiver to send them to (``tests.alerts.conftest``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from app.clock import FrozenClock
from app.settings import Settings
from tests.alerts.conftest import receiver  # noqa: F401  (the fixture)
from tests.conftest import Harness, running_app

START = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
BACKOFF = 30.0
MAX_ATTEMPTS = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "alert_webhook_allow_private": True,
            "alert_webhook_backoff_seconds": BACKOFF,
            "alert_webhook_max_attempts": MAX_ATTEMPTS,
        }
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Harness]:
    async with running_app(settings, clock) as harness:
        yield harness

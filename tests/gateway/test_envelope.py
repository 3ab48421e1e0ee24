"""The quota envelope as the seeds show it: USD with two decimals, rounded down (a
positive amount under a cent exact, never "0.00"), and a reset that is never 0."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from app.clock import Clock, FrozenClock
from app.keys.service import Caps
from app.ledger.state import orgs_t
from app.money import parse_usd
from tests.conftest import Harness, usage_event

T0 = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


async def test_amounts_are_usd_rounded_down(harness: Harness) -> None:
    org = await harness.org(grant_usd="8420.659999")
    key = await harness.key(org, caps=Caps(quota=parse_usd("192.409"), limit_1d=parse_usd("50")))
    allowed = await harness.authorize(key, "a")
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["X-RateLimit-Limit"] == "50.00"
    assert allowed.headers["X-RateLimit-Remaining"] == "50.00"
    assert allowed.headers["X-Quota-Remaining-Credits"] == "192.40"
    assert allowed.headers["X-Org-Quota-Remaining-Credits"] == "8420.65"


async def test_under_a_cent_is_room_and_zero_is_the_cap(harness: Harness) -> None:
    org = await harness.org(grant_usd="10")
    # usage_event costs $0.006: a quota of $0.0105 leaves $0.0045 after it.
    key = await harness.key(org, caps=Caps(quota=parse_usd("0.0105")))
    await harness.usage(org, usage_event(key.id, "r1"))
    room = await harness.authorize(key, "a")
    assert room.status_code == 200, room.text
    assert room.headers["X-Quota-Remaining-Credits"] == "0.0045"
    assert room.headers["X-RateLimit-Remaining"] == "0.0045"
    await harness.usage(org, usage_event(key.id, "a", completion_tokens=0, prompt_tokens=1500))
    refused = await harness.authorize(key, "b")
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "quota_exhausted"
    assert refused.headers["X-Quota-Remaining-Credits"] == "0.00"
    assert refused.headers["X-RateLimit-Remaining"] == "0.00"


async def test_reset_is_now_for_the_wallet_and_next_month_for_the_spend_cap(
    harness: Harness,
) -> None:
    org = await harness.org(grant_usd="10")
    key = await harness.key(org)
    wallet = await harness.authorize(key, "a")
    assert wallet.headers["X-RateLimit-Reset"] == str(int(T0.timestamp()))
    async with harness.runtime.db.write(None) as conn:
        await conn.execute(
            update(orgs_t).where(orgs_t.c.id == org.id).values(spend_cap_monthly=2_000_000)
        )
    capped = await harness.authorize(key, "b")
    assert capped.headers["X-RateLimit-Limit"] == "2.00"
    assert capped.headers["X-RateLimit-Remaining"] == "2.00"
    december = datetime(2026, 12, 1, tzinfo=UTC)
    assert capped.headers["X-RateLimit-Reset"] == str(int(december.timestamp()))

"""Behaviour over time, under a frozen clock: rolling windows, lot expiry, stale holds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app import maintenance
from app.clock import Clock, FrozenClock
from app.ids import to_global_id
from app.keys.service import Caps
from app.ledger.book import entries_t
from app.ledger.state import lots_t, marks_t, usage_t, wallets
from app.money import parse_usd
from app.operations import adjust
from app.orgs.service import OrgRef
from tests.conftest import Harness

T0 = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


def frozen(harness: Harness) -> FrozenClock:
    clock = harness.runtime.clock
    assert isinstance(clock, FrozenClock)
    return clock


async def _bill(harness: Harness, key_id: str, org: OrgRef, request_id: str) -> None:
    # 10,000 prompt tokens of gpt-5-mini at $0.25/M = $0.0025 = 2,500 credits.
    (result,) = await harness.usage(
        org,
        {
            "request_id": request_id,
            "api_key_id": key_id,
            "model": "gpt-5-mini",
            "prompt_tokens": 10_000,
        },
    )
    assert result["outcome"] == "billed"


async def test_spend_leaves_the_5h_window_exactly_5h_later(harness: Harness) -> None:
    org = await harness.org(grant_usd="100")
    key = await harness.key(org, caps=Caps(limit_5h=2_500))
    key_id = (await harness.authorize(key, "probe")).json()["api_key_id"]
    await _bill(harness, key_id, org, "spend")

    frozen(harness).advance(timedelta(hours=5) - timedelta(seconds=1))
    refused = await harness.authorize(key, "inside")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    reset = int((T0 + timedelta(hours=5)).timestamp())
    assert refused.headers["X-RateLimit-Reset"] == str(reset)
    assert refused.headers["Retry-After"] == "1"

    frozen(harness).advance(timedelta(seconds=1))
    allowed = await harness.authorize(key, "outside")
    assert allowed.status_code == 200
    assert allowed.headers["X-RateLimit-Remaining"] == "0.0025"


async def test_windows_count_every_spend_inside_them(harness: Harness) -> None:
    org = await harness.org(grant_usd="100")
    key = await harness.key(org, caps=Caps(limit_1d=10_000))
    key_id = (await harness.authorize(key, "probe")).json()["api_key_id"]
    for hour in range(4):  # 4 x 2,500 at T0, +6h, +12h, +18h
        await _bill(harness, key_id, org, f"spend-{hour}")
        frozen(harness).advance(timedelta(hours=6))
    # Now T0 + 24h: the first spend has just left; three remain (7,500 of 10,000).
    response = await harness.authorize(key, "check")
    assert response.headers["X-RateLimit-Limit"] == "0.01"
    assert response.headers["X-RateLimit-Remaining"] == "0.0025"
    assert response.headers["X-RateLimit-Reset"] == str(int((T0 + timedelta(hours=30)).timestamp()))
    assert (await harness.authorize(key, "over", hold_usd="0.002501")).status_code == 429
    assert await harness.books() == []


async def test_expiring_lots_are_spent_first_and_the_rest_expires(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")  # never expires
    await adjust(
        harness.runtime,
        org.id,
        parse_usd("0.01"),
        "promo",
        actor="test",
        expires_at=T0 + timedelta(days=28),
    )
    key = await harness.key(org)
    key_id = (await harness.authorize(key, "probe")).json()["api_key_id"]
    await _bill(harness, key_id, org, "a")  # 2,500 from the expiring lot

    async with harness.runtime.db.reader.connect() as conn:
        lots = (await conn.execute(select(lots_t).order_by(lots_t.c.id))).all()
    assert [lot.remaining for lot in lots] == [1_000_000, 7_500]

    frozen(harness).advance(timedelta(days=28))
    swept = await maintenance.run_once(harness.runtime)
    assert swept.lots_expired == 1
    assert await maintenance.run_once(harness.runtime) == maintenance.Swept(0, 0, 0, 0, 0, 0)

    async with harness.runtime.db.reader.connect() as conn:
        last = (
            await conn.execute(select(entries_t).order_by(entries_t.c.version.desc()).limit(1))
        ).one()
    assert (last.kind, last.amount, last.balance_after) == ("expiry", -7_500, 1_000_000)
    assert await harness.balance(org) == (1_000_000, 0)
    assert await harness.books() == []


async def test_unsettled_holds_expire_after_their_ttl(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    assert (await harness.authorize(key, "lost", hold_usd="1")).status_code == 200
    assert (await harness.authorize(key, "next", hold_usd="0.01")).status_code == 402

    frozen(harness).advance(timedelta(seconds=harness.runtime.settings.hold_ttl_seconds - 1))
    assert (await maintenance.run_once(harness.runtime)).holds_expired == 0
    frozen(harness).advance(timedelta(seconds=1))
    assert (await maintenance.run_once(harness.runtime)).holds_expired == 1

    assert await harness.balance(org) == (1_000_000, 0)
    assert (await harness.authorize(key, "next", hold_usd="0.01")).status_code == 200
    assert await harness.books() == []


async def test_old_spend_marks_are_pruned_and_windows_stay_exact(harness: Harness) -> None:
    org = await harness.org(grant_usd="100")
    key = await harness.key(org, caps=Caps(limit_7d=10_000))
    key_id = (await harness.authorize(key, "probe")).json()["api_key_id"]
    for n in range(3):  # spends at T0, T0 + 4d, T0 + 8d
        await _bill(harness, key_id, org, f"spend-{n}")
        frozen(harness).advance(timedelta(days=4))
    # At T0 + 12d the marks of T0 and T0 + 4d are both outside 7 days; only the newer
    # one is still needed, as the 7-day window's baseline.
    assert (await maintenance.run_once(harness.runtime)).marks_pruned == 1
    response = await harness.authorize(key, "check")
    assert response.headers["X-RateLimit-Remaining"] == "0.0075"
    assert await harness.books() == []


async def test_a_write_that_waited_for_the_lock_is_stamped_when_it_got_it(
    harness: Harness,
) -> None:
    """Another writer (an instance, the CLI) holds the wallet while time passes: the usage
    that waited is stamped once it holds the lock, never before a commit it waited for,
    so spend marks and entries stay in time order."""
    org = await harness.org("acme", grant_usd="10")
    key = await harness.key(org)
    async with harness.runtime.db.writer.connect() as conn:
        # The wallet's row lock on PostgreSQL; the database's write lock on SQLite.
        await conn.execute(
            select(wallets.c.id).where(wallets.c.organization_id == org.id).with_for_update()
        )
        posted = asyncio.create_task(_bill(harness, to_global_id("ApiKey", key.id), org, "r1"))
        await asyncio.sleep(0.5)  # the request reaches the writer, which waits for the lock
        assert not posted.done()
        frozen(harness).advance(timedelta(seconds=5))
        await conn.rollback()
    await posted
    async with harness.runtime.db.reader.connect() as conn:
        stamped = await conn.scalar(select(usage_t.c.created_at))
        marks = (await conn.execute(select(marks_t.c.second))).scalars().all()
    assert stamped == T0 + timedelta(seconds=5)
    assert marks == [int(T0.timestamp()) + 5]
    assert await harness.books() == []

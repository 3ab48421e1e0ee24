"""Holds under real concurrency: of N authorizations exactly as many succeed as fit."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import update

from app.keys.service import Caps
from app.ledger.state import orgs_t
from app.money import parse_usd
from tests.conftest import Harness

CALLS = 300


async def _race(harness: Harness, key_caps: Caps, grant_usd: str) -> Counter[int]:
    org = await harness.org(grant_usd=grant_usd)
    key = await harness.key(org, caps=key_caps)
    responses = await asyncio.gather(
        *(harness.authorize(key, f"req-{n}", hold_usd="0.01") for n in range(CALLS))
    )
    return Counter(response.status_code for response in responses)


async def test_wallet_admits_exactly_what_fits(harness: Harness) -> None:
    statuses = await _race(harness, Caps(), grant_usd="1.00")
    assert statuses == {200: 100, 402: 200}
    assert await harness.books() == []


async def test_key_quota_admits_exactly_what_fits(harness: Harness) -> None:
    statuses = await _race(harness, Caps(quota=parse_usd("1")), grant_usd="100")
    assert statuses == {200: 100, 429: 200}


@pytest.mark.parametrize("window", ["limit_5h", "limit_1d", "limit_7d"])
async def test_each_window_admits_exactly_what_fits(harness: Harness, window: str) -> None:
    statuses = await _race(harness, Caps(**{window: parse_usd("1")}), grant_usd="100")
    assert statuses == {200: 100, 429: 200}


async def test_holds_reserve_until_settled(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    first = await harness.authorize(key, "a", hold_usd="0.60")
    assert first.status_code == 200
    assert first.headers["X-Quota-Remaining-Credits"] == "0.40"
    assert await harness.balance(org) == (1_000_000, 600_000)
    refused = await harness.authorize(key, "b", hold_usd="0.50")
    assert refused.status_code == 402
    assert refused.json()["status"] == 402
    assert refused.json()["error"] == "Payment Required"
    # A replayed authorization keeps its hold rather than taking a second one.
    again = await harness.authorize(key, "a", hold_usd="0.60")
    assert again.status_code == 200
    assert await harness.balance(org) == (1_000_000, 600_000)


async def test_failed_call_releases_its_hold_and_bills_nothing(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    api_key_id = (await harness.authorize(key, "r", hold_usd="0.90")).json()["api_key_id"]
    (result,) = await harness.usage(
        org,
        {
            "request_id": "r",
            "api_key_id": api_key_id,
            "model": "claude-sonnet-4-6",
            "prompt_tokens": 10_000,
            "completion_tokens": 10_000,
            "status": "failed",
        },
    )
    assert result["outcome"] == "not_billed"
    assert result["cost"] == {"credits": "0", "usd": "0.000000"}
    assert await harness.balance(org) == (1_000_000, 0)
    assert (await harness.authorize(key, "next", hold_usd="0.90")).status_code == 200
    assert await harness.books() == []


async def test_usage_settles_hold_at_actual_cost(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    api_key_id = (await harness.authorize(key, "r", hold_usd="0.50")).json()["api_key_id"]
    (result,) = await harness.usage(
        org,
        {
            "request_id": "r",
            "api_key_id": api_key_id,
            "model": "claude-sonnet-4-6",
            "prompt_tokens": 1000,
            "completion_tokens": 500,
        },
    )
    # 1000 x $3/M + 500 x $15/M = $0.0105
    assert result == {
        "request_id": "r",
        "outcome": "billed",
        "cost": {"credits": "10500", "usd": "0.010500"},
        "error": None,
    }
    assert await harness.balance(org) == (989_500, 0)
    assert (await harness.authorize(key, "r")).json()["code"] == "already_billed"


async def test_completed_call_bills_past_zero_then_refuses(harness: Harness) -> None:
    org = await harness.org(grant_usd="0.01")
    key = await harness.key(org)
    api_key_id = (await harness.authorize(key, "big")).json()["api_key_id"]
    (result,) = await harness.usage(
        org,
        {
            "request_id": "big",
            "api_key_id": api_key_id,
            "model": "claude-opus-4-6",
            "prompt_tokens": 100_000,
            "completion_tokens": 10_000,
        },
    )
    assert result["cost"]["credits"] == "2250000"  # $1.50 + $0.75
    assert await harness.balance(org) == (10_000 - 2_250_000, 0)
    refused = await harness.authorize(key, "after")
    assert refused.status_code == 402
    assert refused.headers["X-Quota-Remaining-Credits"] == "-2.24"
    assert await harness.books() == []


async def test_replayed_request_ids_bill_once_even_concurrently(harness: Harness) -> None:
    org = await harness.org(grant_usd="10")
    key = await harness.key(org)
    api_key_id = (await harness.authorize(key, "probe")).json()["api_key_id"]
    event = {
        "request_id": "once",
        "api_key_id": api_key_id,
        "model": "gpt-5-5",
        "prompt_tokens": 1000,
        "completion_tokens": 1000,
    }
    batches = await asyncio.gather(*(harness.usage(org, event, event) for _ in range(50)))
    outcomes = Counter(result["outcome"] for batch in batches for result in batch)
    assert outcomes == {"billed": 1, "duplicate": 99}
    costs = {result["cost"]["credits"] for batch in batches for result in batch}
    assert costs == {"11250"}  # every duplicate reports the cost first billed
    assert (await harness.balance(org))[0] == 10_000_000 - 11_250
    assert await harness.books() == []


async def test_spend_cap_refuses_non_critical_actions_only(harness: Harness) -> None:
    org = await harness.org(grant_usd="10")
    key = await harness.key(org)
    async with harness.runtime.db.write(None) as conn:
        await conn.execute(
            update(orgs_t).where(orgs_t.c.id == org.id).values(spend_cap_monthly=1_000_000)
        )
    assert (await harness.authorize(key, "a", hold_usd="1")).status_code == 200
    capped = await harness.authorize(key, "b", hold_usd="0.01")
    assert capped.status_code == 429
    assert capped.json()["code"] == "spend_cap_reached"
    assert int(capped.headers["Retry-After"]) > 0

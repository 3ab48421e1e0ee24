"""An organization's plan, enforced when a call is authorized: open-model size by what
was purchased in the last 28 days, open-model concurrency and message windows exactly
under concurrency, and overage plans that keep working past an empty wallet."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, insert, update

from app.auth import Role
from app.clock import Clock, FrozenClock
from app.ids import to_global_id
from app.keys.service import CreatedKey
from app.ledger.state import orgs_t, plan_subs_t
from app.orgs.service import OrgRef
from app.plans.catalog import PURCHASE_WINDOW
from app.settings import Settings
from tests.conftest import Harness, running_app
from tests.payments.test_fake_provider import create_top_up

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
SMALL = "mistralai/Mistral-7B-Instruct-v0.3"  # 7B
MEDIUM = "Qwen/Qwen2.5-14B-Instruct"  # 14B
LARGE = "Qwen/Qwen2.5-32B-Instruct"  # 32B
HUGE = "meta-llama/Llama-3-70b"  # 70B
CLOSED = "claude-sonnet-4-6"
CALLS = 20


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


async def subscribe(harness: Harness, org: OrgRef, plan_code: str) -> None:
    """Put ``org`` on an active plan, as the plans service will."""
    now = harness.runtime.clock.now()
    async with harness.runtime.db.write(None) as conn:
        await conn.execute(
            insert(plan_subs_t).values(
                organization_id=org.id,
                plan_code=plan_code,
                status="active",
                anchor=now,
                period_number=0,
                current_period_start=now,
                current_period_end=now + timedelta(weeks=4),
                created_at=now,
                updated_at=now,
            )
        )


async def set_org(harness: Harness, org: OrgRef, **values: Any) -> None:
    async with harness.runtime.db.write(None) as conn:
        await conn.execute(update(orgs_t).where(orgs_t.c.id == org.id).values(**values))


async def buy(harness: Harness, org: OrgRef, usd: str) -> None:
    paid = await create_top_up(harness, harness.token(org, Role.OWNER), usd)
    assert paid["userErrors"] == [], paid
    assert paid["topUp"]["status"] == "SUCCEEDED", paid


def refused(response: httpx.Response, status: int, code: str) -> bool:
    return response.status_code == status and response.json()["code"] == code


async def outcomes(harness: Harness, key: CreatedKey, prefix: str, model: str) -> dict[str, str]:
    """CALLS concurrent authorizations: how each ended ("ok", or the refusal's code), by
    request id."""
    request_ids = [f"{prefix}-{n}" for n in range(CALLS)]
    responses = await asyncio.gather(
        *(harness.authorize(key, r, model=model, hold_usd="0.01") for r in request_ids)
    )
    return {
        request_id: "ok" if response.status_code == 200 else response.json()["code"]
        for request_id, response in zip(request_ids, responses, strict=True)
    }


async def race(harness: Harness, key: CreatedKey, prefix: str, model: str) -> Counter[str]:
    """CALLS concurrent authorizations; how many ended each way."""
    return Counter((await outcomes(harness, key, prefix, model)).values())


async def settle(
    harness: Harness, org: OrgRef, key: CreatedKey, request_id: str, model: str = SMALL
) -> None:
    """Report the call's usage: its hold settles."""
    api_key_id = to_global_id("ApiKey", key.id)
    (result,) = await harness.usage(
        org, {"request_id": request_id, "api_key_id": api_key_id, "model": model, "units": "3"}
    )
    assert result["outcome"] == "billed", result


# -- open-model size ------------------------------------------------------------------


async def test_bytez_free_runs_open_models_up_to_7b(harness: Harness) -> None:
    org = await harness.org("free", grant_usd="1")
    await subscribe(harness, org, "bytez-free")
    key = await harness.key(org)

    too_large = await harness.authorize(key, "r1", model=MEDIUM, hold_usd="0.01")
    assert refused(too_large, 403, "model_not_unlocked")
    assert too_large.json()["message"] == (
        "Qwen/Qwen2.5-14B-Instruct (14B) is larger than the Bytez Free plan runs: "
        "open models up to 7B"
    )
    assert (await harness.authorize(key, "r2", model=SMALL, hold_usd="0.01")).status_code == 200
    # Closed models have no size: the plan does not limit them.
    assert (await harness.authorize(key, "r3", model=CLOSED, hold_usd="0.01")).status_code == 200
    assert await harness.balance(org) == (1_000_000, 20_000)
    assert await harness.books() == []


async def test_bytez_purchases_unlock_larger_models_for_28_days(
    harness: Harness, clock: FrozenClock
) -> None:
    org = await harness.org("payg", grant_usd="1")
    await subscribe(harness, org, "bytez-payg")
    key = await harness.key(org)

    before = await harness.authorize(key, "m0", model=MEDIUM, hold_usd="0.01")
    assert refused(before, 403, "model_not_unlocked")
    assert before.json()["message"] == (
        "Qwen/Qwen2.5-14B-Instruct (14B) needs a purchase of 10.00 USD more within 28 days; "
        "your tier runs open models up to 7B"
    )
    assert (await harness.authorize(key, "s0", model=SMALL, hold_usd="0.01")).status_code == 200

    await buy(harness, org, "10")
    assert (await harness.authorize(key, "l1", model=LARGE, hold_usd="0.01")).status_code == 200
    huge = await harness.authorize(key, "h1", model=HUGE, hold_usd="0.01")
    assert refused(huge, 403, "model_not_unlocked")
    assert huge.json()["message"] == (
        "meta-llama/Llama-3-70b (70B) needs a purchase of 15.00 USD more within 28 days; "
        "your tier runs open models up to 35B"
    )

    await buy(harness, org, "15")
    assert (await harness.authorize(key, "h2", model=HUGE, hold_usd="0.01")).status_code == 200

    # The purchases count for 28 days from when they settled, then no longer.
    clock.advance(PURCHASE_WINDOW - timedelta(seconds=1))
    assert (await harness.authorize(key, "h3", model=HUGE, hold_usd="0.01")).status_code == 200
    clock.advance(timedelta(seconds=1))  # exactly 28 days: the purchases have lapsed
    lapsed = await harness.authorize(key, "h4", model=HUGE, hold_usd="0.01")
    assert refused(lapsed, 403, "model_not_unlocked")
    assert "needs a purchase of 25.00 USD more" in lapsed.json()["message"]
    assert refused(
        await harness.authorize(key, "l2", model=LARGE, hold_usd="0.01"), 403, "model_not_unlocked"
    )
    assert await harness.books() == []


# -- concurrency ----------------------------------------------------------------------


async def test_one_open_model_call_at_a_time_on_bytez_free(harness: Harness) -> None:
    org = await harness.org("free", grant_usd="1")
    await subscribe(harness, org, "bytez-free")
    key = await harness.key(org)

    open_calls, closed_calls = await asyncio.gather(
        outcomes(harness, key, "open", SMALL), race(harness, key, "closed", CLOSED)
    )
    assert Counter(open_calls.values()) == {"ok": 1, "concurrency_limit": CALLS - 1}
    # Closed models take no slot; Free's own limit on them is per second.
    assert closed_calls == {"ok": 10, "requests_per_second": CALLS - 10}
    # Later batches count the open hold from the database.
    assert (await race(harness, key, "again", SMALL)) == {"concurrency_limit": CALLS}

    # Once its usage settles the hold, the next open-model call may run: one.
    (running,) = [request_id for request_id, outcome in open_calls.items() if outcome == "ok"]
    await settle(harness, org, key, running)
    assert (await race(harness, key, "after", SMALL)) == {"ok": 1, "concurrency_limit": CALLS - 1}
    assert await harness.books() == []


async def test_concurrency_follows_the_unlock_tier(harness: Harness) -> None:
    org = await harness.org("payg", grant_usd="1")
    await subscribe(harness, org, "bytez-payg")
    key = await harness.key(org)
    assert (await race(harness, key, "t0", SMALL)) == {"ok": 1, "concurrency_limit": CALLS - 1}
    await buy(harness, org, "5")  # 3 USD or more: four at once
    assert (await race(harness, key, "t1", SMALL)) == {"ok": 3, "concurrency_limit": CALLS - 3}
    assert await harness.books() == []


async def test_larger_open_models_take_more_7b_slots(harness: Harness) -> None:
    """At the $25 tier, ten 7B calls at once or three 70B ones: "Concurrent Requests (7B)"."""
    org = await harness.org("payg", grant_usd="1")
    await subscribe(harness, org, "bytez-payg")
    key = await harness.key(org)
    await buy(harness, org, "25")
    huge = await outcomes(harness, key, "h", HUGE)  # 70B: 48 GB, 3 slots
    assert Counter(huge.values()) == {"ok": 3, "concurrency_limit": CALLS - 3}
    # One slot is left: a 7B call fits, a 14B one (2 slots) does not.
    assert (await race(harness, key, "s", SMALL)) == {"ok": 1, "concurrency_limit": CALLS - 1}
    medium = await harness.authorize(key, "m", model=MEDIUM, hold_usd="0.01")
    assert refused(medium, 429, "concurrency_limit")
    assert medium.json()["message"] == (
        "your tier runs 10 7B slots of open-model calls at once and 10 7B slots are in "
        "flight; Qwen/Qwen2.5-14B-Instruct takes 2"
    )
    assert medium.headers["Retry-After"] == "1"

    # A settled 70B call gives its three slots back.
    await settle(harness, org, key, next(r for r, outcome in huge.items() if outcome == "ok"), HUGE)
    assert (await race(harness, key, "m2", MEDIUM)) == {"ok": 1, "concurrency_limit": CALLS - 1}
    assert await harness.books() == []


# -- requests per second --------------------------------------------------------------


async def test_bytez_free_allows_10_closed_model_requests_a_second(
    harness: Harness, clock: FrozenClock
) -> None:
    free = await harness.org("free", grant_usd="1")
    await subscribe(harness, free, "bytez-free")
    key = await harness.key(free)
    assert (await race(harness, key, "a", CLOSED)) == {"ok": 10, "requests_per_second": 10}
    limited = await harness.authorize(key, "b", model=CLOSED, hold_usd="0.01")
    assert refused(limited, 429, "requests_per_second")
    assert limited.json()["message"] == (
        "the Bytez Free plan allows 10 closed-model requests per second"
    )
    assert limited.headers["Retry-After"] == "1"
    # The open model's one slot is its own limit.
    assert (await harness.authorize(key, "o", model=SMALL, hold_usd="0.01")).status_code == 200

    clock.advance(timedelta(milliseconds=999))
    assert (await race(harness, key, "c", CLOSED)) == {"requests_per_second": CALLS}
    clock.advance(timedelta(milliseconds=1))  # the first ten left the second
    assert (await race(harness, key, "d", CLOSED)) == {"ok": 10, "requests_per_second": 10}

    # Pay-as-you-go: "Unlimited closed model requests".
    payg = await harness.org("payg", grant_usd="1")
    await subscribe(harness, payg, "bytez-payg")
    assert (await race(harness, await harness.key(payg), "p", CLOSED)) == {"ok": CALLS}

    plans = await harness.graphql(
        "{ plans { code closedRequestsPerSecond concurrency } }", harness.token(free, Role.OWNER)
    )
    by_code = {plan["code"]: plan for plan in plans["data"]["plans"]}
    assert by_code["bytez-free"] == {
        "code": "bytez-free",
        "closedRequestsPerSecond": 10,
        "concurrency": 1,
    }
    assert by_code["bytez-payg"]["closedRequestsPerSecond"] is None
    assert await harness.books() == []


async def test_a_batch_that_settles_and_authorizes_counts_both(harness: Harness) -> None:
    org = await harness.org("free", grant_usd="1")
    await subscribe(harness, org, "bytez-free")
    key = await harness.key(org)
    assert (await harness.authorize(key, "first", model=SMALL, hold_usd="0.01")).status_code == 200
    # The usage that frees the slot and the authorizations that want it, at once.
    _, calls = await asyncio.gather(
        settle(harness, org, key, "first"), race(harness, key, "next", SMALL)
    )
    assert calls["ok"] <= 1
    assert calls["ok"] + calls["concurrency_limit"] == CALLS
    assert (await race(harness, key, "last", SMALL))["ok"] == 1 - calls["ok"]
    assert await harness.books() == []


# -- message windows ------------------------------------------------------------------

SMALL_CATALOG = """
[plans.bytespike-pro]
name = "ByteSpike Pro"
price = "149"
currency = "CNY"
period = "month"
unit = "usd"
allocation = "0"
messages_per_12h = { standard = 5 }
priority = true
"""


@pytest.fixture
def small_catalog(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "plans.toml"
    path.write_text(SMALL_CATALOG, encoding="utf-8")
    return settings.model_copy(update={"plan_catalog_path": path})


async def test_message_window_admits_exactly_its_limit(
    small_catalog: Settings, clock: FrozenClock
) -> None:
    async with running_app(small_catalog, clock) as harness:
        org = await harness.org("pro", grant_usd="10")
        await subscribe(harness, org, "bytespike-pro")
        key = await harness.key(org)

        first = await outcomes(harness, key, "a", CLOSED)
        assert Counter(first.values()) == {"ok": 5, "message_limit": CALLS - 5}
        # Settling a call does not give its message back: the window counts calls made.
        used = next(request_id for request_id, outcome in first.items() if outcome == "ok")
        await settle(harness, org, key, used, CLOSED)

        clock.advance(timedelta(hours=5))
        limited = await harness.authorize(key, "b", model=CLOSED, hold_usd="0.01")
        assert refused(limited, 429, "message_limit")
        assert limited.headers["Retry-After"] == str(7 * 3600)  # when the first five leave

        clock.advance(timedelta(hours=7))
        assert (await race(harness, key, "c", CLOSED)) == {"ok": 5, "message_limit": CALLS - 5}
        assert await harness.books() == []


async def test_message_window_slides(small_catalog: Settings, clock: FrozenClock) -> None:
    async with running_app(small_catalog, clock) as harness:
        org = await harness.org("pro", grant_usd="10")
        await subscribe(harness, org, "bytespike-pro")
        key = await harness.key(org)
        for n in range(5):
            ok = await harness.authorize(key, f"r{n}", model=CLOSED, hold_usd="0.01")
            assert ok.status_code == 200
            clock.advance(timedelta(hours=1))
        limited = await harness.authorize(key, "r5", model=CLOSED, hold_usd="0.01")
        assert refused(limited, 429, "message_limit")
        assert limited.headers["Retry-After"] == str(7 * 3600)  # r0 leaves at 12 h
        clock.advance(timedelta(hours=7))
        assert (await race(harness, key, "s", CLOSED)) == {"ok": 1, "message_limit": CALLS - 1}


# -- overage --------------------------------------------------------------------------


async def test_overage_plan_authorizes_past_an_empty_wallet_up_to_the_spend_cap(
    harness: Harness,
) -> None:
    org = await harness.org("eightbit")
    await set_org(harness, org, rate_card="8bit-ai", spend_cap_monthly=30_000_000)
    await subscribe(harness, org, "8bit-starter")
    key = await harness.key(org)
    assert await harness.balance(org) == (0, 0)

    for n in range(3):  # 30 plan credits fit under the cap
        ok = await harness.authorize(key, f"g{n}", model="gpt-4", hold_usd="10")
        assert ok.status_code == 200, ok.text
    capped = await harness.authorize(key, "g3", model="gpt-4", hold_usd="1")
    assert refused(capped, 429, "spend_cap_reached")
    # Critical actions keep working at the cap.
    crud = await harness.authorize(key, "crud", model="8bit/api", hold_usd="0.1")
    assert crud.status_code == 200

    # The call runs and bills past zero; the period's close bills the overage.
    (result,) = await harness.usage(
        org, {"request_id": "g0", "api_key_id": to_global_id("ApiKey", key.id), "model": "gpt-4"}
    )
    assert result["cost"]["credits"] == "10000000"
    assert (await harness.balance(org))[0] == -10_000_000
    assert (await harness.authorize(key, "g4", model="gpt-4", hold_usd="1")).status_code == 429
    assert await harness.books() == []


async def test_without_overage_an_empty_wallet_refuses(harness: Harness) -> None:
    plain = await harness.org("plain")
    await set_org(harness, plain, rate_card="8bit-ai")
    free = await harness.org("free")
    await subscribe(harness, free, "bytez-free")
    for org, model in ((plain, "gpt-4"), (free, SMALL)):
        key = await harness.key(org)
        response = await harness.authorize(key, "r", model=model, hold_usd="0.01")
        assert refused(response, 402, "insufficient_balance")
    assert await harness.books() == []


# -- organizations without a plan -----------------------------------------------------


@contextmanager
def statements(harness: Harness) -> Iterator[list[str]]:
    """The SQL the writer runs meanwhile."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    engine = harness.runtime.db.write_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_organizations_without_a_plan_are_unlimited_and_count_nothing(
    harness: Harness,
) -> None:
    org = await harness.org("plain", grant_usd="1")
    key = await harness.key(org)
    with statements(harness) as plain:
        assert (await race(harness, key, "big", HUGE)) == {"ok": CALLS}
    assert not [
        sql for sql in plain if "count(" in sql or "sum(" in sql or "billing_transactions" in sql
    ]

    payg = await harness.org("payg", grant_usd="1")
    await subscribe(harness, payg, "bytez-payg")
    payg_key = await harness.key(payg)
    with statements(harness) as planned:
        await harness.authorize(payg_key, "one", model=SMALL, hold_usd="0.01")
    # One read of its holds in flight; none for limits its plan lacks (per second, messages).
    assert len([sql for sql in planned if "FROM holds" in sql]) == 1
    assert len([sql for sql in planned if "billing_transactions" in sql]) == 1  # purchases
    assert await harness.books() == []

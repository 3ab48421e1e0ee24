"""The Redis event bus against a real Redis: across buses (instances), after a lost
connection, and through GraphQL subscriptions.

Set CREDITGRAPH_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run these; each test
uses its own channel prefix, so parallel runs never see each other's events.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import redis.asyncio as redis
from graphql import print_ast
from redis.exceptions import RedisError

from app.auth import Role
from app.changes import Changed
from app.clock import Clock
from app.events import (
    DISCONNECTED,
    AlertFired,
    BalanceChanged,
    Event,
    Resync,
    Subscription,
    TopUpUpdated,
    UsageRecorded,
)
from app.events_redis import RedisEventBus
from app.settings import Settings
from tests.conftest import Harness, running_app, usage_event
from tests.graphql.conftest import server  # noqa: F401  (the fixture, with this module's settings)
from tests.graphql.test_schema import OPERATIONS
from tests.graphql.test_subscriptions import (
    BALANCE,
    USAGE,
    WAIT,
    _next,
    _receive,
    _signed_in,
    _subscribe,
)

REDIS_URL = os.environ.get("CREDITGRAPH_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(
    REDIS_URL is None,
    reason="set CREDITGRAPH_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to test the Redis bus",
)
AT = datetime(2026, 11, 23, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


@pytest.fixture
async def buses(prefix: str) -> AsyncIterator[tuple[RedisEventBus, RedisEventBus]]:
    """Two buses on one Redis, as two instances hold them."""
    assert REDIS_URL is not None
    first, second = RedisEventBus(REDIS_URL, prefix), RedisEventBus(REDIS_URL, prefix)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


@pytest.fixture
def settings(settings: Settings, prefix: str) -> Settings:
    return settings.model_copy(update={"redis_url": REDIS_URL, "redis_channel_prefix": prefix})


async def _next_item(subscription: Subscription) -> Event | Resync:
    return await asyncio.wait_for(anext(aiter(subscription)), WAIT)


async def _kill_pubsub(bus: RedisEventBus) -> None:
    """Close the bus's pub/sub connection from the server's side, as a Redis restart or
    a network failure would."""
    assert REDIS_URL is not None
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        clients = await admin.client_list(_type="pubsub")
        ours = [c["id"] for c in clients if c["name"] == bus.client_name]
        assert ours, clients
        for client_id in ours:
            await admin.client_kill_filter(_id=client_id)
    finally:
        await admin.aclose()


async def test_every_event_kind_crosses_to_the_other_instance_intact(
    buses: tuple[RedisEventBus, RedisEventBus],
) -> None:
    first, second = buses
    mine, theirs = second.subscribe(1), second.subscribe(2)
    events: list[Event] = [
        BalanceChanged(1, 10, -6000, -6000, "usage", 7, AT),
        UsageRecorded(1, 3, "r1", "claude-sonnet-4-6", "llm_inference", "succeeded", 6000, AT),
        TopUpUpdated(1, 4, "succeeded", 25_000_000, 0, None, AT),
        AlertFired(1, 5, 6, "LOW_BALANCE", "below $1.00", -6000, AT),
    ]
    await first.publish(events)
    received = [await _next_item(mine) for _ in events]
    assert received == events
    assert theirs.queue.empty()  # another organization's subscriber gets nothing
    assert second.subscriber_count() == 2
    second.unsubscribe(mine)
    assert second.subscriber_count() == 1


async def test_a_lost_connection_interrupts_subscribers_then_delivery_resumes(
    buses: tuple[RedisEventBus, RedisEventBus],
) -> None:
    first, second = buses
    subscription = second.subscribe(1)
    await _kill_pubsub(second)
    item = await _next_item(subscription)
    assert isinstance(item, Resync)
    assert subscription.lagged
    assert subscription.gap == DISCONNECTED
    assert await second.ready()
    event = BalanceChanged(1, 10, 5, 5, "adjustment", 8, AT)
    await first.publish([event])
    assert await _next_item(subscription) == event


async def test_changes_announced_on_one_instance_are_counted_on_the_other(
    buses: tuple[RedisEventBus, RedisEventBus],
) -> None:
    first, second = buses
    heard: asyncio.Queue[Changed] = asyncio.Queue()
    second.on_changed = heard.put_nowait
    await first.announce([7, 9])
    await first.announce(None)  # a write that may touch any organization
    await first.publish([BalanceChanged(3, 10, 5, 5, "adjustment", 1, AT)])
    received = [await asyncio.wait_for(heard.get(), WAIT) for _ in range(4)]
    assert received == [(7,), (9,), None, (3,)]
    await _kill_pubsub(second)  # what is written meanwhile goes unheard: all count as changed
    assert await asyncio.wait_for(heard.get(), WAIT) is None


async def test_a_write_on_one_instance_ends_the_answer_cached_on_the_other(
    settings: Settings, clock: Clock
) -> None:
    # Kept for a year: only the other instance's announcements can end the answer.
    settings = settings.model_copy(update={"graphql_cache_seconds": 365 * 86400})
    async with running_app(settings, clock) as first, running_app(settings, clock) as second:
        org = await first.org("acme", grant_usd="5")
        key = await first.key(org)
        owner = first.token(org, Role.OWNER)
        overview = print_ast(OPERATIONS["WalletOverview"])

        async def organization() -> dict[str, Any]:
            body = await first.graphql(overview, owner)
            return cast(dict[str, Any], body["data"]["viewer"]["organization"])

        async def changes(read: Callable[[dict[str, Any]], object], to: object) -> None:
            async with asyncio.timeout(WAIT):
                # Polled: the announcement's arrival has no event of its own here.
                while read(await organization()) != to:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)

        for _ in range(3):  # admitted, then kept
            assert (await organization())["spendCap"]["monthlyLimit"] is None
        # A write that publishes no event: only the announcement reaches the first.
        await second.graphql(
            'mutation { setSpendCap(input: {monthlyLimitUsd: "20"}) { userErrors { code } } }',
            owner,
        )
        await changes(lambda o: (o["spendCap"]["monthlyLimit"] or {}).get("credits"), "20000000")
        # The ledger's: its balance event is the announcement.
        await second.usage(org, usage_event(key.id, "r1"))
        await changes(lambda o: o["wallet"]["balance"]["credits"], "4994000")


async def test_a_refused_publish_is_counted_and_the_committed_write_stands(
    settings: Settings, clock: Clock
) -> None:
    assert REDIS_URL is not None
    admin = redis.Redis.from_url(REDIS_URL)
    user = f"creditgraph-test-{uuid.uuid4().hex[:8]}"
    await admin.acl_setuser(
        user, enabled=True, passwords=["+secret"], categories=["+@all"], keys=["*"], channels=["*"]
    )
    url = REDIS_URL.replace("redis://", f"redis://{user}:secret@", 1)
    try:
        async with running_app(settings.model_copy(update={"redis_url": url}), clock) as app:
            org = await app.org("acme", grant_usd="5")
            key = await app.key(org)
            owner = app.token(org, Role.OWNER)
            await admin.acl_setuser(user, commands=["-publish"])  # Redis refuses from now on
            (result,) = await app.usage(org, usage_event(key.id, "r1"))
            assert result["outcome"] == "billed"
            assert await app.balance(org) == (4_994_000, 0)
            assert await _publish_errors(app) == 1  # the batch's events
            changed = await app.graphql(
                'mutation { setSpendCap(input: {monthlyLimitUsd: "9"}) { userErrors { code } } }',
                owner,
            )
            assert changed["data"]["setSpendCap"]["userErrors"] == []
            assert await _publish_errors(app) == 2  # the announcement of a write without events
            query = "{ viewer { organization { spendCap { monthlyLimit { usd } } } } }"
            spend_cap = (await app.graphql(query, owner))["data"]["viewer"]["organization"]
            assert spend_cap["spendCap"]["monthlyLimit"]["usd"] == "9.000000"
    finally:
        await admin.acl_deluser(user)
        await admin.aclose()


async def _publish_errors(harness: Harness) -> float:
    samples = await harness.metrics()
    return samples.get(("creditgraph_event_bus_errors_total", (("kind", "publish"),)), 0.0)


async def test_readiness_follows_redis(prefix: str) -> None:
    assert REDIS_URL is not None
    bus = RedisEventBus(REDIS_URL, prefix)
    assert not await bus.ready()  # not subscribed yet
    await bus.start()
    assert await bus.ready()
    await bus.close()


async def test_a_bus_without_redis_refuses_to_start(prefix: str) -> None:
    bus = RedisEventBus("redis://127.0.0.1:1/0", prefix)  # nothing listens on port 1
    with pytest.raises(RedisError):
        await bus.start()
    await bus.close()


# -- through GraphQL subscriptions -------------------------------------------------------


async def test_balance_subscriber_rereads_after_the_bus_reconnects(
    server: Harness,  # noqa: F811
) -> None:
    org = await server.org("acme", grant_usd="10")
    key = await server.key(org)
    bus = server.runtime.bus
    assert isinstance(bus, RedisEventBus)
    async with await _signed_in(server, server.token(org, Role.VIEWER)) as ws:
        await _subscribe(ws, BALANCE)
        first = (await _next(ws))["balanceChanged"]
        assert first["reason"] == "current"
        await server.usage(org, usage_event(key.id, "r1"))
        pushed = (await _next(ws))["balanceChanged"]
        assert (pushed["reason"], pushed["balance"]["credits"]) == ("usage", "9994000")

        await _kill_pubsub(bus)
        restated = (await _next(ws))["balanceChanged"]
        assert restated["reason"] == "current"
        assert restated["balance"]["credits"] == "9994000"
        assert restated["version"] == pushed["version"]

        await server.usage(org, usage_event(key.id, "r2"))
        after: dict[str, Any] = (await _next(ws))["balanceChanged"]
        assert (after["reason"], after["balance"]["credits"]) == ("usage", "9988000")


async def test_usage_stream_ends_with_unavailable_after_the_bus_reconnects(
    server: Harness,  # noqa: F811
) -> None:
    org = await server.org("acme", grant_usd="10")
    bus = server.runtime.bus
    assert isinstance(bus, RedisEventBus)
    async with await _signed_in(server, server.token(org, Role.VIEWER)) as ws:
        await _subscribe(ws, USAGE)
        async with asyncio.timeout(WAIT):  # no push to wait on: watch the bus instead
            while bus.subscriber_count() == 0:  # noqa: ASYNC110 (the bus has no event for it)
                await asyncio.sleep(0.01)
        await _kill_pubsub(bus)
        message = await _receive(ws)
        assert message["type"] == "next", message
        (error,) = message["payload"]["errors"]
        assert error["extensions"]["code"] == "UNAVAILABLE"
        assert "subscribe again and read the usage log" in error["message"]
        assert (await _receive(ws))["type"] == "complete"


async def test_metrics_and_readiness_with_redis(server: Harness) -> None:  # noqa: F811
    ready = await server.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": True, "event_bus": True, "writer": True},
    }

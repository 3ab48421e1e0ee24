"""The response cache (``app/graphql/response_cache.py``): a repeated dashboard query is
answered without reading, and never once a write or the clock has changed its answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import parse, print_ast

from app.auth import Principal, Role
from app.clock import Clock, FrozenClock
from app.graphql.http import JSON
from app.graphql.response_cache import Answer, ResponseCache, cacheable
from app.graphql.schema import schema
from app.settings import Settings
from tests.conftest import Harness, running_app, usage_event
from tests.graphql.test_schema import OPERATIONS

OVERVIEW = print_ast(OPERATIONS["WalletOverview"])
VIEWER = print_ast(OPERATIONS["Viewer"])
# The last day of a month, a little before it turns (UTC).
T0 = datetime(2026, 11, 30, 23, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Kept for a year: only a write or a value moving with the clock can make an answer
    # stale in these tests.
    return settings.model_copy(update={"graphql_cache_seconds": 365 * 86400})


async def _ask(harness: Harness, query: str, headers: dict[str, str]) -> tuple[Any, int]:
    """The answer's data and the read transactions it took (once the alert evaluations
    that earlier commits started, which read too, are done)."""
    await harness.runtime.alerts.settled()
    with harness.read_transactions() as begun:
        body = await harness.graphql(query, headers)
    assert "errors" not in body, body
    return body["data"], len(begun)


async def _kept(harness: Harness, query: str, headers: dict[str, str]) -> Any:
    """Sent until it is answered from the cache (the first sends admit the document and
    keep its answer); the answer, checked to be the one read before."""
    read, _ = await _ask(harness, query, headers)
    for _ in range(3):
        data, reads = await _ask(harness, query, headers)
        if reads == 0:
            assert data == read
            return data
        read = data
    raise AssertionError("the answer was never served from the cache")


def test_the_dashboards_overview_and_viewer_are_the_contract_operations_cached() -> None:
    cached = {name for name, document in OPERATIONS.items() if cacheable(schema._schema, document)}
    assert cached == {"Viewer", "WalletOverview"}
    for query in (
        "{ viewer { organization { wallet { balance { credits } entries { totalCount } } } } }",
        "{ viewer { organization { apiKeys { edges { node { id } } } } } }",
        "{ __schema { queryType { name } } }",
        "{ plans { code } }",
    ):
        assert not cacheable(schema._schema, parse(query)), query


async def test_an_answer_is_kept_until_a_usage_post_moves_the_balance(harness: Harness) -> None:
    org = await harness.org(grant_usd="5")
    key = await harness.key(org)
    viewer = harness.token(org, Role.VIEWER)
    kept = await _kept(harness, OVERVIEW, viewer)
    assert kept["viewer"]["organization"]["wallet"]["balance"]["credits"] == "5000000"
    await harness.usage(org, usage_event(key.id, "r1"))
    data, reads = await _ask(harness, OVERVIEW, viewer)
    assert reads == 1
    assert data["viewer"]["organization"]["wallet"]["balance"]["credits"] == "4994000"
    assert data["viewer"]["organization"]["spendCap"]["spentThisMonth"]["credits"] == "6000"


async def test_many_requests_for_a_stale_answer_read_it_once(harness: Harness) -> None:
    org = await harness.org(grant_usd="5")
    key = await harness.key(org)
    viewer = harness.token(org, Role.VIEWER)
    await _kept(harness, OVERVIEW, viewer)
    await harness.usage(org, usage_event(key.id, "r1"))
    await harness.runtime.alerts.settled()  # its alert evaluation reads too
    before = await _answered(harness)
    with harness.read_transactions() as begun:
        bodies = await asyncio.gather(*(harness.graphql(OVERVIEW, viewer) for _ in range(50)))
    assert len(begun) == 1
    balances = {b["data"]["viewer"]["organization"]["wallet"]["balance"]["credits"] for b in bodies}
    assert balances == {"4994000"}
    after = await _answered(harness)
    assert {name: after[name] - before.get(name, 0) for name in after} == {
        "read": 1,
        "shared": 49,
        "kept": 0,
    }


async def _answered(harness: Harness) -> dict[str, float]:
    """The cache's counters on /metrics, by answer."""
    samples = await harness.metrics()
    return {
        answer: samples[("creditgraph_graphql_cached_queries_total", (("answer", answer),))]
        for answer in ("kept", "shared", "read")
    }


async def test_mutations_outside_the_ledger_make_the_answer_stale(harness: Harness) -> None:
    org = await harness.org(grant_usd="5")
    owner = harness.token(org, Role.OWNER)
    await _kept(harness, OVERVIEW, owner)
    changed = await harness.graphql(
        'mutation { setSpendCap(input: {monthlyLimitUsd: "12.5"}) { userErrors { code } } }',
        owner,
    )
    assert changed["data"]["setSpendCap"]["userErrors"] == []
    data, _ = await _ask(harness, OVERVIEW, owner)
    assert data["viewer"]["organization"]["spendCap"]["monthlyLimit"]["credits"] == "12500000"
    await _kept(harness, OVERVIEW, owner)
    changed = await harness.graphql(
        "mutation { updateAutoReload(input: {enabled: true}) { userErrors { code } } }", owner
    )
    assert changed["data"]["updateAutoReload"]["userErrors"] == []
    data, _ = await _ask(harness, OVERVIEW, owner)
    assert data["viewer"]["organization"]["autoReload"]["enabled"] is True


async def test_another_organizations_writes_leave_the_answer_kept(harness: Harness) -> None:
    org, other = await harness.org("acme", grant_usd="5"), await harness.org("other", "5")
    key = await harness.key(other)
    viewer = harness.token(org, Role.VIEWER)
    kept = await _kept(harness, OVERVIEW, viewer)
    await harness.usage(other, usage_event(key.id, "r1"))
    assert await _ask(harness, OVERVIEW, viewer) == (kept, 0)


async def test_each_caller_gets_its_own_answer(harness: Harness) -> None:
    acme, other = await harness.org("acme"), await harness.org("other")
    answers = [
        await _kept(harness, VIEWER, harness.token(org, role))
        for org, role in ((acme, Role.VIEWER), (acme, Role.OWNER), (other, Role.VIEWER))
    ]
    assert [a["viewer"]["id"] for a in answers] == ["viewer@test", "owner@test", "viewer@test"]
    assert [a["viewer"]["role"] for a in answers] == ["VIEWER", "OWNER", "VIEWER"]
    slugs = [a["viewer"]["organization"]["slug"] for a in answers]
    assert slugs == ["acme", "acme", "other"]


async def test_the_turn_of_the_month_expires_what_was_spent_this_month(
    harness: Harness, clock: FrozenClock
) -> None:
    org = await harness.org(grant_usd="5")
    key = await harness.key(org)
    await harness.usage(org, usage_event(key.id, "r1"))
    viewer = harness.token(org, Role.VIEWER)
    # The spend cap alone: none of the overview's other figures expires it too.
    query = "query Spent { viewer { organization { spendCap { spentThisMonth { credits } } } } }"
    kept = await _kept(harness, query, viewer)
    assert kept["viewer"]["organization"]["spendCap"]["spentThisMonth"]["credits"] == "6000"
    clock.advance(timedelta(minutes=59, seconds=59))
    assert await _ask(harness, query, viewer) == (kept, 0)  # still November
    clock.advance(timedelta(seconds=1))
    data, reads = await _ask(harness, query, viewer)
    assert reads == 1
    assert data["viewer"]["organization"]["spendCap"]["spentThisMonth"]["credits"] == "0"


async def test_a_purchase_leaving_the_28_days_expires_the_answer(
    harness: Harness, clock: FrozenClock
) -> None:
    clock.advance(timedelta(days=-29))  # November 1st: the month does not turn first
    org = await harness.org()
    owner = harness.token(org, Role.OWNER)
    await harness.runtime.subscriptions.change(org.id, "bytez-payg", actor="test")
    top_up = await harness.graphql(
        'mutation { createTopUp(input: {amountUsd: "25"}) { topUp { status } } }', owner
    )
    assert top_up["data"]["createTopUp"]["topUp"]["status"] == "SUCCEEDED"
    clock.advance(timedelta(days=10))
    kept = await _kept(harness, OVERVIEW, owner)
    organization = kept["viewer"]["organization"]
    assert organization["wallet"]["purchasedLast28Days"]["credits"] == "25000000"
    clock.advance(timedelta(days=18))  # 28 days after the purchase: out of the window
    data, reads = await _ask(harness, OVERVIEW, owner)
    assert reads == 1
    organization = data["viewer"]["organization"]
    assert organization["wallet"]["purchasedLast28Days"]["credits"] == "0"
    assert organization["entitlement"]["tier"] == 0


async def test_queries_with_fields_not_cacheable_are_read_every_time(harness: Harness) -> None:
    org = await harness.org()
    viewer = harness.token(org, Role.VIEWER)
    query = print_ast(OPERATIONS["ApiKeys"])
    for _ in range(4):
        _, reads = await _ask(harness, query, viewer)
        assert reads >= 1


@pytest.fixture
async def uncached(settings: Settings, clock: Clock) -> AsyncIterator[Harness]:
    async with running_app(settings.model_copy(update={"graphql_cache_seconds": 0}), clock) as h:
        yield h


async def test_a_cache_of_zero_seconds_keeps_nothing(uncached: Harness) -> None:
    org = await uncached.org()
    viewer = uncached.token(org, Role.VIEWER)
    for _ in range(4):
        _, reads = await _ask(uncached, OVERVIEW, viewer)
        assert reads >= 1


async def test_the_cache_holds_its_size_in_bytes_least_recently_used_out() -> None:
    cache = ResponseCache(100, timedelta(seconds=5))
    principal = Principal(1, "acme", Role.VIEWER, "viewer@test")
    keys = [(f"query Q{n} {{ viewer {{ id }} }}", None, b"", principal, JSON) for n in range(3)]
    now, version = T0, (0, 0)
    for key, size in zip(keys, (60, 30, 50), strict=True):
        with cache.read(key, version) as keep:
            keep(Answer(version, now + timedelta(seconds=5), b"x" * size))
    assert [cache.get(key, version, now) is not None for key in keys] == [False, True, True]
    too_big = keys[0]
    with cache.read(too_big, version) as keep:
        waiting = cache.reading(too_big, version)
        keep(Answer(version, now + timedelta(seconds=5), b"x" * 101))
    assert waiting is not None
    assert await waiting == b"x" * 101  # handed to the requests that waited, not kept
    assert cache.get(too_big, version, now) is None
    assert cache.get(keys[2], version, now) is not None
    assert cache.get(keys[2], (0, 1), now) is None  # a write since: stale, and dropped
    assert cache.get(keys[2], version, now) is None

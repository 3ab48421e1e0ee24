"""What ByteSpike's plans bundle, as authorize and the API carry it: concurrency on every
call, the priority queue in authorize's answer, messages per 12 hours by model class
(both ends of Pro's "50-500"), and Free's trial allowance for a new organization."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import maintenance
from app.auth import Role
from app.clock import Clock, FrozenClock
from app.ids import to_global_id
from app.keys.service import CreatedKey
from app.orgs.service import OrgRef
from app.plans.catalog import Catalog, CatalogError
from tests.conftest import Harness, usage_event
from tests.plans.test_enforcement import CLOSED, SMALL, SMALL_CATALOG, T0, refused, subscribe

PREMIUM = "claude-opus-4-6"
LIGHT = "claude-haiku-4-5"


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


async def authorize_many(
    harness: Harness, key: CreatedKey, request_ids: list[str], model: str, **body: Any
) -> list[httpx.Response]:
    """Authorizations at once (the writer batches them)."""
    return list(
        await asyncio.gather(
            *(harness.authorize(key, r, model=model, hold_usd="0.01", **body) for r in request_ids)
        )
    )


def codes(responses: list[httpx.Response]) -> Counter[str]:
    return Counter("ok" if r.status_code == 200 else r.json()["code"] for r in responses)


async def settle(
    harness: Harness, org: OrgRef, key: CreatedKey, request_ids: list[str], model: str
) -> None:
    results = await harness.usage(org, *(usage_event(key.id, r, model=model) for r in request_ids))
    assert {r["outcome"] for r in results} == {"billed"}, results


# -- concurrency ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "limit"), [("bytespike-free", 5), ("bytespike-pro", 10), ("bytespike-max", 50)]
)
async def test_bytespike_plans_limit_every_call_in_flight(
    harness: Harness, plan: str, limit: int
) -> None:
    org = await harness.org("spike", grant_usd="10")
    await subscribe(harness, org, plan)
    key = await harness.key(org)

    # Closed models count too (Bytez counts only open ones): exactly `limit` pass.
    ids = [f"c{n}" for n in range(limit + 5)]
    first = await authorize_many(harness, key, ids, CLOSED)
    assert codes(first) == {"ok": limit, "concurrency_limit": 5}
    limited = next(r for r in first if r.status_code == 429)
    assert limited.headers["Retry-After"] == "1"  # a call in flight may end any moment
    assert limited.json()["message"].endswith(
        f"plan runs {limit} calls at once and {limit} are in flight"
    )
    # An open model's call counts against the same limit.
    assert refused(await harness.authorize(key, "o", model=SMALL), 429, "concurrency_limit")

    # Once one call reports its usage, one more may run.
    running = [r for r, response in zip(ids, first, strict=True) if response.status_code == 200]
    await settle(harness, org, key, running[:1], CLOSED)
    again = await authorize_many(harness, key, [f"d{n}" for n in range(5)], CLOSED)
    assert codes(again) == {"ok": 1, "concurrency_limit": 4}
    assert await harness.books() == []


# -- the priority queue ---------------------------------------------------------------


async def test_authorize_says_whether_the_call_goes_to_the_priority_queue(
    harness: Harness,
) -> None:
    test_key = (
        "mutation($id: ID!) { testApiKey(input: {id: $id, model: "
        '"claude-sonnet-4-6", holdUsd: "0.01"}) { allowed priority } }'
    )
    cases = (("bytespike-pro", True), ("bytespike-free", False), (None, False))
    for n, (plan, priority) in enumerate(cases):
        org = await harness.org(f"org-{n}", grant_usd="1")
        if plan is not None:
            await subscribe(harness, org, plan)
        key = await harness.key(org)
        for dry_run in (True, False):  # the Test button's path and the real one
            answer = await harness.authorize(key, "r", hold_usd="0.01", dry_run=dry_run)
            assert answer.status_code == 200, answer.text
            assert answer.json()["priority"] is priority
        key_id = to_global_id("ApiKey", key.id)
        tested = await harness.graphql(test_key, harness.token(org, Role.OWNER), id=key_id)
        assert tested["data"]["testApiKey"] == {"allowed": True, "priority": priority}
    assert await harness.books() == []


# -- messages per 12 hours by model class ---------------------------------------------


async def test_pro_allows_50_premium_or_500_light_messages_per_12_hours(
    harness: Harness, clock: FrozenClock
) -> None:
    """One window, which 50 premium calls fill ("50-500 messages per 12h"), or 500
    light ones, or a mix (a premium call takes 1/50 of it, a light one 1/500)."""
    org = await harness.org("pro", grant_usd="20")
    await subscribe(harness, org, "bytespike-pro")
    key = await harness.key(org)

    async def calls(prefix: str, model: str, count: int) -> Counter[str]:
        """``count`` calls, ten at a time (Pro's concurrency), each reported when done."""
        outcome: Counter[str] = Counter()
        for start in range(0, count, 10):
            ids = [f"{prefix}-{n}" for n in range(start, min(start + 10, count))]
            responses = await authorize_many(harness, key, ids, model)
            outcome += codes(responses)
            done = [r for r, a in zip(ids, responses, strict=True) if a.status_code == 200]
            if done:
                await settle(harness, org, key, done, model)
        return outcome

    # The lower end: premium models fill the window with 50.
    assert await calls("premium", PREMIUM, 50) == {"ok": 50}
    clock.advance(timedelta(hours=1))
    over = await harness.authorize(key, "premium-50", model=PREMIUM, hold_usd="0.01")
    assert refused(over, 429, "message_limit")
    assert over.json()["message"] == (
        "the ByteSpike Pro plan's 12-hour window is full for premium models: it holds 50 "
        "such calls, fewer beside calls to other models"
    )
    assert over.headers["Retry-After"] == str(11 * 3600)  # when the first of them leaves
    # The window is shared: a light call does not fit beside 50 premium ones either.
    light = await harness.authorize(key, "light-0", model=LIGHT, hold_usd="0.01")
    assert refused(light, 429, "message_limit")

    clock.advance(timedelta(hours=11))  # the premium calls have left the window
    # The upper end: light models fill it with 500.
    assert await calls("light", LIGHT, 510) == {"ok": 500, "message_limit": 10}
    over = await harness.authorize(key, "light-510", model=LIGHT, hold_usd="0.01")
    assert refused(over, 429, "message_limit")
    assert over.headers["Retry-After"] == str(12 * 3600)

    # A mix: 25 premium calls (half the window) leave room for 250 light ones.
    clock.advance(timedelta(hours=12))
    assert await calls("half", PREMIUM, 25) == {"ok": 25}
    assert await calls("mixed", LIGHT, 260) == {"ok": 250, "message_limit": 10}
    # Standard models (sonnet) take 1/150: none fits in a full window.
    standard = await harness.authorize(key, "s", model=CLOSED, hold_usd="0.01")
    assert refused(standard, 429, "message_limit")
    assert await harness.books() == []


PLANS = """
{ plans { code concurrency concurrencyCounts priority trialGrant { usd }
  messagesPer12h { min max byClass { modelClass messages } } } }
"""


async def test_plans_show_their_message_range_concurrency_and_trial(harness: Harness) -> None:
    org = await harness.org()
    data = await harness.graphql(PLANS, harness.token(org, Role.VIEWER))
    by_code = {plan.pop("code"): plan for plan in data["data"]["plans"]}

    def messages(premium: int, standard: int, light: int) -> dict[str, Any]:
        figures = {"PREMIUM": premium, "STANDARD": standard, "LIGHT": light}
        return {
            "min": premium,
            "max": light,
            "byClass": [{"modelClass": c, "messages": n} for c, n in figures.items()],
        }

    assert by_code["bytespike-free"] == {
        "concurrency": 5,
        "concurrencyCounts": "CALLS",
        "priority": False,
        "trialGrant": {"usd": "1.000000"},
        "messagesPer12h": None,
    }
    assert by_code["bytespike-pro"] == {
        "concurrency": 10,
        "concurrencyCounts": "CALLS",
        "priority": True,
        "trialGrant": None,
        "messagesPer12h": messages(50, 150, 500),
    }
    assert by_code["bytespike-max"]["concurrency"] == 50
    assert by_code["bytespike-max"]["messagesPer12h"] == messages(500, 1500, 5000)
    assert by_code["bytez-free"]["concurrencyCounts"] == "OPEN_MODEL_CALLS"


# -- Free's trial allowance -----------------------------------------------------------

LEDGER = """
{ viewer { organization {
    wallet { balance { usd } entries(first: 50) { edges { node {
      kind amount { usd } reference memo } } } }
    billingTransactions(first: 50) { edges { node { kind amount { usd } } } } } } }
"""


async def back_on_free(harness: Harness, clock: FrozenClock, org: OrgRef) -> None:
    """Upgrade ``org`` to Pro now, choose Free, and let Pro's period end."""
    plans = harness.runtime.subscriptions
    assert (await plans.change(org.id, "bytespike-pro", actor="test", by_operator=True)).immediate
    assert not (await plans.change(org.id, "bytespike-free", actor="test")).immediate  # at the end
    clock.advance(timedelta(days=31))
    assert (await maintenance.run_once(harness.runtime)).periods_started == 1
    plan = await plans.plan_of(org.id)
    assert plan is not None
    assert plan.code == "bytespike-free"


async def test_a_new_organization_on_free_gets_the_trial_allowance_once(
    harness: Harness, clock: FrozenClock
) -> None:
    org = await harness.org("newco")
    owner = harness.token(org, Role.OWNER)
    changed = await harness.graphql(
        'mutation { changePlan(input: {planCode: "bytespike-free"}) { userErrors { code } } }',
        owner,
    )
    assert changed["data"]["changePlan"]["userErrors"] == []
    await back_on_free(harness, clock, org)  # a later Free period grants no second trial

    seen = (await harness.graphql(LEDGER, owner))["data"]["viewer"]["organization"]
    assert seen["wallet"]["balance"] == {"usd": "1.000000"}
    assert [edge["node"] for edge in seen["wallet"]["entries"]["edges"]] == [
        {
            "kind": "TRIAL",
            "amount": {"usd": "1.000000"},
            "reference": "trial:bytespike-free",
            "memo": "ByteSpike Free: trial allowance for a new organization",
        }
    ]
    assert [edge["node"] for edge in seen["billingTransactions"]["edges"]] == [
        {"kind": "TRIAL", "amount": {"usd": "1.000000"}}
    ]
    assert await harness.books() == []


async def test_free_after_another_plan_grants_no_trial(
    harness: Harness, clock: FrozenClock
) -> None:
    org = await harness.org("veteran", grant_usd="2")
    await back_on_free(harness, clock, org)
    assert await harness.balance(org) == (2_000_000, 0)
    assert await harness.books() == []


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ("{ premium = 50 }", "standard included"),
        ("500", "standard included"),
        ("{ standard = 5, huge = 1 }", "unknown model class huge"),
        ("{ premium = 500, standard = 50 }", "premium <= standard <= light"),
        ('{ standard = "5" }', "positive whole number"),
        ("{ standard = 0 }", "positive whole number"),
    ],
)
def test_a_catalog_with_bad_message_limits_is_refused(
    tmp_path: Path, limits: str, message: str
) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(SMALL_CATALOG.replace("{ standard = 5 }", limits), encoding="utf-8")
    with pytest.raises(CatalogError, match=f"bytespike-pro: messages_per_12h: .*{message}"):
        Catalog.load(path)


def test_a_catalog_names_what_concurrency_counts(tmp_path: Path) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(SMALL_CATALOG + 'concurrency_counts = "tokens"\n', encoding="utf-8")
    with pytest.raises(CatalogError, match="bytespike-pro: 'tokens' is not a valid"):
        Catalog.load(path)

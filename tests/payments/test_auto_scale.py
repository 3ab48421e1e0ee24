"""Bytez's autoScale: an open-model call past its unlock tier's size or concurrency buys
the purchase that unlocks the tier it needs, charged to the saved card within the Max
Monthly Spend (auto-reload's monthly maximum), instead of being refused; without it, the
refusal as before. Asked per call (``autoScale`` on authorize, the dry run and
testApiKey) or by the organization's default (``setAutoScale``, audited)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.auth import Role
from app.clock import Clock, FrozenClock
from app.ids import to_global_id
from app.keys.service import CreatedKey
from app.money import parse_usd
from app.orgs.service import OrgRef
from tests.conftest import Harness
from tests.payments.conftest import StripeHarness
from tests.payments.test_auto_reload import off_session_charges, save_card, update
from tests.plans.test_enforcement import HUGE, MEDIUM, SMALL, buy, refused, subscribe

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
GIANT = "openai/gpt-oss-120b"  # 120B: the 50 USD tier

READ = """
query {
  viewer { organization {
    autoScale { byDefault maxMonthlySpend { usd } }
    wallet { purchasedLast28Days { usd } }
    entitlement { concurrentRequests }
    billingTransactions(first: 100) { edges { node { kind status amount { usd } memo } } }
  } }
}
"""

SET = """
mutation($input: SetAutoScaleInput!) {
  setAutoScale(input: $input) { autoScale { byDefault } userErrors { field code } }
}
"""

AUDIT = """
query {
  viewer { organization {
    auditEvents(filter: {action: "auto_scale.update"}) {
      edges { node { actor target before after } }
    }
  } }
}
"""

SPEND_CAP = """
mutation($limit: Decimal) {
  setSpendCap(input: {monthlyLimitUsd: $limit}) { userErrors { code } }
}
"""

TEST = """
mutation($input: TestApiKeyInput!) {
  testApiKey(input: $input) {
    allowed hold { credits } autoScalePurchase { usd } refusal { status code }
  }
}
"""


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


async def bytez(harness: Harness) -> tuple[OrgRef, CreatedKey]:
    """A Pay-as-you-go organization that bought 10 USD (open models up to 35B, four at
    once), which saved the fake provider's card."""
    org = await harness.org("payg", grant_usd="1")
    await subscribe(harness, org, "bytez-payg")
    await buy(harness, org, "10")
    return org, await harness.key(org)


async def call(harness: Harness, key: CreatedKey, request_id: str, **body: Any) -> httpx.Response:
    body.setdefault("model", HUGE)
    return await harness.authorize(key, request_id, hold_usd="0.01", **body)


async def read(harness: Harness, org: OrgRef) -> dict[str, Any]:
    body = await harness.graphql(READ, headers=harness.token(org, Role.VIEWER))
    assert "errors" not in body, body
    organization: dict[str, Any] = body["data"]["viewer"]["organization"]
    return organization


async def automatic(harness: Harness, org: OrgRef) -> list[dict[str, Any]]:
    """The organization's automatic purchases, oldest first."""
    edges = (await read(harness, org))["billingTransactions"]["edges"]
    return [e["node"] for e in reversed(edges) if e["node"]["kind"] == "AUTO_RELOAD"]


def scaled_by(usd: str) -> dict[str, Any]:
    return {
        "kind": "AUTO_RELOAD",
        "status": "SUCCEEDED",
        "amount": {"usd": usd},
        "memo": "autoScale",
    }


def purchase(response: httpx.Response) -> str | None:
    assert response.status_code == 200, response.text
    bought = response.json()["auto_scale_purchase"]
    return None if bought is None else str(bought["usd"])


async def set_default(harness: Harness, org: OrgRef, role: Role, on: bool) -> dict[str, Any]:
    body = await harness.graphql(SET, headers=harness.token(org, role), input={"byDefault": on})
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["setAutoScale"]
    return payload


async def test_a_larger_model_buys_the_tier_it_needs(harness: Harness) -> None:
    org, key = await bytez(harness)
    assert refused(await call(harness, key, "h0"), 403, "model_not_unlocked")
    assert refused(await call(harness, key, "h0", autoScale=False), 403, "model_not_unlocked")
    assert await automatic(harness, org) == []

    # 70B needs the 25 USD tier: 15 USD more, bought from the saved card first.
    scaled = await call(harness, key, "h1", autoScale=True)
    assert purchase(scaled) == "15.000000"
    assert scaled.json()["hold"]["usd"] == "0.010000"  # the call's own price, unchanged
    assert await automatic(harness, org) == [scaled_by("15.000000")]
    assert (await read(harness, org))["wallet"]["purchasedLast28Days"] == {"usd": "25.000000"}
    assert await harness.balance(org) == (parse_usd("26"), parse_usd("0.01"))

    # Bought, the tier is the organization's: the next call needs neither flag nor purchase.
    assert purchase(await call(harness, key, "h2")) is None
    assert purchase(await call(harness, key, "h3", autoScale=True)) is None
    assert len(await automatic(harness, org)) == 1
    assert await harness.books() == []


async def test_concurrent_calls_buy_exactly_the_tiers_they_need(harness: Harness) -> None:
    org, key = await bytez(harness)
    plain = await asyncio.gather(*(call(harness, key, f"p{n}", model=SMALL) for n in range(8)))
    assert Counter(r.status_code for r in plain) == {200: 4, 429: 4}
    assert all(refused(r, 429, "concurrency_limit") for r in plain if r.status_code == 429)

    # 16 more at once: 20 in flight need the 50 USD tier (20 at once), reached through the
    # 25 USD one (10 at once), each bought once.
    scaled = await asyncio.gather(
        *(call(harness, key, f"s{n}", model=SMALL, autoScale=True) for n in range(16))
    )
    assert [r.status_code for r in scaled] == [200] * 16
    assert sorted(p for r in scaled if (p := purchase(r))) == ["15.000000", "25.000000"]
    assert await automatic(harness, org) == [scaled_by("15.000000"), scaled_by("25.000000")]
    state = await read(harness, org)
    assert state["entitlement"]["concurrentRequests"] == 20
    assert await harness.balance(org) == (parse_usd("51"), parse_usd("0.20"))
    assert await harness.books() == []


async def test_the_organization_default_set_over_graphql_and_audited(harness: Harness) -> None:
    org, key = await bytez(harness)
    assert (await read(harness, org))["autoScale"] == {
        "byDefault": False,
        "maxMonthlySpend": {"usd": "100.000000"},
    }
    for role in (Role.MEMBER, Role.VIEWER):
        denied = await set_default(harness, org, role, True)
        assert denied == {"autoScale": None, "userErrors": [{"field": None, "code": "FORBIDDEN"}]}

    on = await set_default(harness, org, Role.OWNER, True)
    assert on == {"autoScale": {"byDefault": True}, "userErrors": []}
    assert refused(await call(harness, key, "h0", autoScale=False), 403, "model_not_unlocked")
    assert purchase(await call(harness, key, "h1")) == "15.000000"  # the default scales it

    assert (await set_default(harness, org, Role.ADMIN, False))["userErrors"] == []
    giant = await call(harness, key, "g0", model=GIANT)
    assert refused(giant, 403, "model_not_unlocked")
    assert purchase(await call(harness, key, "g1", model=GIANT, autoScale=True)) == "25.000000"

    body = await harness.graphql(AUDIT, headers=harness.token(org, Role.OWNER))
    events = [
        edge["node"] for edge in body["data"]["viewer"]["organization"]["auditEvents"]["edges"]
    ]
    target = f"organization:{org.id}"
    assert events == [
        {
            "actor": "admin@test",
            "target": target,
            "before": {"auto_scale_default": True},
            "after": {"auto_scale_default": False},
        },
        {
            "actor": "owner@test",
            "target": target,
            "before": {"auto_scale_default": False},
            "after": {"auto_scale_default": True},
        },
    ]
    assert await harness.books() == []


async def test_never_past_the_max_monthly_spend_nor_the_spend_cap(harness: Harness) -> None:
    org, key = await bytez(harness)
    owner = harness.token(org, Role.OWNER)
    assert (await update(harness, org, monthlyMaxUsd="20"))["userErrors"] == []

    # The monthly spend cap still limits the call itself: refused before anything is bought.
    assert (await harness.graphql(SPEND_CAP, headers=owner, limit="0"))["data"]
    assert refused(await call(harness, key, "c0", autoScale=True), 429, "spend_cap_reached")
    assert (await harness.graphql(SPEND_CAP, headers=owner, limit=None))["data"]
    assert await automatic(harness, org) == []

    assert purchase(await call(harness, key, "h1", autoScale=True)) == "15.000000"
    # 120B needs 25 USD more: past the 20 USD this month's automatic purchases may charge.
    over = await call(harness, key, "g1", model=GIANT, autoScale=True)
    assert refused(over, 402, "max_monthly_spend_reached")
    assert over.json()["message"] == (
        "autoScale needs a purchase of 25.000000 USD and the Max Monthly Spend (auto-reload's "
        "monthly maximum, 20.000000 USD) has 5.000000 USD left this month"
    )
    next_month = datetime(2026, 12, 1, tzinfo=UTC)
    assert over.headers["Retry-After"] == str(int((next_month - T0).total_seconds()))
    tried = await call(harness, key, "g1", model=GIANT, autoScale=True, dry_run=True)
    assert (tried.status_code, tried.json()) == (402, over.json())
    assert await automatic(harness, org) == [scaled_by("15.000000")]
    assert (await read(harness, org))["wallet"]["purchasedLast28Days"] == {"usd": "25.000000"}
    assert await harness.books() == []


async def test_nothing_to_buy_with_or_for(harness: Harness) -> None:
    # Without a saved card autoScale cannot buy: 402, and nothing is charged.
    payg = await harness.org("payg", grant_usd="5")
    await subscribe(harness, payg, "bytez-payg")
    no_card = await call(harness, await harness.key(payg), "h0", autoScale=True)
    assert refused(no_card, 402, "auto_scale_unavailable")
    assert "none is saved" in no_card.json()["message"]
    # Bytez Free has no tiers to buy: refused as without the flag.
    free = await harness.org("free", grant_usd="1")
    await subscribe(harness, free, "bytez-free")
    free_key = await harness.key(free)
    assert refused(
        await call(harness, free_key, "m0", model=MEDIUM, autoScale=True), 403, "model_not_unlocked"
    )
    bad = await call(harness, free_key, "m1", autoScale="yes")
    assert bad.status_code == 400
    assert bad.json()["message"] == "autoScale: must be true or false"
    assert await automatic(harness, payg) == await automatic(harness, free) == []


async def test_the_dry_run_and_test_api_key_buy_nothing(harness: Harness) -> None:
    org, key = await bytez(harness)
    tried = await call(harness, key, "h1", autoScale=True, dry_run=True)
    assert purchase(tried) == "15.000000"
    assert tried.json()["dry_run"] is True
    assert tried.json()["hold"]["usd"] == "0.010000"

    async def test(**fields: Any) -> dict[str, Any]:
        fields |= {"id": to_global_id("ApiKey", key.id), "model": HUGE, "holdUsd": "0.01"}
        body = await harness.graphql(TEST, headers=harness.token(org, Role.OWNER), input=fields)
        assert "errors" not in body, body
        payload: dict[str, Any] = body["data"]["testApiKey"]
        return payload

    assert await test(autoScale=True) == {
        "allowed": True,
        "hold": {"credits": "10000"},
        "autoScalePurchase": {"usd": "15.000000"},
        "refusal": None,
    }
    assert await test() == {
        "allowed": False,
        "hold": None,
        "autoScalePurchase": None,
        "refusal": {"status": 403, "code": "model_not_unlocked"},
    }
    assert await automatic(harness, org) == []
    assert await harness.balance(org) == (parse_usd("11"), 0)
    # What the dry run said is what authorize does.
    assert purchase(await call(harness, key, "h1", autoScale=True)) == "15.000000"


async def test_stripe_charges_the_saved_card_and_a_decline_pauses(paying: StripeHarness) -> None:
    app = paying.app
    org = await app.org("payg", grant_usd="1")
    await subscribe(app, org, "bytez-payg")
    key = await app.key(org)
    await save_card(paying, org, "pm_card_chargeDeclined")  # a 10 USD top-up saves it

    declined = await call(app, key, "h0", autoScale=True)
    assert refused(declined, 402, "payment_failed")
    assert declined.json()["message"] == "the saved card was declined: Your card was declined."
    (charge,) = off_session_charges(paying)
    assert charge.params["amount"] == "1500"
    assert [(t["status"], t["memo"]) for t in await automatic(app, org)] == [
        ("FAILED", "autoScale")
    ]
    # Paused, as auto-reload is after a decline: not charged again until a card is saved.
    paused = await call(app, key, "h1", autoScale=True)
    assert refused(paused, 402, "auto_scale_unavailable")
    assert "paused" in paused.json()["message"]
    assert len(off_session_charges(paying)) == 1

    await save_card(paying, org, "pm_card_visa")  # 20 USD bought now: 35B still
    assert purchase(await call(app, key, "h2", autoScale=True)) == "5.000000"
    last = off_session_charges(paying)[-1].params
    assert (last["amount"], last["payment_method"]) == ("500", "pm_card_visa")
    assert await app.books() == []

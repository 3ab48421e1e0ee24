"""8bit-ai's credit packs ("Buy credit packs"): a plan-credit organization buys its plan's
packs, which charge dollars and deliver plan credits at the plan's rate (the overage
rate: $0.02 a credit on Starter, $0.01 on Pro); a dollar amount there is refused, and
auto-reload's dollars convert at the same rate. USD organizations top up as before."""

from __future__ import annotations

from typing import Any

import pytest

from app.auth import Role
from app.ids import to_global_id
from app.operations import adjust, create_organization
from app.orgs.service import OrgRef
from tests.conftest import Harness
from tests.payments import stripe_events
from tests.payments.conftest import StripeHarness
from tests.payments.test_auto_reload import idle, off_session_charges, reloads, save_card, update
from tests.plans.test_enforcement import subscribe

CREDIT = 1_000_000  # one plan credit, in stored units

PLANS = "{ plans { code creditPacks { id credits { usd } priceUsd } } }"
QUOTE = """
query($amountUsd: Decimal, $packId: ID) {
  topUpQuote(amountUsd: $amountUsd, packId: $packId) {
    amount { usd } creditsBought { usd } bonusPercent bonus { usd } creditsDelivered { usd }
  }
}
"""
CREATE = """
mutation($input: CreateTopUpInput!) {
  createTopUp(input: $input) {
    topUp { id status amount { usd } creditsBought { credits } credits { credits } }
    clientSecret
    userErrors { field code message }
  }
}
"""
WALLET = """
{ viewer { organization {
  wallet { entries(first: 10) { edges { node { kind amount { credits } } } } }
  billingTransactions(first: 10) { totalCount edges { node {
    kind status amount { usd } creditsBought { credits } credits { credits } } } }
} } }
"""
REFUND = """
mutation($input: RefundTopUpInput!) {
  refundTopUp(input: $input) { clawedBack { credits } userErrors { code } }
}
"""


async def on_plan(harness: Harness, plan: str) -> OrgRef:
    org = await create_organization(harness.runtime, slug="agents", rate_card="8bit-ai")
    await subscribe(harness, org, plan)
    return org


async def quote(harness: Harness, org: OrgRef, **args: str) -> dict[str, Any]:
    body = await harness.graphql(QUOTE, headers=harness.token(org, Role.VIEWER), **args)
    return body


async def create(harness: Harness, org: OrgRef, **purchase: str) -> dict[str, Any]:
    body = await harness.graphql(CREATE, headers=harness.token(org, Role.OWNER), input=purchase)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["createTopUp"]
    return payload


async def wallet(harness: Harness, org: OrgRef) -> dict[str, Any]:
    body = await harness.graphql(WALLET, headers=harness.token(org, Role.VIEWER))
    assert "errors" not in body, body
    organization: dict[str, Any] = body["data"]["viewer"]["organization"]
    return organization


async def test_plans_list_their_packs(harness: Harness) -> None:
    org = await harness.org()
    body = await harness.graphql(PLANS, headers=harness.token(org, Role.VIEWER))
    packs = {plan["code"]: plan["creditPacks"] for plan in body["data"]["plans"]}
    assert packs["8bit-starter"][1] == {
        "id": "8bit-starter:1000",
        "credits": {"usd": "1000.000000"},
        "priceUsd": "20.000000",
    }
    assert [p["id"] for p in packs["8bit-pro"]] == [
        "8bit-pro:2500",
        "8bit-pro:5000",
        "8bit-pro:10000",
        "8bit-pro:25000",
    ]
    assert packs["8bit-pro"][0]["priceUsd"] == "25.000000"
    assert packs["8bit-enterprise"] == packs["bytespike-pro"] == packs["bytez-payg"] == []


async def test_starter_buys_a_pack_through_stripe(paying: StripeHarness) -> None:
    h = paying
    org = await on_plan(h.app, "8bit-starter")
    quoted = (await quote(h.app, org, packId="8bit-starter:1000"))["data"]["topUpQuote"]
    assert quoted == {
        "amount": {"usd": "20.000000"},
        "creditsBought": {"usd": "1000.000000"},
        "bonusPercent": "0",
        "bonus": {"usd": "0.000000"},
        "creditsDelivered": {"usd": "1000.000000"},
    }

    started = await create(h.app, org, packId="8bit-starter:1000")
    assert started["userErrors"] == []
    assert started["topUp"]["status"] == "PENDING"
    assert started["topUp"]["amount"] == {"usd": "20.000000"}
    assert started["topUp"]["creditsBought"] == {"credits": str(1000 * CREDIT)}
    (intent,) = h.standin.objects_of("payment_intent")
    (charged,) = [r for r in h.standin.requests if r.path == "/v1/payment_intents"]
    assert charged.params["amount"] == "2000"  # cents: the pack's price, not its credits
    assert await h.app.balance(org) == (0, 0)

    paid = h.standin.succeed_payment_intent(intent["id"])
    evt = stripe_events.event("payment_intent.succeeded", paid)
    assert (await h.webhook(evt)).json()["outcome"] == "succeeded"
    assert await h.app.balance(org) == (1000 * CREDIT, 0)
    seen = await wallet(h.app, org)
    (entry,) = [e["node"] for e in seen["wallet"]["entries"]["edges"]]
    assert entry == {"kind": "TOP_UP", "amount": {"credits": str(1000 * CREDIT)}}
    (row,) = [e["node"] for e in seen["billingTransactions"]["edges"]]
    assert row == {
        "kind": "TOP_UP",
        "status": "SUCCEEDED",
        "amount": {"usd": "20.000000"},
        "creditsBought": {"credits": str(1000 * CREDIT)},
        "credits": {"credits": str(1000 * CREDIT)},
    }

    # Half the price refunded takes back half the pack.
    refund = {"topUpId": started["topUp"]["id"], "amountUsd": "10"}
    body = await h.app.graphql(REFUND, headers=h.app.token(org, Role.OWNER), input=refund)
    assert body["data"]["refundTopUp"] == {
        "clawedBack": {"credits": str(500 * CREDIT)},
        "userErrors": [],
    }
    assert await h.app.balance(org) == (500 * CREDIT, 0)
    assert await h.app.books() == []


async def test_dollars_and_packs_not_sold_are_refused(harness: Harness) -> None:
    org = await on_plan(harness, "8bit-starter")
    for purchase, error in [
        ({"amountUsd": "20"}, ("amountUsd", "PACK_REQUIRED")),
        ({"packId": "8bit-pro:2500"}, ("packId", "NOT_FOUND")),  # another plan's
        ({"packId": "8bit-starter:999"}, ("packId", "NOT_FOUND")),
        ({"packId": to_global_id("BillingTransaction", 1)}, ("packId", "NOT_FOUND")),
        ({"amountUsd": "20", "packId": "8bit-starter:1000"}, (None, "INVALID_INPUT")),
    ]:
        refused = await create(harness, org, **purchase)
        assert refused["topUp"] is None, purchase
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [error], purchase
        answer = await quote(harness, org, **purchase)
        assert answer["data"] is None, purchase
        assert [e["extensions"]["code"] for e in answer["errors"]] == ["BAD_USER_INPUT"]
    (refused_error,) = (await create(harness, org, amountUsd="20"))["userErrors"]
    assert "packs" in refused_error["message"]

    # Enterprise credits come by contract: nothing to buy, nothing to reload.
    enterprise = await create_organization(harness.runtime, slug="big", rate_card="8bit-ai")
    await subscribe(harness, enterprise, "8bit-enterprise")
    for purchase, error in [
        ({"amountUsd": "20"}, ("amountUsd", "PACK_REQUIRED")),
        ({"packId": "8bit-starter:500"}, ("packId", "NOT_FOUND")),
    ]:
        refused = await create(harness, enterprise, **purchase)
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [error]
    reload = await update(harness, enterprise, enabled=True)
    assert reload["userErrors"] == [{"field": "enabled", "code": "INVALID_INPUT"}]

    for refused_org in (org, enterprise):
        assert (await wallet(harness, refused_org))["billingTransactions"]["totalCount"] == 0
        assert await harness.balance(refused_org) == (0, 0)


async def test_usd_organizations_top_up_dollars_as_before(paying: StripeHarness) -> None:
    h = paying
    org = await h.app.org("spike")
    await subscribe(h.app, org, "bytespike-pro")
    quoted = (await quote(h.app, org, amountUsd="99.99"))["data"]["topUpQuote"]
    assert quoted == {
        "amount": {"usd": "99.990000"},
        "creditsBought": {"usd": "99.990000"},
        "bonusPercent": "8",  # the ladder's 3% and Pro's +5
        "bonus": {"usd": "7.999200"},
        "creditsDelivered": {"usd": "107.989200"},
    }
    refused = await create(h.app, org, packId="8bit-starter:500")
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [("packId", "NOT_FOUND")]

    started = await create(h.app, org, amountUsd="99.99")
    assert started["topUp"]["creditsBought"] == {"credits": "99990000"}
    (intent,) = h.standin.objects_of("payment_intent")
    paid = h.standin.succeed_payment_intent(intent["id"])
    await h.webhook(stripe_events.event("payment_intent.succeeded", paid))
    assert await h.app.balance(org) == (107_989_200, 0)
    assert await h.app.books() == []


@pytest.mark.parametrize(
    ("plan", "pack", "reload_usd", "reload_credits"),
    [("8bit-starter", "8bit-starter:500", "10", 500), ("8bit-pro", "8bit-pro:2500", "25", 2500)],
)
async def test_auto_reload_buys_plan_credits_at_the_pack_rate(
    paying: StripeHarness, plan: str, pack: str, reload_usd: str, reload_credits: int
) -> None:
    app = paying.app
    org = await on_plan(app, plan)
    key = await app.key(org)
    await save_card(paying, org, "pm_card_visa", {"packId": pack})
    # The plan's auto top-up minimum still holds; the threshold counts plan credits.
    below = await update(app, org, enabled=True, amountUsd=str(int(reload_usd) - 1))
    assert below["userErrors"] == [{"field": "amountUsd", "code": "INVALID_AMOUNT"}]
    saved = await update(app, org, enabled=True, amountUsd=reload_usd, thresholdUsd="100")
    assert saved["userErrors"] == []
    balance, _ = await app.balance(org)
    await adjust(app.runtime, org.id, 105 * CREDIT - balance, "spent", actor="test")

    # One GPT-4 call (10 credits) leaves 95, under the threshold: one reload.
    event = {"request_id": "r1", "api_key_id": to_global_id("ApiKey", key.id), "model": "gpt-4"}
    (result,) = await app.usage(org, event)
    assert result["cost"]["credits"] == str(10 * CREDIT)
    await idle(app)
    (reload,) = await reloads(app, org)
    assert reload["status"] == "SUCCEEDED"
    assert reload["amount"] == {"usd": f"{reload_usd}.000000"}
    assert reload["credits"] == {"usd": f"{reload_credits}.000000"}
    (charge,) = off_session_charges(paying)
    assert charge.params["amount"] == str(int(reload_usd) * 100)
    assert await app.balance(org) == ((95 + reload_credits) * CREDIT, 0)
    assert await app.books() == []

"""Plans over several periods, on a clock the test moves: allocations granted, part used,
rollover capped by the policy, the rest expired, overage billed at the plan's rate,
upgrades at once and downgrades at the period's end, unlock tiers won and lost.
``creditgraph verify`` passes after every period, and a renewal run twice grants once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import print_ast

from app import maintenance
from app.auth import Role
from app.clock import FrozenClock
from app.operations import adjust, create_organization
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, running_app
from tests.graphql.test_schema import OPERATIONS

START = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
CREDIT = 1_000_000  # one plan credit (or one USD), in stored units

SUBSCRIPTION = """
{ viewer { organization {
    wallet { balance { credits } }
    subscription { plan { code } currentPeriodStart currentPeriodEnd nextPlan { code }
                   allocationRemaining { credits } }
    entitlement { tier maxOpenModelParamsB concurrentRequests
                  nextTier { tier purchaseNeeded { usd } } }
} } }
"""
TRANSACTIONS = """
{ viewer { organization { billingTransactions(first: 50) {
    edges { node { kind status amount { credits usd } credits { credits } } } } } } }
"""


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Harness]:
    async with running_app(settings, clock) as harness:
        yield harness


async def _overview(app: Harness, org: OrgRef) -> dict[str, Any]:
    data = await app.graphql(SUBSCRIPTION, app.token(org, Role.OWNER))
    assert "errors" not in data, data
    organization: dict[str, Any] = data["data"]["viewer"]["organization"]
    return organization


async def _renew(app: Harness, clock: FrozenClock, to: datetime) -> int:
    """Move the clock to ``to`` and run the periodic jobs there, twice: the second run
    must find nothing to do."""
    clock.at = to
    swept = await maintenance.run_once(app.runtime)
    assert (await maintenance.run_once(app.runtime)).periods_started == 0
    assert await app.books() == []
    return swept.periods_started


async def _spend(app: Harness, org: OrgRef, credits: int) -> None:
    """Spend ``credits`` whole units (plan credits or USD), in consumption order."""
    await adjust(app.runtime, org.id, -credits * CREDIT, "spend", actor="test")


async def _eight_bit(app: Harness, plan: str) -> OrgRef:
    org = await create_organization(app.runtime, slug="agents", rate_card="8bit-ai")
    change = await app.runtime.subscriptions.change(org.id, plan, actor="test", by_operator=True)
    assert change.immediate
    return org


async def test_8bit_pro_rolls_over_up_to_one_allocation_then_bills_overage(
    app: Harness, clock: FrozenClock
) -> None:
    org = await _eight_bit(app, "8bit-pro")
    view = await _overview(app, org)
    assert view["subscription"]["plan"]["code"] == "8bit-pro"
    assert view["subscription"]["currentPeriodEnd"] == "2026-02-10T09:30:00+00:00"
    assert view["subscription"]["allocationRemaining"]["credits"] == str(200_000 * CREDIT)
    assert await app.balance(org) == (200_000 * CREDIT, 0)

    # Period 1: 50,000 used; the 150,000 left roll over (Pro: up to 100%, one cycle).
    await _spend(app, org, 50_000)
    assert await _renew(app, clock, datetime(2026, 2, 10, 9, 30, tzinfo=UTC)) == 1
    assert await app.balance(org) == (350_000 * CREDIT, 0)
    view = await _overview(app, org)
    assert view["subscription"]["allocationRemaining"]["credits"] == str(350_000 * CREDIT)
    assert view["subscription"]["currentPeriodEnd"] == "2026-03-10T09:30:00+00:00"

    # Period 2: 300,000 used: the rollover first (it went in first), then the allocation.
    await _spend(app, org, 300_000)
    assert await _renew(app, clock, datetime(2026, 3, 10, 9, 30, tzinfo=UTC)) == 1
    assert await app.balance(org) == (250_000 * CREDIT, 0)  # 50,000 carried + 200,000

    # Period 3: 400,000 used, 150,000 past everything: overage at 0.01 USD a credit.
    await _spend(app, org, 400_000)
    assert await app.balance(org) == (-150_000 * CREDIT, 0)
    assert await _renew(app, clock, datetime(2026, 4, 10, 9, 30, tzinfo=UTC)) == 1
    assert await app.balance(org) == (200_000 * CREDIT, 0)  # the debt settled, then granted
    data = await app.graphql(TRANSACTIONS, app.token(org, Role.OWNER))
    edges = data["data"]["viewer"]["organization"]["billingTransactions"]["edges"]
    overage = [e["node"] for e in edges if e["node"]["kind"] == "OVERAGE"]
    assert overage == [
        {
            "kind": "OVERAGE",
            "status": "PENDING",  # no card saved: shown as owed
            "amount": {"credits": "1500000000", "usd": "1500.000000"},
            "credits": {"credits": str(150_000 * CREDIT)},
        }
    ]


async def test_8bit_starter_has_no_rollover(app: Harness, clock: FrozenClock) -> None:
    org = await _eight_bit(app, "8bit-starter")
    await _spend(app, org, 15_000)
    assert await _renew(app, clock, datetime(2026, 2, 10, 9, 30, tzinfo=UTC)) == 1
    assert await app.balance(org) == (20_000 * CREDIT, 0)  # 5,000 unused expired
    # Two periods pass unattended: both are granted, in order, and the first expires.
    assert await _renew(app, clock, datetime(2026, 4, 11, tzinfo=UTC)) == 2
    assert await app.balance(org) == (20_000 * CREDIT, 0)
    view = await _overview(app, org)
    assert view["subscription"]["currentPeriodStart"] == "2026-04-10T09:30:00+00:00"


async def test_bytez_free_refreshes_every_four_weeks(app: Harness, clock: FrozenClock) -> None:
    org = await app.org("bytez")
    await app.runtime.subscriptions.change(org.id, "bytez-free", actor="test")
    assert await app.balance(org) == (CREDIT, 0)
    view = await _overview(app, org)
    assert view["entitlement"] == {
        "tier": 0,
        "maxOpenModelParamsB": 7,
        "concurrentRequests": 1,
        "nextTier": None,
    }
    assert await _renew(app, clock, START + timedelta(weeks=4)) == 1
    assert await app.balance(org) == (CREDIT, 0)  # the old dollar expired, a new one came


async def test_a_tier_unlocked_by_a_purchase_is_lost_28_days_later(
    app: Harness, clock: FrozenClock
) -> None:
    org = await app.org("bytez")
    owner = app.token(org, Role.OWNER)
    changed = await app.graphql(
        'mutation { changePlan(input: {planCode: "bytez-payg"}) '
        "{ effectiveAt userErrors { code message } } }",
        owner,
    )
    assert changed["data"]["changePlan"]["userErrors"] == []
    view = await _overview(app, org)
    assert view["entitlement"]["tier"] == 0
    assert view["entitlement"]["nextTier"] == {"tier": 1, "purchaseNeeded": {"usd": "3.000000"}}
    top_up = await app.graphql(
        'mutation { createTopUp(input: {amountUsd: "25"}) { topUp { status } } }', owner
    )
    assert top_up["data"]["createTopUp"]["topUp"]["status"] == "SUCCEEDED"
    view = await _overview(app, org)
    assert view["entitlement"]["tier"] == 3
    assert view["entitlement"]["maxOpenModelParamsB"] == 70
    assert view["entitlement"]["concurrentRequests"] == 10
    assert view["entitlement"]["nextTier"]["purchaseNeeded"] == {"usd": "25.000000"}
    # Bytez: purchased credits expire 4 weeks after purchase, and the tier with them.
    clock.advance(timedelta(days=28))
    await maintenance.run_once(app.runtime)
    view = await _overview(app, org)
    assert view["entitlement"]["tier"] == 0
    assert await app.books() == []


async def test_upgrade_at_once_and_downgrade_at_the_periods_end(
    app: Harness, clock: FrozenClock
) -> None:
    org = await app.org("spike")
    owner = app.token(org, Role.OWNER)
    change = (
        "mutation($code: String!) { changePlan(input: {planCode: $code}) "
        "{ effectiveAt subscription { plan { code } nextPlan { code } } userErrors { code } } }"
    )
    quote = '{ topUpQuote(amountUsd: "99.99") { bonusPercent } }'

    async def to(code: str) -> dict[str, Any]:
        data = await app.graphql(change, owner, code=code)
        result: dict[str, Any] = data["data"]["changePlan"]
        return result

    assert (await to("bytespike-free"))["effectiveAt"] == "2026-01-10T09:30:00+00:00"
    assert (await app.graphql(quote, owner))["data"]["topUpQuote"]["bonusPercent"] == "3"
    clock.advance(timedelta(days=3))
    upgraded = await to("bytespike-pro")  # costs more: at once
    assert upgraded["effectiveAt"] == "2026-01-13T09:30:00+00:00"
    assert upgraded["subscription"]["plan"]["code"] == "bytespike-pro"
    # Pro's +5% boost on top of the ladder's +3%.
    assert (await app.graphql(quote, owner))["data"]["topUpQuote"]["bonusPercent"] == "8"
    downgraded = await to("bytespike-free")  # costs less: at the period's end
    assert downgraded["effectiveAt"] == "2026-02-13T09:30:00+00:00"
    assert downgraded["subscription"]["plan"]["code"] == "bytespike-pro"
    assert downgraded["subscription"]["nextPlan"] == {"code": "bytespike-free"}
    assert await _renew(app, clock, datetime(2026, 2, 13, 9, 30, tzinfo=UTC)) == 1
    view = await _overview(app, org)
    assert view["subscription"]["plan"]["code"] == "bytespike-free"
    assert view["subscription"]["nextPlan"] is None
    assert view["subscription"]["currentPeriodEnd"] == "2026-03-13T09:30:00+00:00"


async def test_plan_changes_refused(app: Harness) -> None:
    org = await app.org("acme")
    cases = {
        ("nope", Role.OWNER): "INVALID_INPUT",
        ("8bit-pro", Role.OWNER): "INVALID_INPUT",  # by contract, and another unit
        ("bytespike-enterprise", Role.ADMIN): "INVALID_INPUT",
        ("bytez-free", Role.MEMBER): "FORBIDDEN",
        ("bytez-free", Role.VIEWER): "FORBIDDEN",
    }
    for (code, role), expected in cases.items():
        data = await app.graphql(
            "mutation($c: String!) { changePlan(input: {planCode: $c}) { userErrors { code } } }",
            app.token(org, role),
            c=code,
        )
        assert [e["code"] for e in data["data"]["changePlan"]["userErrors"]] == [expected]
    assert (await _overview(app, org))["subscription"] is None


async def test_the_contracts_plan_operations_run(app: Harness) -> None:
    org = await app.org("acme", grant_usd="5")
    await app.runtime.subscriptions.change(org.id, "bytez-payg", actor="test")
    owner = app.token(org, Role.OWNER)
    for name in ("Plans", "WalletOverview"):
        data = await app.graphql(print_ast(OPERATIONS[name]), owner)
        assert "errors" not in data, data
    plans = await app.graphql("{ plans { code price { amount currency } } }", owner)
    by_code = {p["code"]: p["price"] for p in plans["data"]["plans"]}
    assert by_code["bytespike-pro"] == {"amount": "149.000000", "currency": "CNY"}
    assert by_code["8bit-enterprise"] is None

"""8bit-ai's overage charged to the saved card, through the Stripe stand-in: when a
period closes past its allocation, the periodic jobs charge the card off-session the
USD owed at the plan's rate; a declined card leaves the charge FAILED with Stripe's
reason, and without a card it stays PENDING, owed, and nothing is charged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app import maintenance
from app.auth import Role
from app.clock import FrozenClock
from app.operations import adjust, create_organization
from app.orgs.service import OrgRef
from tests.graphql.test_audit import audit, nodes
from tests.payments.conftest import StripeHarness
from tests.payments.test_auto_reload import off_session_charges, save_card

START = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
PERIOD_END = datetime(2026, 2, 10, 9, 30, tzinfo=UTC)
CREDIT = 1_000_000  # one plan credit, in stored units
OVERAGE = """
{ viewer { organization { billingTransactions(first: 50) { edges { node {
    kind status amount { usd } credits { credits } failureReason } } } } } }
"""


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


async def starter_past_its_allocation(paying: StripeHarness, card: str | None) -> OrgRef:
    """An 8bit-ai Starter organization (with ``card`` saved, if any) that used 500 plan
    credits more than it had when its period closes: $10 owed at $0.02 a credit."""
    app = paying.app
    org = await create_organization(app.runtime, slug="agents", rate_card="8bit-ai")
    assert (
        await app.runtime.subscriptions.change(
            org.id, "8bit-starter", actor="test", by_operator=True
        )
    ).immediate
    if card is not None:
        await save_card(paying, org, card, {"packId": "8bit-starter:500"})
    balance, _ = await app.balance(org)
    await adjust(app.runtime, org.id, -(balance + 500 * CREDIT), "usage", actor="test")
    return org


async def close_period(paying: StripeHarness, clock: FrozenClock, org: OrgRef) -> dict[str, Any]:
    """Run the periodic jobs at the period's end; the overage transaction they leave."""
    clock.at = PERIOD_END
    await maintenance.run_once(paying.app.runtime)
    await maintenance.run_once(paying.app.runtime)  # a second run charges nothing more
    assert await paying.app.books() == []
    data = await paying.app.graphql(OVERAGE, paying.app.token(org, Role.OWNER))
    edges = data["data"]["viewer"]["organization"]["billingTransactions"]["edges"]
    (overage,) = [e["node"] for e in edges if e["node"]["kind"] == "OVERAGE"]
    return overage


@pytest.mark.parametrize(
    ("card", "status", "reason"),
    [
        ("pm_card_visa", "SUCCEEDED", None),
        ("pm_card_chargeDeclined", "FAILED", "Your card was declined."),
    ],
)
async def test_overage_is_charged_to_the_saved_card(
    paying: StripeHarness, clock: FrozenClock, card: str, status: str, reason: str | None
) -> None:
    org = await starter_past_its_allocation(paying, card)
    overage = await close_period(paying, clock, org)
    assert overage == {
        "kind": "OVERAGE",
        "status": status,
        "amount": {"usd": "10.000000"},
        "credits": {"credits": str(500 * CREDIT)},
        "failureReason": reason,
    }
    (charge,) = off_session_charges(paying)
    assert (charge.params["amount"], charge.params["payment_method"]) == ("1000", card)
    # The debt was settled in credits when the period closed, whatever the card did.
    assert (await paying.app.balance(org))[0] == 20_000 * CREDIT
    # The charge is in the audit log, once, whatever the card did.
    owner = paying.app.token(org, Role.OWNER)
    logged = nodes(await audit(paying.app, owner, filter={"action": "overage.charge"}))
    assert [(e["actor"], e["before"], e["after"]) for e in logged] == [
        (
            "overage-billing",
            {"status": "pending"},
            {"status": status.lower(), "amount": 10_000_000, "failure_reason": reason},
        )
    ]


async def test_without_a_card_the_overage_stays_owed(
    paying: StripeHarness, clock: FrozenClock
) -> None:
    org = await starter_past_its_allocation(paying, None)
    overage = await close_period(paying, clock, org)
    assert (overage["status"], overage["amount"]) == ("PENDING", {"usd": "10.000000"})
    assert overage["failureReason"] is None
    assert off_session_charges(paying) == []
    owner = paying.app.token(org, Role.OWNER)
    assert nodes(await audit(paying.app, owner, filter={"action": "overage.charge"})) == []

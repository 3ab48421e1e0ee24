"""Plan changes in the audit log, over GraphQL: an upgrade at once, a downgrade scheduled,
canceled and taking effect at the period's end, and Stripe beginning and ending a paid
plan, each with who made it and when it applies; a refused change logs nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import maintenance
from app.auth import Role
from app.clock import FrozenClock
from app.ids import to_global_id
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, running_app
from tests.graphql.test_audit import audit, nodes
from tests.payments import stripe_events
from tests.payments.conftest import StripeHarness
from tests.payments.conftest import stripe_standin as stripe_standin  # the fixture
from tests.plans.test_stripe_subscriptions import (
    PERIOD,
    START,
    _bytez,
    _change,
    _send,
    _subscribe,
)
from tests.plans.test_stripe_subscriptions import paying as paying  # the fixture

CHANGE = """
mutation($code: String!) {
  changePlan(input: {planCode: $code}) { effectiveAt checkoutUrl userErrors { code } }
}
"""


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Harness]:
    async with running_app(settings, clock) as harness:
        yield harness


async def _plan_changes(h: Harness, org: OrgRef) -> list[tuple[Any, ...]]:
    """The organization's plan changes, oldest first: (actor, before, after)."""
    page = await audit(h, h.token(org, Role.OWNER), filter={"action": "plan.change"})
    events = nodes(page)[::-1]
    organization = to_global_id("Organization", org.id)
    assert {(e["target"], e["targetId"]) for e in events} <= {
        (f"organization:{org.id}", organization)
    }
    return [(e["actor"], e["before"], e["after"]) for e in events]


def _values(plan: str | None, next_plan: str | None = None) -> dict[str, str | None]:
    return {"plan": plan, "next_plan": next_plan}


def _at(effective: datetime) -> dict[str, str]:
    return {"effective_at": effective.isoformat()}


async def test_plan_changes_are_logged_with_when_they_apply(
    app: Harness, clock: FrozenClock
) -> None:
    org = await app.org("spike")
    owner, admin = app.token(org, Role.OWNER), app.token(org, Role.ADMIN)

    async def change(headers: dict[str, str], code: str) -> None:
        data = await app.graphql(CHANGE, headers, code=code)
        assert data["data"]["changePlan"]["userErrors"] == [], data

    await change(owner, "bytespike-free")  # from no plan: at once
    clock.advance(timedelta(days=3))
    await change(owner, "bytespike-pro")  # costs more: at once
    await change(admin, "bytespike-free")  # costs less: at the period's end
    await change(admin, "bytespike-free")  # the same again: nothing changes
    await change(owner, "bytespike-pro")  # staying after all: the downgrade is canceled
    await change(owner, "bytespike-free")
    upgraded, period_end = START + timedelta(days=3), datetime(2026, 2, 13, 9, 30, tzinfo=UTC)
    clock.at = period_end  # Pro's period ends
    assert (await maintenance.run_once(app.runtime)).periods_started == 1

    assert await _plan_changes(app, org) == [
        ("owner@test", _values(None), _values("bytespike-free") | _at(START)),
        (
            "owner@test",
            _values("bytespike-free"),
            _values("bytespike-pro") | _at(upgraded),
        ),
        (
            "admin@test",
            _values("bytespike-pro"),
            _values("bytespike-pro", "bytespike-free") | _at(period_end),
        ),
        (
            "owner@test",
            _values("bytespike-pro", "bytespike-free"),
            _values("bytespike-pro") | _at(upgraded),
        ),
        (
            "owner@test",
            _values("bytespike-pro"),
            _values("bytespike-pro", "bytespike-free") | _at(period_end),
        ),
        (
            "system",
            _values("bytespike-pro", "bytespike-free"),
            _values("bytespike-free") | _at(period_end),
        ),
    ]
    # A renewal of the same plan is no change.
    clock.at = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
    assert (await maintenance.run_once(app.runtime)).periods_started == 1
    assert len(await _plan_changes(app, org)) == 6


async def test_refused_plan_changes_log_nothing(app: Harness) -> None:
    org = await app.org("acme")
    for code, role in [
        ("nope", Role.OWNER),
        ("8bit-pro", Role.OWNER),  # by contract, and another unit
        ("bytespike-enterprise", Role.ADMIN),  # by contract
        ("bytez-free", Role.MEMBER),
    ]:
        data = await app.graphql(CHANGE, app.token(org, role), code=code)
        assert data["data"]["changePlan"]["userErrors"] != [], code
    assert await _plan_changes(app, org) == []


async def test_stripe_begins_and_ends_paid_plans_in_the_log(
    paying: StripeHarness, clock: FrozenClock
) -> None:
    h = paying
    org = await _bytez(h, clock)  # on Bytez Free since a week ago
    assert len(await _plan_changes(h.app, org)) == 1
    # Choosing the paid plan only opens a Checkout page: nothing changes, nothing is logged.
    _, first, invoice = await _subscribe(h, org, "bytez-payg")
    assert len(await _plan_changes(h.app, org)) == 1
    assert await _send(h, stripe_events.invoice_paid(invoice)) == "activated"
    assert (await _change(h, org, "bytez-free"))["userErrors"] == []  # at the period's end
    clock.at = START + PERIOD
    ended = h.standin.end_subscription(first["id"])
    assert await _send(h, stripe_events.customer_subscription_deleted(ended)) == (
        "ended; next plan begun"
    )
    # Paid again later, then canceled in Stripe's dashboard: no plan.
    again = START + PERIOD + timedelta(days=1)
    clock.at = again
    _, second, invoice = await _subscribe(h, org, "bytez-payg", at=again)
    assert await _send(h, stripe_events.invoice_paid(invoice)) == "activated"
    clock.advance(timedelta(days=2))
    ended = h.standin.end_subscription(second["id"])
    assert await _send(h, stripe_events.customer_subscription_deleted(ended)) == "ended"

    assert (await _plan_changes(h.app, org))[1:] == [
        ("stripe", _values("bytez-free"), _values("bytez-payg") | _at(START)),
        (
            "owner@test",
            _values("bytez-payg"),
            _values("bytez-payg", "bytez-free") | _at(START + PERIOD),
        ),
        (
            "stripe",
            _values("bytez-payg", "bytez-free"),
            _values("bytez-free") | _at(START + PERIOD),
        ),
        ("stripe", _values("bytez-free"), _values("bytez-payg") | _at(again)),
        ("stripe", _values("bytez-payg"), _values(None) | _at(again + timedelta(days=2))),
    ]

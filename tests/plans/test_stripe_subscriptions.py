"""Paid plans through Stripe: Checkout in subscription mode, then Stripe's invoices.

The real library talks to the stand-in; Stripe's events arrive signed, duplicated and in
either order. A paid plan changes nothing until its first invoice is paid, then begins
once with its allocation; each renewal invoice begins the next period once, and the
periodic renewals never do; a subscription Stripe ends takes the plan with it. An
invoice for the wrong amount, or a forged event, changes nothing. ``creditgraph verify``
passes after each scenario.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app import maintenance
from app.auth import Role
from app.clock import FrozenClock
from app.ledger.state import plan_subs_t
from app.operations import adjust
from app.orgs.service import OrgRef
from app.payments.stripe_provider import subscription_invoice
from app.settings import Settings
from tests.conftest import running_app
from tests.payments import stripe_events
from tests.payments.conftest import StripeHarness, stripe_settings
from tests.payments.conftest import stripe_standin as stripe_standin  # the fixture
from tests.payments.stripe_standin import CHECKOUT_PAGE, StripeStandin

START = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
PERIOD = timedelta(weeks=4)  # Bytez Pay-as-you-go's
USD = 1_000_000

CHANGE = """
mutation ($code: String!) {
  changePlan(input: {planCode: $code}) {
    effectiveAt checkoutUrl
    subscription { plan { code } currentPeriodStart currentPeriodEnd nextPlan { code } }
    userErrors { field code message }
  }
}
"""
OVERVIEW = """
{ viewer { organization {
    subscription { plan { code } currentPeriodStart currentPeriodEnd nextPlan { code }
                   allocationRemaining { credits } }
    billingTransactions(first: 50) { edges { node { kind amount { credits } } } }
} } }
"""


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def paying(
    settings: Settings, clock: FrozenClock, stripe_standin: StripeStandin
) -> AsyncIterator[StripeHarness]:
    """creditgraph with Stripe, on a clock the test moves (Stripe's periods begin at
    ``START`` too: the stand-in's payer subscribes then)."""
    async with running_app(stripe_settings(settings, stripe_standin), clock) as app:
        yield StripeHarness(app, stripe_standin)


async def _change(h: StripeHarness, org: OrgRef, code: str) -> dict[str, Any]:
    data = await h.app.graphql(CHANGE, h.app.token(org, Role.OWNER), code=code)
    assert "errors" not in data, data
    payload: dict[str, Any] = data["data"]["changePlan"]
    return payload


async def _overview(h: StripeHarness, org: OrgRef) -> dict[str, Any]:
    data = await h.app.graphql(OVERVIEW, h.app.token(org, Role.OWNER))
    assert "errors" not in data, data
    organization: dict[str, Any] = data["data"]["viewer"]["organization"]
    return organization


async def _plan(h: StripeHarness, org: OrgRef) -> str | None:
    subscription = (await _overview(h, org))["subscription"]
    return None if subscription is None else str(subscription["plan"]["code"])


async def _kinds(h: StripeHarness, org: OrgRef) -> list[tuple[str, int]]:
    """The organization's billing transactions, oldest first: (kind, amount)."""
    edges = (await _overview(h, org))["billingTransactions"]["edges"]
    rows = [(e["node"]["kind"], int(e["node"]["amount"]["credits"])) for e in edges]
    return rows[::-1]


async def _send(h: StripeHarness, evt: dict[str, Any]) -> str:
    response = await h.webhook(evt)
    assert response.status_code == 200, response.text
    outcome: str = response.json()["outcome"]
    return outcome


async def _bytez(h: StripeHarness, clock: FrozenClock) -> OrgRef:
    """An organization on Bytez Free ($1 every 4 weeks) since a week before ``START``;
    the clock is at ``START``."""
    org = await h.app.org("bytez")
    clock.at = START - timedelta(weeks=1)
    await h.app.runtime.subscriptions.change(org.id, "bytez-free", actor="test")
    clock.at = START
    assert await h.app.balance(org) == (USD, 0)
    return org


async def _subscribe(
    h: StripeHarness, org: OrgRef, code: str, *, at: datetime = START
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Choose ``code`` and pay its Checkout page at ``at``: the session, subscription
    and first invoice as Stripe now has them (no event sent yet)."""
    payload = await _change(h, org, code)
    assert payload["userErrors"] == [], payload
    session_id = payload["checkoutUrl"].removeprefix(CHECKOUT_PAGE)
    return h.standin.pay_subscription_session(session_id, at=int(at.timestamp()))


async def _activate(h: StripeHarness, org: OrgRef, code: str) -> dict[str, Any]:
    """Subscribe to ``code`` and deliver its first invoice's event: the subscription."""
    _, subscription, invoice = await _subscribe(h, org, code)
    assert await _send(h, stripe_events.invoice_paid(invoice)) == "activated"
    assert await _plan(h, org) == code
    return subscription


async def _stripe_id(h: StripeHarness, org: OrgRef) -> str | None:
    async with h.app.runtime.db.reader.connect() as conn:
        found: str | None = await conn.scalar(
            select(plan_subs_t.c.stripe_subscription_id).where(
                plan_subs_t.c.organization_id == org.id
            )
        )
    return found


async def test_a_paid_plan_returns_a_checkout_page_and_changes_nothing_until_paid(
    paying: StripeHarness, clock: FrozenClock
) -> None:
    h = paying
    org = await _bytez(h, clock)
    payload = await _change(h, org, "bytez-payg")
    assert payload["userErrors"] == []
    assert payload["checkoutUrl"].startswith(CHECKOUT_PAGE)
    assert payload["effectiveAt"] is None
    assert payload["subscription"]["plan"]["code"] == "bytez-free"  # still, until paid
    (customer,) = h.standin.objects_of("customer")
    (create,) = [r for r in h.standin.requests if r.path == "/v1/checkout/sessions"]
    assert create.params["mode"] == "subscription"
    assert create.params["customer"] == customer["id"]
    assert create.params["line_items"] == [
        {
            "price_data": {
                "currency": "usd",
                "unit_amount": "500",
                "recurring": {"interval": "week", "interval_count": "4"},
                "product_data": {"name": "Bytez Pay-as-you-go"},
            },
            "quantity": "1",
        }
    ]
    metadata = {"creditgraph_organization_id": str(org.id), "creditgraph_plan_code": "bytez-payg"}
    assert create.params["subscription_data"] == {"metadata": metadata}
    assert create.params["metadata"] == metadata
    assert create.params["success_url"].endswith("?plan=bytez-payg")
    assert create.idempotency_key.startswith(f"creditgraph-plan-{org.id}-bytez-payg-")
    assert "payment_intent_data" not in create.params

    # Asked again, the same page: one customer, one session.
    again = await _change(h, org, "bytez-payg")
    assert again["checkoutUrl"] == payload["checkoutUrl"]
    assert len(h.standin.objects_of("customer")) == 1
    assert len(h.standin.objects_of("checkout.session")) == 1

    # The payer walks away: the page expires, and that changes nothing either.
    session_id = payload["checkoutUrl"].removeprefix(CHECKOUT_PAGE)
    expired = h.standin.expire_checkout_session(session_id)
    assert await _send(h, stripe_events.event("checkout.session.expired", expired)) == "ignored"
    assert await _plan(h, org) == "bytez-free"
    assert await h.app.balance(org) == (USD, 0)
    assert await h.app.books() == []


@pytest.mark.parametrize("first", ["session", "invoice"])
async def test_checkout_and_first_invoice_activate_the_plan_once_in_either_order(
    paying: StripeHarness, clock: FrozenClock, first: str
) -> None:
    h = paying
    org = await _bytez(h, clock)
    session, subscription, invoice = await _subscribe(h, org, "bytez-payg")
    completed = stripe_events.event("checkout.session.completed", session)
    paid = stripe_events.invoice_paid(invoice)
    events = [completed, paid] if first == "session" else [paid, completed]
    outcomes = [await _send(h, evt) for evt in events + events]
    assert outcomes == ["activated", "already granted", "duplicate", "duplicate"]
    # The same invoice in another event (Stripe may send several): granted already.
    assert await _send(h, stripe_events.invoice_paid(invoice)) == "already granted"

    view = await _overview(h, org)
    assert view["subscription"] == {
        "plan": {"code": "bytez-payg"},
        "currentPeriodStart": START.isoformat(),
        "currentPeriodEnd": (START + PERIOD).isoformat(),
        "nextPlan": None,
        "allocationRemaining": {"credits": str(5 * USD)},
    }
    # Free's dollar expired with its period, closed early; the $5 allocation came once.
    assert await h.app.balance(org) == (5 * USD, 0)
    assert await _kinds(h, org) == [
        ("PLAN_ALLOCATION", USD),
        ("EXPIRY", -USD),
        ("PLAN_ALLOCATION", 5 * USD),
    ]
    assert await _stripe_id(h, org) == subscription["id"]
    assert await h.app.books() == []


async def test_renewals_come_from_stripe_invoices_never_from_the_periodic_jobs(
    paying: StripeHarness, clock: FrozenClock
) -> None:
    h = paying
    org = await _bytez(h, clock)
    subscription = await _activate(h, org, "bytez-payg")
    await adjust(h.app.runtime, org.id, -2 * USD, "spend", actor="test")

    # The period ends; Stripe has not billed the next one yet. The jobs expire what is
    # left of the allocation but begin no period: Stripe's invoice will.
    clock.at = START + PERIOD + timedelta(minutes=5)
    for _ in range(2):
        assert (await maintenance.run_once(h.app.runtime)).periods_started == 0
    assert await h.app.balance(org) == (0, 0)
    assert (await _overview(h, org))["subscription"]["currentPeriodStart"] == START.isoformat()

    renewal = h.standin.renew_subscription(subscription["id"])
    assert await _send(h, stripe_events.invoice_paid(renewal)) == "renewed"
    assert await _send(h, stripe_events.invoice_paid(renewal)) == "already granted"
    view = await _overview(h, org)
    assert view["subscription"]["currentPeriodStart"] == (START + PERIOD).isoformat()
    assert view["subscription"]["currentPeriodEnd"] == (START + 2 * PERIOD).isoformat()
    assert await h.app.balance(org) == (5 * USD, 0)

    # The next renewal's invoice comes before the jobs run: the period closes as the
    # plan says (no rollover on Pay-as-you-go: the unused $4 expires) and the next begins.
    await adjust(h.app.runtime, org.id, -USD, "spend", actor="test")
    clock.at = START + 2 * PERIOD + timedelta(minutes=5)
    renewal = h.standin.renew_subscription(subscription["id"])
    assert await _send(h, stripe_events.invoice_paid(renewal)) == "renewed"
    assert await h.app.balance(org) == (5 * USD, 0)
    assert (await maintenance.run_once(h.app.runtime)).periods_started == 0
    assert await h.app.balance(org) == (5 * USD, 0)
    allocations = [k for k in await _kinds(h, org) if k[0] == "PLAN_ALLOCATION"]
    assert allocations == [("PLAN_ALLOCATION", USD)] + [("PLAN_ALLOCATION", 5 * USD)] * 3
    assert await h.app.books() == []


async def test_an_invoice_not_for_the_plans_price_or_forged_grants_nothing(
    paying: StripeHarness, clock: FrozenClock
) -> None:
    h = paying
    org = await _bytez(h, clock)
    _, subscription, invoice = await _subscribe(h, org, "bytez-payg")
    wrong = [
        invoice | {"amount_paid": 400},  # a coupon, or a price changed at Stripe
        invoice | {"currency": "eur"},
    ]
    for forged in wrong:
        assert await _send(h, stripe_events.invoice_paid(forged)) == "amount mismatch"
    unknown = stripe_events.invoice(
        subscription_id=subscription["id"],
        amount_paid=500,
        period_start=int(START.timestamp()),
        period_end=int((START + PERIOD).timestamp()),
        billing_reason="subscription_create",
        organization_id=org.id,
        plan_code="bytez-platinum",
    )
    assert await _send(h, stripe_events.invoice_paid(unknown)) == "unknown subscription"
    # A proration or a manual invoice of the subscription pays for no period.
    manual = invoice | {"billing_reason": "manual"}
    assert await _send(h, stripe_events.invoice_paid(manual)) == "ignored"
    # Signed with another secret: refused, recorded nowhere.
    response = await h.webhook(stripe_events.invoice_paid(invoice), secret="whsec_forged")
    assert response.status_code == 400
    assert await _plan(h, org) == "bytez-free"
    assert await h.app.balance(org) == (USD, 0)
    assert await h.app.books() == []


async def test_a_subscription_stripe_ends_takes_the_plan_with_it(
    paying: StripeHarness, clock: FrozenClock
) -> None:
    h = paying
    org = await _bytez(h, clock)
    subscription = await _activate(h, org, "bytez-payg")
    clock.at = START + timedelta(days=10)
    ended = h.standin.end_subscription(subscription["id"])  # canceled in Stripe's dashboard
    assert await _send(h, stripe_events.customer_subscription_deleted(ended)) == "ended"
    assert await _send(h, stripe_events.customer_subscription_deleted(ended)) == (
        "not the current subscription"
    )
    assert await _plan(h, org) is None
    # The period was paid for: its allocation stays until the period's end.
    assert await h.app.balance(org) == (5 * USD, 0)
    clock.at = START + PERIOD
    assert (await maintenance.run_once(h.app.runtime)).periods_started == 0
    assert await h.app.balance(org) == (0, 0)
    # A late renewal of the ended subscription begins nothing.
    late = stripe_events.invoice(
        subscription_id=subscription["id"],
        amount_paid=500,
        period_start=int((START + PERIOD).timestamp()),
        period_end=int((START + 2 * PERIOD).timestamp()),
        organization_id=org.id,
        plan_code="bytez-payg",
    )
    assert await _send(h, stripe_events.invoice_paid(late)) == "subscription ended"
    assert await h.app.balance(org) == (0, 0)

    # Choosing a plan again later starts it afresh (a free one at once).
    clock.at = START + PERIOD + timedelta(days=1)
    assert (await _change(h, org, "bytez-free"))["checkoutUrl"] is None
    assert await _plan(h, org) == "bytez-free"
    assert await h.app.balance(org) == (USD, 0)
    assert await h.app.books() == []


async def test_a_downgrade_lets_the_stripe_subscription_run_to_its_periods_end(
    paying: StripeHarness, clock: FrozenClock
) -> None:
    h = paying
    org = await _bytez(h, clock)
    subscription = await _activate(h, org, "bytez-payg")
    sub_id = subscription["id"]
    path = f"/v1/subscriptions/{sub_id}"

    downgraded = await _change(h, org, "bytez-free")
    assert downgraded["checkoutUrl"] is None
    assert downgraded["effectiveAt"] == (START + PERIOD).isoformat()
    assert downgraded["subscription"]["nextPlan"] == {"code": "bytez-free"}
    assert h.standin.objects[sub_id]["cancel_at_period_end"] is True
    updated = stripe_events.customer_subscription_updated(
        h.standin.objects[sub_id], {"cancel_at_period_end": False}
    )
    assert await _send(h, updated) == "ends at the period's end"

    # Staying after all: the subscription renews again.
    stayed = await _change(h, org, "bytez-payg")
    assert stayed["subscription"]["nextPlan"] is None
    assert h.standin.objects[sub_id]["cancel_at_period_end"] is False
    await _change(h, org, "bytez-free")
    updates = [r.params for r in h.standin.requests if r.path == path and r.method == "POST"]
    assert updates == [{"cancel_at_period_end": v} for v in ("true", "false", "true")]

    # The periodic jobs leave it to Stripe, which ends the subscription at the period's end.
    clock.at = START + PERIOD
    assert (await maintenance.run_once(h.app.runtime)).periods_started == 0
    ended = h.standin.end_subscription(sub_id)
    assert await _send(h, stripe_events.customer_subscription_deleted(ended)) == (
        "ended; next plan begun"
    )
    view = await _overview(h, org)
    assert view["subscription"]["plan"] == {"code": "bytez-free"}
    assert view["subscription"]["currentPeriodStart"] == (START + PERIOD).isoformat()
    assert await h.app.balance(org) == (USD, 0)
    assert await _stripe_id(h, org) is None
    # From here the periodic jobs renew it, as any plan Stripe does not bill.
    clock.at = START + 2 * PERIOD
    assert (await maintenance.run_once(h.app.runtime)).periods_started == 1
    assert await h.app.books() == []


async def test_an_upgrade_replaces_the_stripe_subscription_before_it(
    paying: StripeHarness,
) -> None:
    h = paying
    org = await h.app.org("spike")
    pro = await _activate(h, org, "bytespike-pro")
    (create,) = [r for r in h.standin.requests if r.path == "/v1/checkout/sessions"]
    price = create.params["line_items"][0]["price_data"]
    assert (price["currency"], price["unit_amount"]) == ("cny", "14900")
    assert price["recurring"] == {"interval": "month", "interval_count": "1"}
    view = await _overview(h, org)
    assert view["subscription"]["currentPeriodEnd"] == "2026-02-10T09:30:00+00:00"

    # A free plan waits for the period's end; staying on Pro cancels that again.
    free_later = await _change(h, org, "bytespike-free")
    assert free_later["subscription"]["nextPlan"] == {"code": "bytespike-free"}
    assert (await _change(h, org, "bytespike-pro"))["subscription"]["nextPlan"] is None

    max_ = await _activate(h, org, "bytespike-max")
    assert h.standin.objects[pro["id"]]["status"] == "canceled"
    ended = stripe_events.customer_subscription_deleted(h.standin.objects[pro["id"]])
    assert await _send(h, ended) == "not the current subscription"
    assert await _plan(h, org) == "bytespike-max"
    assert await _stripe_id(h, org) == max_["id"]
    # A late renewal of the replaced subscription begins nothing.
    late = stripe_events.invoice(
        subscription_id=pro["id"],
        amount_paid=14900,
        currency="cny",
        period_start=int(datetime(2026, 2, 10, 9, 30, tzinfo=UTC).timestamp()),
        period_end=int(datetime(2026, 3, 10, 9, 30, tzinfo=UTC).timestamp()),
        organization_id=org.id,
        plan_code="bytespike-pro",
    )
    assert await _send(h, stripe_events.invoice_paid(late)) == "not the current subscription"

    down = await _change(h, org, "bytespike-pro")
    assert [e["code"] for e in down["userErrors"]] == ["INVALID_INPUT"]
    assert "once the current period has ended" in down["userErrors"][0]["message"]
    assert await _plan(h, org) == "bytespike-max"
    assert h.standin.objects[max_["id"]]["cancel_at_period_end"] is False
    assert await h.app.books() == []


async def test_an_operators_change_ends_the_stripe_subscription_it_replaces(
    paying: StripeHarness, clock: FrozenClock
) -> None:
    h = paying
    org = await h.app.org("spike")
    pro = await _activate(h, org, "bytespike-pro")
    clock.at = START + timedelta(days=3)
    change = await h.app.runtime.subscriptions.change(
        org.id, "bytespike-max", actor="test", by_operator=True
    )
    assert change.immediate
    assert h.standin.objects[pro["id"]]["status"] == "canceled"
    assert await _stripe_id(h, org) is None
    ended = stripe_events.customer_subscription_deleted(h.standin.objects[pro["id"]])
    assert await _send(h, ended) == "not the current subscription"
    assert await _plan(h, org) == "bytespike-max"
    assert await h.app.books() == []


async def test_subscription_checkouts_are_not_top_ups(
    paying: StripeHarness, clock: FrozenClock
) -> None:
    h = paying
    org = await _bytez(h, clock)
    session, _, _ = await _subscribe(h, org, "bytez-payg")
    unpaid = session | {"payment_status": "unpaid"}  # a bank debit on its way
    assert await _send(h, stripe_events.event("checkout.session.completed", unpaid)) == ("pending")
    failed = stripe_events.event("checkout.session.async_payment_failed", unpaid)
    assert await _send(h, failed) == "ignored"
    assert await _plan(h, org) == "bytez-free"
    assert await _kinds(h, org) == [("PLAN_ALLOCATION", USD)]  # no top-up row either


def test_invoices_read_the_same_in_either_api_shape() -> None:
    fields: dict[str, Any] = {
        "subscription_id": "sub_1",
        "amount_paid": 500,
        "period_start": int(START.timestamp()),
        "period_end": int((START + PERIOD).timestamp()),
        "organization_id": 7,
        "plan_code": "bytez-payg",
    }
    current = stripe_events.invoice("in_1", **fields)
    legacy = stripe_events.invoice("in_1", legacy=True, **fields)
    assert "subscription" not in current
    assert "parent" not in legacy
    read = subscription_invoice(current)
    assert read is not None
    assert subscription_invoice(legacy) == read
    assert (read.subscription_id, read.organization_id, read.plan_code) == (
        "sub_1",
        7,
        "bytez-payg",
    )
    assert (read.period_start, read.period_end) == (START, START + PERIOD)
    assert subscription_invoice(current | {"lines": {"data": []}}) is None
    assert subscription_invoice({"object": "invoice", "id": "in_2"}) is None

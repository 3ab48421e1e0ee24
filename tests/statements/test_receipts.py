"""Receipts over GraphQL: one for every succeeded top-up, automatic purchase, refund and
Stripe plan invoice, numbered 1, 2, 3... per organization, with the card the payment
provider charged (the fake one's test Visa, the Stripe stand-in's charge) and Stripe Tax's
tax where Stripe gives it; none for a payment that failed or is still pending."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.auth import Role
from app.clock import Clock, FrozenClock
from app.ids import parse_global_id
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, running_app
from tests.payments import stripe_events
from tests.payments import test_overage_billing as overage
from tests.payments.conftest import StripeHarness, stripe_settings
from tests.payments.stripe_standin import CHECKOUT_PAGE, StripeStandin
from tests.payments.test_auto_reload import fake_top_up, idle, save_card, spend, update

RECEIPTS = """
query($first: Int = 50) { viewer { organization { receipts(first: $first) {
  totalCount
  pageInfo { hasNextPage endCursor }
  edges { node {
    id number kind description issuedAt pdfUrl jsonUrl
    total { amount currency } tax { amount currency }
    credits { credits usd } bonus { usd }
    paymentMethod { brand last4 }
    transaction { id kind status }
    refundOf { number }
  } }
} } } }
"""
TOP_UP = """
mutation($input: CreateTopUpInput!) {
  createTopUp(input: $input) { topUp { id status } checkoutUrl userErrors { code } }
}
"""
REFUND = """
mutation($input: RefundTopUpInput!) {
  refundTopUp(input: $input) { refund { id } userErrors { code message } }
}
"""
NODE = """
query($id: ID!) { node(id: $id) { id ... on Receipt { number } } }
"""


async def receipts(harness: Harness, org: OrgRef, role: Role = Role.VIEWER) -> list[dict[str, Any]]:
    """The organization's receipts, oldest first."""
    body = await harness.graphql(RECEIPTS, harness.token(org, role))
    assert "errors" not in body, body
    edges = body["data"]["viewer"]["organization"]["receipts"]["edges"]
    return [edge["node"] for edge in reversed(edges)]


async def refund(harness: Harness, org: OrgRef, top_up_id: str, usd: str | None) -> None:
    body = await harness.graphql(
        REFUND, harness.token(org, Role.OWNER), input={"topUpId": top_up_id, "amountUsd": usd}
    )
    assert body["data"]["refundTopUp"]["userErrors"] == [], body


def _money(amount: str, currency: str = "USD") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


async def test_fake_top_up_auto_reload_and_refund_each_get_a_numbered_receipt(
    harness: Harness,
) -> None:
    org = await harness.org("acme")
    other = await harness.org("beta")
    key = await harness.key(org)
    await fake_top_up(harness, org, "99.99")
    (paid,) = await receipts(harness, org)
    assert paid["number"] == "ACME-000001"
    assert paid["kind"] == "TOP_UP"
    assert paid["description"] == "Credits: top-up"
    assert paid["total"] == _money("99.990000")
    assert paid["tax"] is None
    assert paid["credits"] == {"credits": "99990000", "usd": "99.990000"}
    assert paid["bonus"] == {"usd": "2.999700"}  # +3% on the ladder
    assert paid["paymentMethod"] == {"brand": "visa", "last4": "4242"}
    assert paid["transaction"]["kind"] == "TOP_UP"
    assert paid["pdfUrl"] == f"/api/v1/receipts/{paid['id']}.pdf"
    assert paid["jsonUrl"] == f"/api/v1/receipts/{paid['id']}.json"

    # Auto-reload: 10 USD charged to the saved card when the balance fell under 3 USD.
    assert (await update(harness, org, enabled=True))["userErrors"] == []
    await spend(harness, org, key.id, "100.50")
    await idle(harness)
    # A refund of 10 USD of the top-up: its share of the bonus goes back too.
    await refund(harness, org, paid["transaction"]["id"], "10")
    _, reload, refunded = await receipts(harness, org)
    assert (reload["number"], reload["kind"]) == ("ACME-000002", "AUTO_RELOAD")
    assert reload["total"] == _money("10.000000")
    assert reload["credits"]["usd"] == "10.000000"
    assert reload["paymentMethod"] == {"brand": "visa", "last4": "4242"}
    assert (refunded["number"], refunded["kind"]) == ("ACME-000003", "REFUND")
    assert refunded["total"] == _money("10.000000")
    assert refunded["credits"]["usd"] == "-10.300000"
    assert refunded["refundOf"] == {"number": "ACME-000001"}
    assert refunded["paymentMethod"] == {"brand": "visa", "last4": "4242"}
    assert refunded["transaction"]["kind"] == "REFUND"

    # Numbers are the organization's own.
    await fake_top_up(harness, other, "5")
    assert [r["number"] for r in await receipts(harness, other)] == ["BETA-000001"]
    # node(id:) finds a receipt in its organization only.
    found = await harness.graphql(NODE, harness.token(org, Role.VIEWER), id=paid["id"])
    assert found["data"]["node"] == {"id": paid["id"], "number": "ACME-000001"}
    found = await harness.graphql(NODE, harness.token(org), id=paid["id"])  # the gateway
    assert found["data"]["node"] is None
    found = await harness.graphql(NODE, harness.token(other, Role.OWNER), id=paid["id"])
    assert found["data"]["node"] is None
    assert await harness.books() == []


async def test_receipts_are_for_people_and_paged_newest_first(harness: Harness) -> None:
    org = await harness.org("acme")
    for amount in ("5", "6", "7"):
        await fake_top_up(harness, org, amount)
    body = await harness.graphql(RECEIPTS, harness.token(org, Role.MEMBER), first=2)
    page = body["data"]["viewer"]["organization"]["receipts"]
    assert page["totalCount"] == 3
    assert [e["node"]["number"] for e in page["edges"]] == ["ACME-000003", "ACME-000002"]
    assert page["pageInfo"]["hasNextPage"] is True
    key = await harness.key(org)
    for headers in (harness.token(org, Role.SERVICE), {"Authorization": f"Bearer {key.secret}"}):
        body = await harness.graphql(RECEIPTS, headers)
        assert body["data"]["viewer"]["organization"]["receipts"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


async def test_stripe_receipts_show_the_card_charged(paying: StripeHarness) -> None:
    app = paying.app
    org = await app.org("acme")
    key = await app.key(org)
    # Elements: the webhook names the charge only by id; its card is looked up.
    await save_card(paying, org, "pm_card_mastercard")
    # A declined payment gets no receipt; a pending one neither.
    body = await app.graphql(TOP_UP, app.token(org, Role.OWNER), input={"amountUsd": "20"})
    assert body["data"]["createTopUp"]["topUp"]["status"] == "PENDING"
    declined = paying.standin.objects_of("payment_intent")[-1]
    failed = paying.standin.fail_payment_intent(declined["id"])
    await paying.webhook(stripe_events.event("payment_intent.payment_failed", failed))
    await app.graphql(TOP_UP, app.token(org, Role.OWNER), input={"amountUsd": "30"})
    # Auto-reload: the off-session charge's answer carries the card.
    assert (await update(app, org, enabled=True))["userErrors"] == []
    await spend(app, org, key.id, "7.50")
    await idle(app)
    paid, reload = await receipts(app, org)
    assert (paid["number"], paid["kind"]) == ("ACME-000001", "TOP_UP")
    assert paid["paymentMethod"] == {"brand": "mastercard", "last4": "4444"}
    assert (reload["number"], reload["kind"]) == ("ACME-000002", "AUTO_RELOAD")
    assert reload["paymentMethod"] == {"brand": "mastercard", "last4": "4444"}
    # The reload's own webhook, arriving after, changes nothing.
    (intent,) = [
        pi
        for pi in paying.standin.objects_of("payment_intent")
        if pi["metadata"]["creditgraph_top_up_id"]
        == str(parse_global_id(reload["transaction"]["id"])[1])
    ]
    await paying.webhook(stripe_events.event("payment_intent.succeeded", intent))
    assert len(await receipts(app, org)) == 2
    # A refund through Stripe: back to the card paid with.
    await refund(app, org, paid["transaction"]["id"], None)
    *_, refunded = await receipts(app, org)
    assert refunded["kind"] == "REFUND"
    assert refunded["total"] == _money("10.000000")
    assert refunded["paymentMethod"] == {"brand": "mastercard", "last4": "4444"}
    assert await app.books() == []


async def test_a_checkout_receipt_keeps_stripe_taxs_tax(
    settings: Settings, clock: Clock, stripe_standin: StripeStandin
) -> None:
    checkout = stripe_settings(settings, stripe_standin, top_up_flow="checkout")
    async with running_app(checkout, clock) as app:
        h = StripeHarness(app, stripe_standin)
        org = await app.org("acme")
        body = await app.graphql(TOP_UP, app.token(org, Role.OWNER), input={"amountUsd": "50"})
        session_id = body["data"]["createTopUp"]["checkoutUrl"].removeprefix(CHECKOUT_PAGE)
        paid = stripe_standin.pay_checkout_session(session_id, "pm_card_amex")
        # With Stripe Tax on (tax included in the price), the session says how much.
        paid |= {"automatic_tax": {"enabled": True}, "total_details": {"amount_tax": 833}}
        response = await h.webhook(stripe_events.event("checkout.session.completed", paid))
        assert response.json()["outcome"] == "succeeded"
        (receipt,) = await receipts(app, org)
        assert receipt["total"] == _money("50.000000")
        assert receipt["tax"] == _money("8.330000")
        assert receipt["paymentMethod"] == {"brand": "amex", "last4": "8431"}
        assert await app.books() == []


START = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


async def test_a_paid_plan_invoice_gets_a_receipt_in_its_currency(
    settings: Settings, stripe_standin: StripeStandin
) -> None:
    clock = FrozenClock(START)
    async with running_app(stripe_settings(settings, stripe_standin), clock) as app:
        h = StripeHarness(app, stripe_standin)
        org = await app.org("acme")
        body = await app.graphql(
            'mutation { changePlan(input: {planCode: "bytespike-pro"}) { checkoutUrl } }',
            app.token(org, Role.OWNER),
        )
        session_id = body["data"]["changePlan"]["checkoutUrl"].removeprefix(CHECKOUT_PAGE)
        _, subscription, invoice = stripe_standin.pay_subscription_session(
            session_id, at=int(START.timestamp())
        )
        invoice["total_taxes"] = [{"amount": 1230, "taxability_reason": "standard_rated"}]
        for _ in range(2):  # delivered twice: one receipt
            await h.webhook(stripe_events.invoice_paid(invoice))
        renewal = stripe_standin.renew_subscription(subscription["id"])
        clock.at = datetime.fromtimestamp(renewal["lines"]["data"][0]["period"]["start"], UTC)
        await h.webhook(stripe_events.invoice_paid(renewal))
        first, second = await receipts(app, org)
        assert (first["number"], first["kind"]) == ("ACME-000001", "PLAN_INVOICE")
        assert first["description"] == "ByteSpike Pro: 2026-03-05 to 2026-04-05"
        assert first["total"] == _money("149.000000", "CNY")
        assert first["tax"] == _money("12.300000", "CNY")
        assert first["transaction"] is None
        assert first["paymentMethod"] is None  # an invoice event carries no card
        assert second["description"] == "ByteSpike Pro: 2026-04-05 to 2026-05-05"
        assert second["tax"] is None
        assert await app.books() == []


async def test_an_overage_charge_gets_a_receipt(
    settings: Settings, stripe_standin: StripeStandin
) -> None:
    clock = FrozenClock(overage.START)
    async with running_app(stripe_settings(settings, stripe_standin), clock) as app:
        h = StripeHarness(app, stripe_standin)
        org = await overage.starter_past_its_allocation(h, "pm_card_visa")
        await overage.close_period(h, clock, org)
        pack, charged = await receipts(app, org)
        assert (pack["kind"], pack["total"]) == ("TOP_UP", _money("10.000000"))
        assert charged["kind"] == "OVERAGE"
        assert charged["description"] == "8bit-ai Starter: usage past the allocation"
        assert charged["total"] == _money("10.000000")
        assert charged["credits"]["usd"] == "500.000000"  # the plan credits it paid for
        assert charged["paymentMethod"] == {"brand": "visa", "last4": "4242"}

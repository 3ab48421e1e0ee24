"""Top-ups through Stripe: the real library against the stand-in, settled by signed webhooks.

Each payment must credit exactly once whatever Stripe delivers: duplicates, both the
Checkout Session's and the PaymentIntent's event, in either order; a bad signature
changes nothing; refunds claw back only the difference of the totals Stripe reports.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app import maintenance
from app.auth import Role
from app.clock import Clock, FrozenClock
from app.ledger.state import accounts_t, billing_t
from app.orgs.service import OrgRef
from app.payments.stripe_events import events_t
from app.settings import Settings
from tests.conftest import Harness, running_app, usage_event
from tests.payments import stripe_events
from tests.payments.conftest import StripeHarness, stripe_settings
from tests.payments.stripe_standin import StripeStandin

CREATE = """
mutation ($input: CreateTopUpInput!) {
  createTopUp(input: $input) {
    topUp { id status amount { credits } bonus { credits } credits { credits } failureReason }
    clientSecret checkoutUrl
    userErrors { field code message }
  }
}
"""
REFUND = """
mutation ($input: RefundTopUpInput!) {
  refundTopUp(input: $input) {
    refund { kind amount { credits } credits { credits } shortfall { credits } memo }
    topUp { refunded { credits } }
    clawedBack { credits } notClawedBack { credits }
    userErrors { field code message }
  }
}
"""
TRANSACTIONS = """
{ viewer { organization { billingTransactions(first: 20) {
  edges { node { id kind status amount { credits } credits { credits } refunded { credits }
                 failureReason settledAt } } } } } }
"""


async def _top_up(h: StripeHarness, org: OrgRef, usd: str) -> tuple[dict[str, Any], str]:
    """A started top-up and its PaymentIntent's id at the stand-in."""
    data = await h.app.graphql(CREATE, h.app.token(org, Role.OWNER), input={"amountUsd": usd})
    payload = data["data"]["createTopUp"]
    assert payload["userErrors"] == [], payload
    intents = h.standin.objects_of("payment_intent")
    return payload, intents[-1]["id"]


async def _transactions(h: Harness, org: OrgRef) -> list[dict[str, Any]]:
    data = await h.graphql(TRANSACTIONS, h.token(org, Role.OWNER))
    edges = data["data"]["viewer"]["organization"]["billingTransactions"]["edges"]
    return [edge["node"] for edge in edges]


async def _succeeded(h: StripeHarness, intent_id: str) -> dict[str, Any]:
    """The payer paid: the stand-in's PaymentIntent, and its event."""
    return stripe_events.event(
        "payment_intent.succeeded", h.standin.succeed_payment_intent(intent_id)
    )


async def test_elements_top_up_is_pending_until_its_webhook_then_credits_once(
    paying: StripeHarness,
) -> None:
    h = paying
    org = await h.app.org()
    payload, intent_id = await _top_up(h, org, "99.99")
    top_up = payload["topUp"]
    assert top_up["status"] == "PENDING"
    assert top_up["amount"]["credits"] == "99990000"
    assert top_up["bonus"]["credits"] == "2999700"  # +3% on the ladder
    assert top_up["credits"]["credits"] == "0"
    assert payload["clientSecret"].startswith(f"{intent_id}_secret_")
    assert payload["checkoutUrl"] is None
    (create,) = [r for r in h.standin.requests if r.path == "/v1/payment_intents"]
    assert create.params["amount"] == "9999"
    assert create.params["currency"] == "usd"
    assert create.params["setup_future_usage"] == "off_session"
    row_id = int(create.params["metadata"]["creditgraph_top_up_id"])
    assert create.idempotency_key == f"creditgraph-top-up-{row_id}"
    assert await h.app.balance(org) == (0, 0)

    evt = await _succeeded(h, intent_id)
    for outcome in ("succeeded", "duplicate", "duplicate"):
        response = await h.webhook(evt)
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == outcome
    # Another event about the same payment (Stripe may send several): already settled.
    again = stripe_events.event("payment_intent.succeeded", h.standin.objects[intent_id])
    assert (await h.webhook(again)).status_code == 200

    assert await h.app.balance(org) == (99_990_000 + 2_999_700, 0)
    (row,) = await _transactions(h.app, org)
    assert row["status"] == "SUCCEEDED"
    assert row["credits"]["credits"] == "102989700"
    assert row["settledAt"] is not None
    assert await h.app.books() == []


@pytest.mark.parametrize("first", ["session", "intent"])
async def test_checkout_payment_credits_once_whichever_event_comes_first(
    settings: Settings, clock: Clock, stripe_standin: StripeStandin, first: str
) -> None:
    checkout = stripe_settings(settings, stripe_standin, top_up_flow="checkout")
    async with running_app(checkout, clock) as app:
        h = StripeHarness(app, stripe_standin)
        org = await app.org()
        data = await app.graphql(CREATE, app.token(org, Role.ADMIN), input={"amountUsd": "1250"})
        payload = data["data"]["createTopUp"]
        assert payload["clientSecret"] is None
        assert payload["checkoutUrl"].startswith("https://")
        (session,) = stripe_standin.objects_of("checkout.session")
        paid = stripe_standin.pay_checkout_session(session["id"])
        intent = stripe_standin.objects[paid["payment_intent"]]
        events = {
            "session": stripe_events.event("checkout.session.completed", paid),
            "intent": stripe_events.event("payment_intent.succeeded", intent),
        }
        order = [events[first], events["intent" if first == "session" else "session"]]
        outcomes = [(await h.webhook(evt)).json()["outcome"] for evt in order]
        assert outcomes == ["succeeded", "succeeded"]  # the second finds it done
        # 1,250 USD with +11.2%: 1,390 USD of credits, once.
        assert await app.balance(org) == (1_390_000_000, 0)
        assert await app.books() == []


async def test_unpaid_checkout_waits_for_its_async_result(
    settings: Settings, clock: Clock, stripe_standin: StripeStandin
) -> None:
    checkout = stripe_settings(settings, stripe_standin, top_up_flow="checkout")
    async with running_app(checkout, clock) as app:
        h = StripeHarness(app, stripe_standin)
        org = await app.org()
        await app.graphql(CREATE, app.token(org, Role.OWNER), input={"amountUsd": "20"})
        await app.graphql(CREATE, app.token(org, Role.OWNER), input={"amountUsd": "30"})
        first, second = stripe_standin.objects_of("checkout.session")
        for session in (first, second):
            unpaid = stripe_standin.pay_checkout_session(session["id"], paid=False)
            completed = await h.webhook(stripe_events.event("checkout.session.completed", unpaid))
            assert completed.json()["outcome"] == "pending"
        assert [row["status"] for row in await _transactions(app, org)] == ["PENDING"] * 2
        ok = stripe_events.event("checkout.session.async_payment_succeeded", first)
        ok["data"]["object"]["payment_status"] = "paid"
        failed = stripe_events.event("checkout.session.async_payment_failed", second)
        assert (await h.webhook(ok)).json()["outcome"] == "succeeded"
        assert (await h.webhook(failed)).json()["outcome"] == "failed"
        rows = await _transactions(app, org)
        assert [(r["status"], r["amount"]["credits"]) for r in rows] == [
            ("FAILED", "30000000"),
            ("SUCCEEDED", "20000000"),
        ]
        assert rows[0]["failureReason"] == "the payment failed"
        assert await app.balance(org) == (20_000_000, 0)
        assert await app.books() == []


async def _stored_events(h: Harness) -> int:
    async with h.runtime.db.reader.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(events_t)) or 0)


async def test_forged_or_stale_signatures_are_400_and_change_nothing(
    paying: StripeHarness,
) -> None:
    h = paying
    org = await h.app.org()
    _, intent_id = await _top_up(h, org, "50")
    evt = await _succeeded(h, intent_id)
    forged = await h.webhook(evt, secret="whsec_someone_else")
    stale = await h.webhook(evt, timestamp=int(time.time()) - 301)
    unsigned = await h.app.http.post("/webhooks/stripe", content=stripe_events.body(evt))
    tampered_body = stripe_events.body(evt)
    signature = stripe_events.sign(tampered_body, "whsec_test_creditgraph")
    tampered = await h.app.http.post(
        "/webhooks/stripe",
        content=tampered_body.replace(b"5000", b"9000"),
        headers={"Stripe-Signature": signature},
    )
    for response in (forged, stale, unsigned, tampered):
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_webhook"
    assert await _stored_events(h.app) == 0
    assert await h.app.balance(org) == (0, 0)
    # The genuine delivery still works afterwards.
    assert (await h.webhook(evt)).json()["outcome"] == "succeeded"
    assert await h.app.balance(org) == (50_000_000, 0)


async def test_malformed_and_oversized_webhooks(paying: StripeHarness) -> None:
    h = paying
    for payload in (b"not json", b"[]", b'{"id": "evt_1"}', b'{"id": 1, "type": "x", "data": {}}'):
        signature = stripe_events.sign(payload, "whsec_test_creditgraph")
        response = await h.app.http.post(
            "/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature}
        )
        assert response.status_code == 400, payload
    huge = b"{" + b" " * (h.app.runtime.settings.max_body_bytes + 1) + b"}"
    response = await h.app.http.post("/webhooks/stripe", content=huge)
    assert response.status_code == 413
    # An event about a payment that is not ours is acknowledged and ignored.
    stranger = stripe_events.payment_intent_succeeded(amount=500)
    assert (await h.webhook(stranger)).json()["outcome"] == "unknown payment"
    assert await _stored_events(h.app) == 1


async def test_a_paid_amount_that_differs_credits_nothing(paying: StripeHarness) -> None:
    h = paying
    org = await h.app.org()
    _, intent_id = await _top_up(h, org, "20")
    intent = h.standin.succeed_payment_intent(intent_id)
    intent["amount"] = 200_000
    response = await h.webhook(stripe_events.event("payment_intent.succeeded", intent))
    assert response.json()["outcome"] == "amount mismatch"
    assert await h.app.balance(org) == (0, 0)
    assert await h.app.books() == []


async def test_a_declined_card_fails_with_its_reason_and_a_retry_can_still_succeed(
    paying: StripeHarness,
) -> None:
    h = paying
    org = await h.app.org()
    _, intent_id = await _top_up(h, org, "25")
    declined = h.standin.fail_payment_intent(intent_id, decline_code="insufficient_funds")
    response = await h.webhook(stripe_events.event("payment_intent.payment_failed", declined))
    assert response.json()["outcome"] == "failed"
    (row,) = await _transactions(h.app, org)
    assert row["status"] == "FAILED"
    assert row["failureReason"] == "Your card was declined. (insufficient_funds)"
    assert row["credits"]["credits"] == "0"
    assert await h.app.balance(org) == (0, 0)
    assert await h.app.books() == []
    # The payer tries another card on the same PaymentIntent.
    await h.webhook(await _succeeded(h, intent_id))
    (row,) = await _transactions(h.app, org)
    assert (row["status"], row["failureReason"]) == ("SUCCEEDED", None)
    assert await h.app.balance(org) == (25_000_000, 0)
    # A late copy of the failure does not undo the success.
    late = stripe_events.event("payment_intent.payment_failed", declined)
    assert (await h.webhook(late)).status_code == 200
    assert (await _transactions(h.app, org))[0]["status"] == "SUCCEEDED"
    assert await h.app.books() == []


async def _paid(h: StripeHarness, org: OrgRef, usd: str) -> str:
    """A succeeded top-up's global ID."""
    payload, intent_id = await _top_up(h, org, usd)
    await h.webhook(await _succeeded(h, intent_id))
    return str(payload["topUp"]["id"])


async def test_partial_then_full_refund_claws_back_the_unspent_credits(
    paying: StripeHarness,
) -> None:
    h = paying
    org = await h.app.org()
    top_up = await _paid(h, org, "100")  # +3%: 103 USD of credits
    admin = h.app.token(org, Role.ADMIN)
    partial = await h.app.graphql(
        REFUND, admin, input={"topUpId": top_up, "amountUsd": "40", "reason": "accident"}
    )
    result = partial["data"]["refundTopUp"]
    assert result["userErrors"] == []
    assert result["refund"]["amount"]["credits"] == "40000000"
    # 40% of the payment takes 40% of the bonus with it.
    assert result["clawedBack"]["credits"] == str(40_000_000 + 1_200_000)
    assert result["notClawedBack"]["credits"] == "0"
    assert result["refund"]["memo"] == "accident"
    assert result["topUp"]["refunded"]["credits"] == "40000000"
    assert await h.app.balance(org) == (103_000_000 - 41_200_000, 0)
    (refund_call,) = [r for r in h.standin.requests if r.path == "/v1/refunds"]
    assert refund_call.params["amount"] == "4000"
    assert refund_call.idempotency_key is not None

    # Stripe's own event for that refund, with the cumulative total: nothing more.
    (intent,) = h.standin.objects_of("payment_intent")
    charge = h.standin.objects[intent["latest_charge"]]
    await h.webhook(stripe_events.event("charge.refunded", charge))
    assert await h.app.balance(org) == (61_800_000, 0)

    # Spend some, then refund the rest: what was spent cannot come back.
    key = await h.app.key(org)
    # 10M prompt tokens of claude-sonnet-4-6 at 3 USD per million: 30 USD.
    spend = usage_event(key.id, "spend", prompt_tokens=10_000_000, completion_tokens=0)
    assert (await h.app.usage(org, spend))[0]["cost"]["credits"] == "30000000"
    balance, _ = await h.app.balance(org)
    full = await h.app.graphql(REFUND, admin, input={"topUpId": top_up})
    result = full["data"]["refundTopUp"]
    assert result["userErrors"] == []
    assert result["refund"]["amount"]["credits"] == "60000000"
    owed = 60_000_000 + 1_800_000
    assert int(result["clawedBack"]["credits"]) == balance
    assert int(result["notClawedBack"]["credits"]) == owed - balance
    assert await h.app.balance(org) == (0, 0)
    # Refunded in full: a further refund is refused before reaching Stripe.
    again = await h.app.graphql(REFUND, admin, input={"topUpId": top_up})
    assert again["data"]["refundTopUp"]["userErrors"][0]["code"] == "INVALID_AMOUNT"
    assert len([r for r in h.standin.requests if r.path == "/v1/refunds"]) == 2
    assert await h.app.books() == []


async def test_refunds_refused_before_reaching_stripe(paying: StripeHarness) -> None:
    h = paying
    org, other = await h.app.org(), await h.app.org("other")
    top_up = await _paid(h, org, "10")
    pending, _ = await _top_up(h, org, "10")
    theirs = await _paid(h, other, "10")
    admin = h.app.token(org, Role.ADMIN)
    cases = [
        (admin, {"topUpId": top_up, "amountUsd": "10.01"}, "INVALID_AMOUNT"),
        (admin, {"topUpId": top_up, "amountUsd": "1.001"}, "INVALID_AMOUNT"),
        (admin, {"topUpId": top_up, "amountUsd": "0.0000001"}, "INVALID_AMOUNT"),
        (admin, {"topUpId": top_up, "amountUsd": "-1"}, "INVALID_AMOUNT"),
        (admin, {"topUpId": top_up, "reason": "x" * 501}, "INVALID_INPUT"),
        (admin, {"topUpId": pending["topUp"]["id"]}, "INVALID_AMOUNT"),
        (admin, {"topUpId": theirs}, "NOT_FOUND"),
        (admin, {"topUpId": "QmlsbGluZ1RyYW5zYWN0aW9uOjk5OQ=="}, "NOT_FOUND"),
        (admin, {"topUpId": "not an id"}, "NOT_FOUND"),
        (h.app.token(org, Role.MEMBER), {"topUpId": top_up}, "FORBIDDEN"),
        (h.app.token(org, Role.VIEWER), {"topUpId": top_up}, "FORBIDDEN"),
    ]
    for headers, refund, code in cases:
        data = await h.app.graphql(REFUND, headers, input=refund)
        errors = data["data"]["refundTopUp"]["userErrors"]
        assert [e["code"] for e in errors] == [code], (refund, errors)
    assert [r for r in h.standin.requests if r.path == "/v1/refunds"] == []
    assert [t["refunded"]["credits"] for t in await _transactions(h.app, org)] == ["0", "0"]
    assert await h.app.books() == []


async def test_refunds_made_in_stripes_dashboard_arrive_as_cumulative_totals(
    paying: StripeHarness,
) -> None:
    h = paying
    org = await h.app.org()
    await _paid(h, org, "200")  # +3%: 206 USD
    (intent,) = h.standin.objects_of("payment_intent")

    def refunded(total_cents: int) -> dict[str, Any]:
        return stripe_events.charge_refunded(
            payment_intent_id=intent["id"], amount=20_000, amount_refunded=total_cents
        )

    assert (await h.webhook(refunded(5_000))).json()["outcome"] == "refunded"
    assert await h.app.balance(org) == (206_000_000 - 51_500_000, 0)
    # Out of order: an older total changes nothing; the full one takes the rest.
    await h.webhook(refunded(2_500))
    assert await h.app.balance(org) == (154_500_000, 0)
    await h.webhook(refunded(20_000))
    assert await h.app.balance(org) == (0, 0)
    rows = await _transactions(h.app, org)
    assert [(r["kind"], r["amount"]["credits"], r["credits"]["credits"]) for r in rows] == [
        ("REFUND", "150000000", "-154500000"),
        ("REFUND", "50000000", "-51500000"),
        ("TOP_UP", "200000000", "206000000"),
    ]
    assert rows[2]["refunded"]["credits"] == "200000000"
    assert await h.app.books() == []


async def test_payments_left_pending_are_reconciled_with_stripe(
    settings: Settings, stripe_standin: StripeStandin
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    async with running_app(stripe_settings(settings, stripe_standin), clock) as app:
        h = StripeHarness(app, stripe_standin)
        org = await app.org()
        _, paid = await _top_up(h, org, "10")
        _, declined = await _top_up(h, org, "11")
        _, abandoned = await _top_up(h, org, "12")
        stripe_standin.succeed_payment_intent(paid)
        stripe_standin.fail_payment_intent(declined)
        # Their webhooks never come. Before 5 minutes nothing is asked.
        clock.advance(timedelta(minutes=4))
        assert (await maintenance.run_once(app.runtime)).payments_reconciled == 0
        clock.advance(timedelta(minutes=2))
        assert (await maintenance.run_once(app.runtime)).payments_reconciled == 2
        rows = await _transactions(app, org)
        assert [(r["amount"]["credits"], r["status"]) for r in rows] == [
            ("12000000", "PENDING"),  # the payer has not paid: still open at Stripe
            ("11000000", "FAILED"),
            ("10000000", "SUCCEEDED"),
        ]
        assert await app.balance(org) == (10_000_000, 0)
        # A late webhook for the reconciled payment credits nothing more.
        late = stripe_events.event("payment_intent.succeeded", stripe_standin.objects[paid])
        await h.webhook(late)
        assert await app.balance(org) == (10_000_000, 0)
        assert abandoned
        assert await app.books() == []


async def test_stripe_down_when_starting_a_top_up_is_a_user_error(paying: StripeHarness) -> None:
    h = paying
    org = await h.app.org()
    h.standin.fail_next(10)
    data = await h.app.graphql(CREATE, h.app.token(org, Role.OWNER), input={"amountUsd": "10"})
    payload = data["data"]["createTopUp"]
    assert [e["code"] for e in payload["userErrors"]] == ["PAYMENT_FAILED"]
    assert payload["clientSecret"] is None
    assert await h.app.balance(org) == (0, 0)


async def test_bad_amounts_create_nothing_at_stripe(paying: StripeHarness) -> None:
    h = paying
    org = await h.app.org()
    owner = h.app.token(org, Role.OWNER)
    for amount in ["4.99", "1250.01", "10.001", "0.0000001", "-5", "0"]:
        data = await h.app.graphql(CREATE, owner, input={"amountUsd": amount})
        errors = data["data"]["createTopUp"]["userErrors"]
        assert [(e["field"], e["code"]) for e in errors] == [("amountUsd", "INVALID_AMOUNT")]
    data = await h.app.graphql(CREATE, owner, input={"amountUsd": None})
    errors = data["data"]["createTopUp"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [(None, "INVALID_INPUT")]
    # Not a decimal string at all: the Decimal scalar refuses it before any resolver.
    for amount in ["NaN", "1e3", "ten", 10, 10.5]:
        data = await h.app.graphql(CREATE, owner, input={"amountUsd": amount})
        assert data.get("data") is None, amount
        assert data["errors"], amount
    assert h.standin.requests == []
    async with h.app.runtime.db.reader.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(billing_t)) == 0


async def test_webhooks_are_404_without_stripe(harness: Harness) -> None:
    payload = stripe_events.body(stripe_events.payment_intent_succeeded(amount=500))
    signature = stripe_events.sign(payload, "whsec_test_creditgraph")
    response = await harness.http.post(
        "/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature}
    )
    assert response.status_code == 404


async def test_purchased_credits_expire_per_the_accounts_policy(
    settings: Settings, stripe_standin: StripeStandin
) -> None:
    """Bytez's policy: purchased credits (and their bonus) expire 4 weeks after purchase."""
    clock = FrozenClock(datetime.now(UTC))
    async with running_app(stripe_settings(settings, stripe_standin), clock) as app:
        h = StripeHarness(app, stripe_standin)
        org = await app.org()
        _, intent_id = await _top_up(h, org, "100")
        async with app.runtime.db.write(None) as conn:
            await conn.execute(update(accounts_t).values(purchase_expiry_days=28))
        await h.webhook(await _succeeded(h, intent_id))
        lots = await app.graphql(
            "{ viewer { organization { wallet { lots { edges { node "
            "{ source original { usd } expiresAt } } } } } } }",
            app.token(org, Role.OWNER),
        )
        edges = lots["data"]["viewer"]["organization"]["wallet"]["lots"]["edges"]
        expires = (clock.now() + timedelta(days=28)).isoformat()
        assert sorted((e["node"]["source"], e["node"]["expiresAt"]) for e in edges) == [
            ("BONUS", expires),
            ("TOP_UP", expires),
        ]
        clock.advance(timedelta(days=28))
        assert (await maintenance.run_once(app.runtime)).lots_expired == 2
        assert await app.balance(org) == (0, 0)
        rows = await _transactions(app, org)
        assert [(r["kind"], r["credits"]["credits"]) for r in rows] == [
            ("EXPIRY", "-103000000"),
            ("TOP_UP", "103000000"),
        ]
        assert await app.books() == []

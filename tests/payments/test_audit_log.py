"""The audit log of money, over GraphQL: a top-up started, credited, failed or refunded,
and auto-reload's charges, each with who did it and the values it changed; a refund
refused logs nothing."""

from __future__ import annotations

from typing import Any

from app.auth import Role
from app.ids import from_global_id
from app.orgs.service import OrgRef
from tests.conftest import Harness
from tests.graphql.test_audit import audit, nodes
from tests.payments import stripe_events
from tests.payments.conftest import StripeHarness
from tests.payments.test_auto_reload import fake_top_up, idle, reloads, save_card, spend, update
from tests.payments.test_refund_policy import paid_top_up, refund
from tests.payments.test_stripe_top_ups import CREATE, REFUND, _succeeded, _top_up


async def _story(h: Harness, org: OrgRef, top_up_id: str) -> list[tuple[Any, ...]]:
    """The log of one top-up, newest first: (action, actor, target, before, after)."""
    events = nodes(await audit(h, h.token(org, Role.OWNER), filter={"targetId": top_up_id}))
    assert {e["targetId"] for e in events} == {top_up_id}
    return [(e["action"], e["actor"], e["target"], e["before"], e["after"]) for e in events]


async def test_a_top_up_is_logged_when_started_credited_and_refunded(
    paying: StripeHarness,
) -> None:
    h = paying
    org = await h.app.org()
    admin = h.app.token(org, Role.ADMIN)
    payload, intent_id = await _top_up(h, org, "100")  # +3%: 103 USD of credits
    top_up = payload["topUp"]["id"]
    target = f"top_up:{from_global_id(top_up, 'BillingTransaction')}"
    await h.webhook(await _succeeded(h, intent_id))

    # Refused (more than was paid): nothing logged.
    logged = (await audit(h.app, admin))["totalCount"]
    over = await h.app.graphql(REFUND, admin, input={"topUpId": top_up, "amountUsd": "100.01"})
    assert [e["code"] for e in over["data"]["refundTopUp"]["userErrors"]] == ["INVALID_AMOUNT"]
    assert (await audit(h.app, admin))["totalCount"] == logged

    refunded = await h.app.graphql(
        REFUND, admin, input={"topUpId": top_up, "amountUsd": "40", "reason": "accident"}
    )
    assert refunded["data"]["refundTopUp"]["userErrors"] == []
    # Stripe's event for the same refund finds it done: it is logged once.
    (intent,) = h.standin.objects_of("payment_intent")
    charge = h.standin.objects[intent["latest_charge"]]
    assert (await h.webhook(stripe_events.event("charge.refunded", charge))).status_code == 200

    assert await _story(h.app, org, top_up) == [
        (
            "top_up.refunded",
            "admin@test",
            target,
            {"refunded": 0},
            {
                "amount": 40_000_000,
                "refunded": 40_000_000,
                "clawed_back": 41_200_000,  # with 40% of the bonus
                "shortfall": 0,
                "reason": "accident",
            },
        ),
        (
            "top_up.succeeded",
            "stripe",
            target,
            {"status": "pending"},
            {"status": "succeeded", "credits": 103_000_000},
        ),
        (
            "top_up.create",
            "owner@test",
            target,
            None,
            {"status": "pending", "amount": 100_000_000, "bonus": 3_000_000},
        ),
    ]


async def test_failed_payments_are_logged_with_their_reason(paying: StripeHarness) -> None:
    h = paying
    org = await h.app.org()
    payload, intent_id = await _top_up(h, org, "25")
    declined = h.standin.fail_payment_intent(intent_id, decline_code="insufficient_funds")
    await h.webhook(stripe_events.event("payment_intent.payment_failed", declined))
    top_up = payload["topUp"]["id"]
    target = f"top_up:{from_global_id(top_up, 'BillingTransaction')}"
    assert (await _story(h.app, org, top_up))[0] == (
        "top_up.failed",
        "stripe",
        target,
        {"status": "pending"},
        {"status": "failed", "reason": "Your card was declined. (insufficient_funds)"},
    )

    # Stripe refuses to start a payment (the first try and the library's two retries).
    h.standin.fail_next(3)
    started = await h.app.graphql(CREATE, h.app.token(org, Role.OWNER), input={"amountUsd": "10"})
    refused = started["data"]["createTopUp"]
    assert [e["code"] for e in refused["userErrors"]] == ["PAYMENT_FAILED"]
    assert refused["topUp"]["status"] == "FAILED"
    top_up = refused["topUp"]["id"]
    target = f"top_up:{from_global_id(top_up, 'BillingTransaction')}"
    assert await _story(h.app, org, top_up) == [
        (
            "top_up.failed",
            "stripe",
            target,
            {"status": "pending"},
            {"status": "failed", "reason": refused["topUp"]["failureReason"]},
        ),
        (
            "top_up.create",
            "owner@test",
            target,
            None,
            {"status": "pending", "amount": 10_000_000, "bonus": 0},
        ),
    ]


async def test_a_non_refundable_plan_s_refusal_logs_nothing(harness: Harness) -> None:
    org = await harness.org("bytez")
    top_up = await paid_top_up(harness, org, "bytez-payg")
    owner = harness.token(org, Role.OWNER)
    logged = (await audit(harness, owner))["totalCount"]
    result = await refund(harness, org, top_up)
    assert [e["code"] for e in result["userErrors"]] == ["NOT_REFUNDABLE"]
    assert (await audit(harness, owner))["totalCount"] == logged
    assert (await audit(harness, owner, filter={"action": "top_up.refunded"}))["edges"] == []


async def test_auto_reload_charges_are_logged_as_auto_reload(harness: Harness) -> None:
    org = await harness.org("acme")
    key = await harness.key(org)
    await fake_top_up(harness, org, "5")
    assert (await update(harness, org, enabled=True))["userErrors"] == []
    await spend(harness, org, key.id, "3")  # 2 USD left: under the 3 USD threshold
    await idle(harness)
    (reload,) = await reloads(harness, org)
    target = f"top_up:{from_global_id(reload['id'], 'BillingTransaction')}"
    assert await _story(harness, org, reload["id"]) == [
        (
            "top_up.succeeded",
            "auto-reload",
            target,
            {"status": "pending"},
            {"status": "succeeded", "credits": 10_000_000},
        ),
        (
            "auto_reload.charge",
            "auto-reload",
            target,
            None,
            {"status": "pending", "amount": 10_000_000},
        ),
    ]
    # Filtered by action: the charge is not a top-up someone started; the owner's was,
    # and the development provider settled it at once.
    owner = harness.token(org, Role.OWNER)

    async def logged(**filter: str) -> list[tuple[str, str]]:
        page = await audit(harness, owner, filter=filter)
        return [(e["action"], e["actor"]) for e in nodes(page)]

    assert await logged(action="auto_reload.charge") == [("auto_reload.charge", "auto-reload")]
    assert await logged(action="top_up.create") == [("top_up.create", "owner@test")]
    assert await logged(actor="fake") == [("top_up.succeeded", "fake")]


async def test_a_declined_auto_reload_is_logged_as_failed(paying: StripeHarness) -> None:
    app = paying.app
    org = await app.org("acme")
    key = await app.key(org)
    await save_card(paying, org, "pm_card_chargeDeclined")
    assert (await update(app, org, enabled=True))["userErrors"] == []
    await spend(app, org, key.id, "8")  # 2 USD left
    await idle(app)
    (failed,) = await reloads(app, org)
    target = f"top_up:{from_global_id(failed['id'], 'BillingTransaction')}"
    assert await _story(app, org, failed["id"]) == [
        (
            "top_up.failed",
            "auto-reload",
            target,
            {"status": "pending"},
            {"status": "failed", "reason": "Your card was declined."},
        ),
        (
            "auto_reload.charge",
            "auto-reload",
            target,
            None,
            {"status": "pending", "amount": 10_000_000},
        ),
    ]

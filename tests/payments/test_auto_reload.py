"""Auto-reload: its settings over GraphQL (defaults, validation, roles, audit), and the
reloads a low balance starts, with the fake provider and through the Stripe stand-in:
one at a time however many debits or calls race, never past the monthly maximum, and
paused after a declined card until the settings are saved again."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from app.auth import Role
from app.clock import FrozenClock
from app.ids import parse_global_id
from app.money import parse_usd
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, running_app, usage_event
from tests.payments import stripe_events
from tests.payments.conftest import StripeHarness

AUTO_RELOAD = """
fragment AutoReloadFields on AutoReload {
  enabled threshold { usd } amount { usd } monthlyMax { usd } reloadedThisMonth { usd }
  cardSaved failureReason
}
"""

READ = (
    AUTO_RELOAD
    + """
query {
  viewer { organization {
    autoReload { ...AutoReloadFields }
    billingTransactions(first: 100) { edges { node {
      id kind status amount { usd } credits { usd } failureReason createdAt settledAt
    } } }
  } }
}
"""
)

UPDATE = (
    AUTO_RELOAD
    + """
mutation($input: UpdateAutoReloadInput!) {
  updateAutoReload(input: $input) {
    autoReload { ...AutoReloadFields }
    userErrors { field code }
  }
}
"""
)

AUDIT = """
query {
  viewer { organization {
    auditEvents(filter: {action: "auto_reload.update"}) {
      edges { node { actor target before after } }
    }
  } }
}
"""

TOP_UP = """
mutation($input: CreateTopUpInput!) {
  createTopUp(input: $input) {
    topUp { id status } clientSecret userErrors { code }
  }
}
"""

DEFAULTS = {
    "enabled": False,
    "threshold": {"usd": "3.000000"},
    "amount": {"usd": "10.000000"},
    "monthlyMax": {"usd": "100.000000"},
    "reloadedThisMonth": {"usd": "0.000000"},
    "cardSaved": False,
    "failureReason": None,
}

_requests = itertools.count()


async def read(harness: Harness, org: OrgRef) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Auto-reload as the organization sees it, and its billing transactions, oldest first."""
    body = await harness.graphql(READ, headers=harness.token(org, Role.VIEWER))
    assert "errors" not in body, body
    organization = body["data"]["viewer"]["organization"]
    edges = organization["billingTransactions"]["edges"]
    return organization["autoReload"], [edge["node"] for edge in reversed(edges)]


async def reloads(harness: Harness, org: OrgRef) -> list[dict[str, Any]]:
    return [t for t in (await read(harness, org))[1] if t["kind"] == "AUTO_RELOAD"]


async def update(
    harness: Harness, org: OrgRef, role: Role = Role.OWNER, **fields: Any
) -> dict[str, Any]:
    body = await harness.graphql(UPDATE, headers=harness.token(org, role), input=fields)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["updateAutoReload"]
    return payload


async def spend(harness: Harness, org: OrgRef, key_id: int, usd: str) -> None:
    """Bill one call of exactly ``usd``: Haiku's input tokens cost one credit each."""
    event = usage_event(
        key_id,
        f"call-{next(_requests)}",
        model="claude-haiku-4-5",
        prompt_tokens=parse_usd(usd),
        completion_tokens=0,
    )
    (result,) = await harness.usage(org, event)
    assert result["cost"]["credits"] == str(parse_usd(usd)), result


async def idle(harness: Harness) -> None:
    """Wait for the reloads that debits started in the background (bounded, not timed)."""
    payments = harness.runtime.payments
    async with asyncio.timeout(10):
        while payments._tasks:
            await asyncio.gather(*payments._tasks, return_exceptions=True)


async def fake_top_up(harness: Harness, org: OrgRef, amount: str) -> None:
    headers = harness.token(org, Role.OWNER)
    body = await harness.graphql(TOP_UP, headers=headers, input={"amountUsd": amount})
    assert body["data"]["createTopUp"]["topUp"]["status"] == "SUCCEEDED", body


# -- settings ------------------------------------------------------------------------------


async def test_settings_defaults_validation_roles_and_audit(harness: Harness) -> None:
    org = await harness.org("acme")
    assert (await read(harness, org))[0] == DEFAULTS

    for bad, field in [
        ({"thresholdUsd": "-1"}, "thresholdUsd"),
        ({"thresholdUsd": "0.0000001"}, "thresholdUsd"),
        ({"amountUsd": "10.001"}, "amountUsd"),
        ({"amountUsd": "4.99"}, "amountUsd"),
        ({"amountUsd": "1250.01"}, "amountUsd"),
        ({"amountUsd": "0"}, "amountUsd"),
        ({"amountUsd": "-10"}, "amountUsd"),
        ({"monthlyMaxUsd": "9.99"}, "monthlyMaxUsd"),  # under the default amount, 10
        ({"amountUsd": "200"}, "monthlyMaxUsd"),  # over the default monthly max, 100
        ({"amountUsd": "60", "monthlyMaxUsd": "50"}, "monthlyMaxUsd"),
        ({"monthlyMaxUsd": "-100"}, "monthlyMaxUsd"),
    ]:
        refused = await update(harness, org, enabled=True, **bad)
        assert refused["autoReload"] is None
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [
            (field, "INVALID_AMOUNT")
        ], bad
    for role in (Role.VIEWER, Role.MEMBER, Role.SERVICE):
        refused = await update(harness, org, role, enabled=True)
        assert [e["code"] for e in refused["userErrors"]] == ["FORBIDDEN"]
    assert (await read(harness, org))[0] == DEFAULTS
    audit = await harness.graphql(AUDIT, headers=harness.token(org, Role.OWNER))
    assert audit["data"]["viewer"]["organization"]["auditEvents"]["edges"] == []

    saved = await update(
        harness, org, enabled=True, thresholdUsd="0", amountUsd="25.50", monthlyMaxUsd="25.50"
    )
    assert saved["userErrors"] == []
    assert saved["autoReload"] == DEFAULTS | {
        "enabled": True,
        "threshold": {"usd": "0.000000"},
        "amount": {"usd": "25.500000"},
        "monthlyMax": {"usd": "25.500000"},
    }
    # Omitted fields stay as they are.
    again = await update(harness, org, Role.ADMIN, thresholdUsd="4")
    assert again["autoReload"] == saved["autoReload"] | {"threshold": {"usd": "4.000000"}}
    assert (await read(harness, org))[0] == again["autoReload"]

    audit = await harness.graphql(AUDIT, headers=harness.token(org, Role.OWNER))
    events = [
        edge["node"] for edge in audit["data"]["viewer"]["organization"]["auditEvents"]["edges"]
    ]
    assert events == [
        {
            "actor": "admin@test",
            "target": f"organization:{org.id}",
            "before": {"auto_reload_threshold": 0},
            "after": {"auto_reload_threshold": 4_000_000},
        },
        {
            "actor": "owner@test",
            "target": f"organization:{org.id}",
            "before": {
                "auto_reload_enabled": False,
                "auto_reload_threshold": 3_000_000,
                "auto_reload_amount": 10_000_000,
                "auto_reload_monthly_max": 100_000_000,
            },
            "after": {
                "auto_reload_enabled": True,
                "auto_reload_threshold": 0,
                "auto_reload_amount": 25_500_000,
                "auto_reload_monthly_max": 25_500_000,
            },
        },
    ]
    assert await harness.books() == []


# -- with the fake provider ------------------------------------------------------------------


async def test_low_balance_reloads_the_saved_card_once(harness: Harness) -> None:
    org = await harness.org("acme")
    key = await harness.key(org)
    await fake_top_up(harness, org, "5")
    settings, _ = await read(harness, org)
    assert settings["cardSaved"] is True

    # Off: a low balance starts nothing.
    await spend(harness, org, key.id, "2.50")
    await idle(harness)
    assert await reloads(harness, org) == []
    assert (await update(harness, org, enabled=True))["userErrors"] == []
    assert await reloads(harness, org) == []  # turning it on charges nothing by itself

    # On: 2.50 -> 2.00 is under the 3 USD threshold, so 10 USD lands once.
    await spend(harness, org, key.id, "0.50")
    await idle(harness)
    (reload,) = await reloads(harness, org)
    assert reload["status"] == "SUCCEEDED"
    assert reload["amount"] == reload["credits"] == {"usd": "10.000000"}
    assert await harness.balance(org) == (parse_usd("12"), 0)
    settings, _ = await read(harness, org)
    assert settings["reloadedThisMonth"] == {"usd": "10.000000"}

    # Above the threshold again: further debits start nothing until it is crossed.
    await spend(harness, org, key.id, "8.99")
    await idle(harness)
    assert len(await reloads(harness, org)) == 1
    await spend(harness, org, key.id, "0.02")
    await idle(harness)
    assert len(await reloads(harness, org)) == 2
    assert await harness.balance(org) == (parse_usd("12.99"), 0)

    response = await harness.http.get(
        "/api/v1/me/billing/transactions", headers=harness.token(org, Role.OWNER)
    )
    assert [(row["kind"], row["status"]) for row in response.json()["data"]] == [
        ("auto_reload", "succeeded"),
        ("auto_reload", "succeeded"),
        ("top_up", "succeeded"),
    ]
    assert await harness.books() == []


async def test_racing_debits_reload_one_at_a_time_up_to_the_monthly_max(
    settings: Settings,
) -> None:
    clock = FrozenClock(datetime(2026, 3, 31, 22, 0, tzinfo=UTC))
    async with running_app(settings, clock) as harness:
        org = await harness.org("acme")
        key = await harness.key(org)
        await fake_top_up(harness, org, "5")
        await spend(harness, org, key.id, "4")  # 1 USD left; auto-reload is still off
        saved = await update(harness, org, enabled=True, amountUsd="10", monthlyMaxUsd="20")
        assert saved["userErrors"] == []

        # 100 debits at once, each leaving the balance under the threshold.
        await asyncio.gather(*(spend(harness, org, key.id, "0.25") for _ in range(100)))
        await idle(harness)
        raced = await reloads(harness, org)
        assert 1 <= len(raced) <= 2
        # Then one at a time until the month's maximum is reached, and past it.
        for _ in range(80):
            await spend(harness, org, key.id, "0.25")
            await idle(harness)
        done = await reloads(harness, org)
        assert [(r["status"], r["amount"]["usd"]) for r in done] == [
            ("SUCCEEDED", "10.000000"),
            ("SUCCEEDED", "10.000000"),
        ]
        assert await harness.balance(org) == (parse_usd("21") - 180 * 250_000, 0)
        assert (await read(harness, org))[0]["reloadedThisMonth"] == {"usd": "20.000000"}
        assert await harness.runtime.payments.reload(org.id) is None

        # A new month (UTC) makes room again.
        clock.advance(timedelta(hours=2))
        await spend(harness, org, key.id, "0.25")
        await idle(harness)
        assert len(await reloads(harness, org)) == 3
        assert (await read(harness, org))[0]["reloadedThisMonth"] == {"usd": "10.000000"}
        assert await harness.books() == []


async def test_concurrent_reload_calls_start_exactly_one(harness: Harness) -> None:
    org = await harness.org("acme")
    key = await harness.key(org)
    await fake_top_up(harness, org, "5")
    await spend(harness, org, key.id, "4")  # auto-reload is off: nothing starts
    assert (await update(harness, org, enabled=True, monthlyMaxUsd="1000"))["userErrors"] == []

    started = await asyncio.gather(*(harness.runtime.payments.reload(org.id) for _ in range(50)))

    (top_up_id,) = [result for result in started if result is not None]
    (reload,) = await reloads(harness, org)
    assert parse_global_id(reload["id"]) == ("BillingTransaction", top_up_id)
    assert reload["status"] == "SUCCEEDED"
    assert await harness.balance(org) == (parse_usd("11"), 0)
    assert await harness.books() == []


# -- through the Stripe stand-in ---------------------------------------------------------------


async def save_card(
    paying: StripeHarness, org: OrgRef, card: str, purchase: dict[str, str] | None = None
) -> None:
    """A first top-up by Stripe Elements (10 USD, or ``purchase``: a plan-credit plan's
    pack), paid with ``card``, which Stripe's ``payment_intent.succeeded`` webhook tells
    creditgraph to keep."""
    app = paying.app
    purchase = purchase or {"amountUsd": "10"}
    body = await app.graphql(TOP_UP, headers=app.token(org, Role.OWNER), input=purchase)
    started = body["data"]["createTopUp"]
    assert started["topUp"]["status"] == "PENDING", body
    (intent,) = [
        pi
        for pi in paying.standin.objects_of("payment_intent")
        if started["clientSecret"] == pi["client_secret"]
    ]
    assert intent["metadata"]["creditgraph_top_up_id"] == str(
        parse_global_id(started["topUp"]["id"])[1]
    )
    paid = paying.standin.succeed_payment_intent(intent["id"], card)
    response = await paying.webhook(stripe_events.event("payment_intent.succeeded", paid))
    assert response.json()["outcome"] == "succeeded"
    assert (await read(app, org))[0]["cardSaved"] is True


def off_session_charges(paying: StripeHarness) -> list[Any]:
    return [
        r
        for r in paying.standin.requests
        if (r.method, r.path) == ("POST", "/v1/payment_intents")
        and r.params.get("off_session") == "true"
    ]


async def test_stripe_reloads_race_to_one_charge_each(paying: StripeHarness) -> None:
    app = paying.app
    org = await app.org("acme")
    key = await app.key(org)
    await save_card(paying, org, "pm_card_visa")
    await spend(app, org, key.id, "9")  # 1 USD left; auto-reload is still off
    assert (await update(app, org, enabled=True, monthlyMaxUsd="1000"))["userErrors"] == []

    started = await asyncio.gather(*(app.runtime.payments.reload(org.id) for _ in range(50)))
    (top_up_id,) = [result for result in started if result is not None]
    (charge,) = off_session_charges(paying)
    assert charge.idempotency_key == f"creditgraph-top-up-{top_up_id}"
    assert charge.params["payment_method"] == "pm_card_visa"
    assert charge.params["amount"] == "1000"
    assert await app.balance(org) == (parse_usd("11"), 0)

    # Debits racing each other from 11 USD down to -4: one charge per reload, each once.
    await asyncio.gather(*(spend(app, org, key.id, "0.75") for _ in range(20)))
    await idle(app)
    done = await reloads(app, org)
    assert len(done) >= 2
    assert {r["status"] for r in done} == {"SUCCEEDED"}
    charges = off_session_charges(paying)
    assert sorted(c.idempotency_key for c in charges) == sorted(
        f"creditgraph-top-up-{parse_global_id(r['id'])[1]}" for r in done
    )
    assert not any(c.replayed for c in charges)
    # Never two at once: each started after the one before had settled.
    for before, after in itertools.pairwise(done):
        assert datetime.fromisoformat(before["settledAt"]) <= datetime.fromisoformat(
            after["createdAt"]
        )
    assert await app.balance(org) == (10_000_000 * (len(done) - 1) - parse_usd("4"), 0)
    assert await app.books() == []


async def test_a_declined_card_pauses_reloads_until_saved_again(paying: StripeHarness) -> None:
    app = paying.app
    org = await app.org("acme")
    key = await app.key(org)
    await save_card(paying, org, "pm_card_chargeDeclined")
    assert (await update(app, org, enabled=True))["userErrors"] == []

    await spend(app, org, key.id, "8")  # 2 USD left
    await idle(app)
    settings, _ = await read(app, org)
    (failed,) = await reloads(app, org)
    assert failed["status"] == "FAILED"
    assert failed["credits"] == {"usd": "0.000000"}
    assert failed["failureReason"] == "Your card was declined."
    assert settings["failureReason"] == "Your card was declined."
    assert settings["enabled"] is True
    assert settings["reloadedThisMonth"] == {"usd": "0.000000"}
    assert await app.balance(org) == (parse_usd("2"), 0)
    assert len(off_session_charges(paying)) == 1

    # Paused: later debits, and a direct call, charge nothing.
    for _ in range(3):
        await spend(app, org, key.id, "0.50")
        await idle(app)
    assert await app.runtime.payments.reload(org.id) is None
    assert len(await reloads(app, org)) == 1
    assert len(off_session_charges(paying)) == 1

    # Saving the settings lifts the pause: the next debit tries the card again.
    saved = await update(app, org, enabled=True)
    assert saved["autoReload"]["failureReason"] is None
    await spend(app, org, key.id, "0.50")
    await idle(app)
    assert [r["status"] for r in await reloads(app, org)] == ["FAILED", "FAILED"]
    assert len(off_session_charges(paying)) == 2
    assert (await read(app, org))[0]["failureReason"] == "Your card was declined."
    assert await app.balance(org) == (0, 0)

    # So does a payment that saves another card: the next low balance charges that one.
    await save_card(paying, org, "pm_card_visa")
    assert (await read(app, org))[0]["failureReason"] is None
    await spend(app, org, key.id, "7.50")
    await idle(app)
    assert [r["status"] for r in await reloads(app, org)] == ["FAILED", "FAILED", "SUCCEEDED"]
    assert off_session_charges(paying)[-1].params["payment_method"] == "pm_card_visa"
    assert await app.balance(org) == (parse_usd("12.50"), 0)
    assert await app.books() == []

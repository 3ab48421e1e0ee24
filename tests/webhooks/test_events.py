"""Every event type, recorded where its change commits and only if it commits: payments,
plans and their periods, expiry, the spend cap, the low-balance alert, API keys."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app import maintenance
from app.clock import FrozenClock
from app.ids import from_global_id
from app.keys.service import create_key
from app.orgs.service import OrgRef
from app.payments.provider import Payment
from app.webhooks.tables import events_t
from tests.alerts.conftest import Receiver
from tests.conftest import Harness
from tests.payments.test_auto_reload import idle, spend, update
from tests.webhooks.conftest import START
from tests.webhooks.test_endpoints import create, mutate, signed_by

ALL_EVENTS = [
    "TOP_UP_SUCCEEDED",
    "TOP_UP_FAILED",
    "REFUND_CREATED",
    "AUTO_RELOAD_SUCCEEDED",
    "AUTO_RELOAD_FAILED",
    "BALANCE_LOW",
    "PLAN_CHANGED",
    "PERIOD_RENEWED",
    "API_KEY_CREATED",
    "API_KEY_REVOKED",
    "SPEND_CAP_REACHED",
    "CREDITS_EXPIRED",
]


async def _subscribe(app: Harness, org: OrgRef, receiver: Receiver) -> str:
    created = await create(app, org, receiver.url, ALL_EVENTS)
    assert created["userErrors"] == []
    secret: str = created["secret"]
    return secret


async def _received(app: Harness, receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """Every body sent so far, in the order the events were recorded."""
    await app.runtime.alerts.settled()
    await app.runtime.webhooks.settled()
    assert all(signed_by(secret, r) for r in receiver.requests)
    bodies = [json.loads(r.body) for r in receiver.requests]
    return sorted(bodies, key=lambda b: from_global_id(b["id"], "WebhookEvent") or 0)


def _data(bodies: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(b["type"], b["data"]) for b in bodies]


async def _top_up(app: Harness, org: OrgRef, usd: str) -> dict[str, Any]:
    payload = await mutate(app, org, "CreateTopUp", amountUsd=usd)
    top_up: dict[str, Any] = payload["topUp"]
    return top_up


def _usd(usd: str) -> dict[str, str]:
    credits = int(usd.replace(".", "")) * 10 ** (6 - len(usd.partition(".")[2]))
    whole, fraction = divmod(credits, 1_000_000)
    return {"credits": str(credits), "usd": f"{whole}.{fraction:06d}"}


async def test_payment_events(
    app: Harness, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await app.org("acme")
    key = await app.key(org)
    secret = await _subscribe(app, org, receiver)
    paid = await _top_up(app, org, "5")  # the fake provider's card is saved
    refunded = await mutate(
        app, org, "RefundTopUp", topUpId=paid["id"], amountUsd="2", reason="asked"
    )
    assert refunded["userErrors"] == []
    provider = app.runtime.payments.provider
    assert provider is not None

    async def declined(**_: Any) -> Payment:
        return Payment("failed", None, failure_reason="your card was declined")

    with monkeypatch.context() as patched:
        patched.setattr(provider, "payment", declined)
        failed = await _top_up(app, org, "20")
    assert failed["status"] == "FAILED"
    assert (await update(app, org, enabled=True))["userErrors"] == []  # under 3 USD: 10 more
    await spend(app, org, key.id, "0.5")  # 2.50 (5 - 2 refunded - 0.50): a reload starts
    await idle(app)
    with monkeypatch.context() as patched:
        patched.setattr(provider, "charge_saved", declined)
        balance, _ = await app.balance(org)
        await spend(app, org, key.id, f"{(balance - 2_000_000) / 1_000_000:.6f}")
        await idle(app)

    got = _data(await _received(app, receiver, secret))
    assert [t for t, _ in got] == [
        "top_up.succeeded",
        "refund.created",
        "top_up.failed",
        "auto_reload.succeeded",
        "auto_reload.failed",
    ]
    succeeded, refund, top_up_failed, reloaded, reload_failed = (d for _, d in got)
    assert succeeded["topUp"] == {
        "id": paid["id"],
        "status": "succeeded",
        "amountPaid": _usd("5"),
        "creditsBought": _usd("5"),
        "bonus": paid["bonus"],
        "failureReason": None,
    }
    assert refund["refund"] == {
        "topUpId": paid["id"],
        "amount": _usd("2"),
        "refundedTotal": _usd("2"),
        "clawedBack": _usd("2"),
        "shortfall": _usd("0"),
        "reason": "asked",
    }
    assert top_up_failed["topUp"]["id"] == failed["id"]
    assert top_up_failed["topUp"]["failureReason"] == "your card was declined"
    assert (reloaded["topUp"]["status"], reloaded["topUp"]["amountPaid"]) == (
        "succeeded",
        _usd("10"),
    )
    assert reload_failed["topUp"]["failureReason"] == "your card was declined"


async def test_plan_period_and_expiry_events(
    app: Harness, clock: FrozenClock, receiver: Receiver
) -> None:
    """Bytez Pay-as-you-go: 4-week periods, purchases expiring 28 days after purchase."""
    org = await app.org("bytez")
    secret = await _subscribe(app, org, receiver)
    for code in ("bytez-payg", "bytez-free", "bytez-payg"):  # begun, downgrade, canceled
        changed = await mutate(app, org, "ChangePlan", planCode=code)
        assert changed["userErrors"] == []
    await _top_up(app, org, "25")
    # Sent before the clock jumps: one still being sent would be past its lease then.
    await app.runtime.webhooks.settled()
    clock.advance(timedelta(weeks=4))
    await maintenance.run_once(app.runtime)  # the period renews, then purchases expire
    end = (START + timedelta(weeks=4)).isoformat()
    bodies = await _received(app, receiver, secret)
    assert _data(bodies) == [
        (
            "plan.changed",
            {
                "plan": "bytez-payg",
                "nextPlan": None,
                "previousPlan": None,
                "previousNextPlan": None,
                "effectiveAt": START.isoformat(),
            },
        ),
        (
            "plan.changed",
            {
                "plan": "bytez-payg",
                "nextPlan": "bytez-free",
                "previousPlan": "bytez-payg",
                "previousNextPlan": None,
                "effectiveAt": end,
            },
        ),
        (
            "plan.changed",
            {
                "plan": "bytez-payg",
                "nextPlan": None,
                "previousPlan": "bytez-payg",
                "previousNextPlan": "bytez-free",
                "effectiveAt": START.isoformat(),  # canceled at once
            },
        ),
        ("top_up.succeeded", bodies[3]["data"]),
        (
            "period.renewed",
            {
                "plan": "bytez-payg",
                "periodStart": end,
                "periodEnd": (START + timedelta(weeks=8)).isoformat(),
                "allocation": _usd("5"),
            },
        ),
        ("credits.expired", {"amount": _usd("5"), "reason": "plan_period"}),
        ("credits.expired", {"amount": _usd("25"), "reason": "lot_expiry"}),
    ]
    assert await app.books() == []


async def test_spend_cap_low_balance_and_key_events(app: Harness, receiver: Receiver) -> None:
    org = await app.org("acme", grant_usd="10")
    secret = await _subscribe(app, org, receiver)
    created = await mutate(app, org, "CreateApiKey", name="ci")
    capped = await mutate(app, org, "SetSpendCap", monthlyLimitUsd="1")
    assert capped["userErrors"] == []
    rule = await mutate(app, org, "CreateAlertRule", kind="BALANCE_BELOW", threshold="8")
    assert rule["userErrors"] == []
    key = await app.key(org)
    for usd in ("0.6", "0.5", "0.5", "1"):  # the cap is reached at 1.1; the balance 7.4 < 8
        await spend(app, org, key.id, usd)
    await app.runtime.alerts.settled()
    await mutate(app, org, "RevokeApiKey", id=created["apiKey"]["id"])

    got = _data(await _received(app, receiver, secret))
    assert [t for t, _ in got] == [
        "api_key.created",
        "api_key.created",
        "spend_cap.reached",
        "balance.low",
        "api_key.revoked",
    ]
    assert got[2][1] == {
        "month": "2026-01",
        "monthlyLimit": _usd("1"),
        "monthSpent": _usd("1.1"),
    }
    assert got[3][1] == {
        "alertRuleId": rule["alertRule"]["id"],
        "balance": "7.400000",
        "threshold": "8.000000",
    }
    assert got[4][1]["apiKey"]["id"] == created["apiKey"]["id"]


async def test_an_event_commits_with_its_change_or_not_at_all(
    app: Harness, receiver: Receiver
) -> None:
    org = await app.org("acme")
    secret = await _subscribe(app, org, receiver)
    runtime = app.runtime

    class Refused(Exception):
        pass

    async def refused_after_creating_a_key() -> None:
        async with runtime.db.write(org.id) as conn:
            await create_key(
                conn,
                runtime.vault,
                organization_id=org.id,
                name="rolled back",
                actor="t",
                now=START,
            )
            raise Refused

    with pytest.raises(Refused):
        await refused_after_creating_a_key()
    await runtime.webhooks.settled()
    assert receiver.requests == []
    async with runtime.db.reader.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(events_t)) == 0
    async with runtime.db.write(org.id) as conn:
        await create_key(
            conn, runtime.vault, organization_id=org.id, name="committed", actor="t", now=START
        )
    got = _data(await _received(app, receiver, secret))
    assert [(t, d["apiKey"]["name"]) for t, d in got] == [("api_key.created", "committed")]

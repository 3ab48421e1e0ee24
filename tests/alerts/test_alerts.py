"""Alert rules: crossings fire once and re-arm, webhooks are signed, retried and logged,
URLs are checked, roles and organizations are respected, alertFired pushes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import select

from app import maintenance
from app.auth import Principal, Role
from app.clock import FrozenClock
from app.graphql.context import Context
from app.graphql.schema import schema
from app.ids import to_global_id
from app.keys.service import Caps
from app.money import parse_usd
from app.operations import adjust, create_organization
from app.orgs.service import OrgRef
from app.payments.provider import Payment
from app.settings import Settings
from app.webhooks.signing import SIGNATURE_HEADER
from app.webhooks.tables import attempts_t, deliveries_t
from app.webhooks.urls import UnsafeUrl, check_url
from tests.alerts.conftest import Receiver
from tests.conftest import Harness, running_app
from tests.payments.test_auto_reload import fake_top_up, idle, spend, update

WAIT = 10

CREATE = """
mutation CreateAlertRule($input: CreateAlertRuleInput!) {
  createAlertRule(input: $input) {
    alertRule { id kind threshold enabled }
    webhookSecret
    userErrors { field message code }
  }
}
"""
UPDATE = """
mutation($input: UpdateAlertRuleInput!) {
  updateAlertRule(input: $input) { alertRule { id enabled threshold firing } userErrors { code } }
}
"""
ALERTS = """
query Alerts {
  viewer {
    organization {
      alertRules { id kind threshold enabled webhookUrl firing }
      alertEvents(first: 20) {
        edges { node { id rule { id kind } message value firedAt acknowledgedAt } }
      }
    }
  }
}
"""
ACK = """
mutation($input: AcknowledgeAlertEventInput!) {
  acknowledgeAlertEvent(input: $input) { alertEvent { acknowledgedAt } userErrors { code } }
}
"""
FIRED = "subscription AlertFired { alertFired { id rule { id kind } message value firedAt } }"


async def _create(harness: Harness, org: OrgRef, role: Role = Role.OWNER, **input: Any) -> Any:
    body = await harness.graphql(CREATE, harness.token(org, role), input=input)
    return body["data"]["createAlertRule"]


async def _move(harness: Harness, org: OrgRef, usd: str) -> None:
    """Change the balance by ``usd`` and wait for the alerts it triggers and the first
    attempt of their webhooks."""
    await adjust(harness.runtime, org.id, parse_usd(usd, allow_negative=True), "t", actor="test")
    await harness.runtime.alerts.settled()
    await harness.runtime.webhooks.settled()


async def _alerts(harness: Harness, org: OrgRef) -> Any:
    body = await harness.graphql(ALERTS, harness.token(org, Role.VIEWER))
    assert "errors" not in body, body
    return body["data"]["viewer"]["organization"]


async def test_a_threshold_fires_once_per_crossing_and_re_arms(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    created = await _create(harness, org, kind="BALANCE_BELOW", threshold="5")
    assert created["userErrors"] == []
    rule = created["alertRule"]
    assert (rule["kind"], rule["threshold"], rule["enabled"]) == ("BALANCE_BELOW", "5.000000", True)
    await _create(harness, org, kind="BALANCE_BELOW", threshold="1")  # several per org
    await harness.runtime.alerts.settled()
    assert (await _alerts(harness, org))["alertEvents"]["edges"] == []

    await _move(harness, org, "-6")  # 4: crosses 5 down: fires
    await _move(harness, org, "-1")  # 3: still below: nothing
    await _move(harness, org, "3")  # 6: back above: re-arms
    await _move(harness, org, "-2")  # 4: crosses down again: fires
    await _move(harness, org, "-0.5")  # 3.5: still below

    seen = await _alerts(harness, org)
    events = [edge["node"] for edge in seen["alertEvents"]["edges"]]
    assert len(events) == 2
    assert {e["rule"]["id"] for e in events} == {rule["id"]}
    assert [e["value"] for e in events] == ["4.000000", "4.000000"]
    assert events[0]["acknowledgedAt"] is None
    assert [r["firing"] for r in seen["alertRules"]] == [True, False]

    acked = await harness.graphql(
        ACK, harness.token(org, Role.ADMIN), input={"id": events[0]["id"]}
    )
    assert acked["data"]["acknowledgeAlertEvent"]["alertEvent"]["acknowledgedAt"] is not None
    # The other rule crosses too, once.
    await _move(harness, org, "-3")
    assert len((await _alerts(harness, org))["alertEvents"]["edges"]) == 3


async def test_racing_evaluations_fire_once(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    await _create(harness, org, kind="DAILY_SPEND_ABOVE", threshold="0")
    await _create(harness, org, kind="BALANCE_BELOW", threshold="5")
    await harness.runtime.alerts.settled()
    harness.runtime.writer.on_balance_changed = None  # evaluate only by hand below
    await adjust(harness.runtime, org.id, parse_usd("-6", allow_negative=True), "t", actor="t")
    fired = await asyncio.gather(*(harness.runtime.alerts.evaluate(org.id) for _ in range(10)))
    assert sum(len(f) for f in fired) == 1


def _verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does (README): recompute the HMAC of "<t>.<body>"."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


async def test_webhook_is_signed_and_delivered(harness: Harness, receiver: Receiver) -> None:
    org = await harness.org("acme", grant_usd="10")
    created = await _create(
        harness, org, kind="BALANCE_BELOW", threshold="5", webhookUrl=receiver.url
    )
    secret = created["webhookSecret"]
    assert secret.startswith("whsec_")
    await _move(harness, org, "-7")
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert _verify(secret, request.headers[SIGNATURE_HEADER.lower()], request.body)
    assert not _verify("whsec_wrong", request.headers[SIGNATURE_HEADER.lower()], request.body)
    payload = json.loads(request.body)
    assert payload["type"] == "alert.fired"
    assert payload["rule"] == {
        "id": created["alertRule"]["id"],
        "kind": "BALANCE_BELOW",
        "threshold": "5.000000",
    }
    assert payload["value"] == "3.000000"
    async with harness.runtime.db.reader.connect() as conn:
        delivery = (await conn.execute(select(deliveries_t))).one()
        attempts = (await conn.execute(select(attempts_t))).all()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert [(a.attempt, a.status_code, a.error) for a in attempts] == [(1, 200, None)]


async def test_a_failing_receiver_is_retried_with_backoff_and_logged(
    settings: Settings, receiver: Receiver
) -> None:
    """Through the webhooks' delivery mechanism, on a frozen clock: each retry waits
    for its backoff."""
    clock = FrozenClock(datetime(2026, 1, 10, 9, 30, tzinfo=UTC))
    receiver.status = 500
    async with running_app(settings, clock) as harness:
        org = await harness.org("acme", grant_usd="10")
        await _create(
            harness, org, kind="DAILY_SPEND_ABOVE", threshold="0", webhookUrl=receiver.url
        )
        await _create(harness, org, kind="BALANCE_BELOW", threshold="5", webhookUrl=receiver.url)
        await _move(harness, org, "-7")  # no usage: only the balance rule fires
        assert len(receiver.requests) == 1
        for backoff in (0.05, 0.1):  # alert_webhook_backoff_seconds, then doubled
            clock.advance(timedelta(seconds=backoff / 2))
            await harness.runtime.webhooks.settled()
            before = len(receiver.requests)
            clock.advance(timedelta(seconds=backoff / 2))
            await harness.runtime.webhooks.settled()
            assert len(receiver.requests) == before + 1
        assert len(receiver.requests) == 3  # alert_webhook_max_attempts
        async with harness.runtime.db.reader.connect() as conn:
            delivery = (await conn.execute(select(deliveries_t))).one()
            attempts = (await conn.execute(select(attempts_t).order_by(attempts_t.c.id))).all()
        assert (delivery.status, delivery.attempts) == ("failed", 3)
        assert [(a.attempt, a.status_code, a.error) for a in attempts] == [
            (1, 500, "HTTP 500"),
            (2, 500, "HTTP 500"),
            (3, 500, "HTTP 500"),
        ]
        gaps = [(b.created_at - a.created_at).total_seconds() for a, b in pairwise(attempts)]
        assert gaps == [0.05, 0.1]
        # A receiver that recovers: nothing more is sent for a delivery given up.
        receiver.status = 200
        clock.advance(timedelta(hours=1))
        assert await harness.runtime.webhooks.deliver_due() == 0


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://metadata.google.internal/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0/",
        "https:///nohost",
    ],
)
def test_unsafe_urls_are_refused_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/", "http://localhost/", "http://10.1.2.3/", "http://[::1]/"]
)
def test_private_urls_need_the_setting(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)


def test_public_urls_pass() -> None:
    check_url("https://hooks.example.com/creditgraph", allow_private=False)
    check_url("http://93.184.216.34/", allow_private=False)


async def test_validation_roles_and_scoping(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    other = await harness.org("other")
    refused = await _create(
        harness, org, kind="BALANCE_BELOW", threshold="5", webhookUrl="http://169.254.169.254/"
    )
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [
        ("webhookUrl", "INVALID_INPUT")
    ]
    for role in (Role.VIEWER, Role.MEMBER, Role.SERVICE):
        forbidden = await _create(harness, org, role, kind="BALANCE_BELOW", threshold="5")
        assert [e["code"] for e in forbidden["userErrors"]] == ["FORBIDDEN"]
    bad = [
        ({"kind": "KEY_CAP_PERCENT", "threshold": "80"}, "INVALID_INPUT"),
        ({"kind": "KEY_CAP_PERCENT", "threshold": "1001", "apiKeyId": "x"}, "INVALID_AMOUNT"),
        ({"kind": "BALANCE_BELOW"}, "INVALID_AMOUNT"),
        ({"kind": "BALANCE_BELOW", "threshold": "-1"}, "INVALID_AMOUNT"),
        ({"kind": "AUTO_RELOAD_FAILED", "threshold": "1"}, "INVALID_INPUT"),
    ]
    for input, code in bad:
        assert [e["code"] for e in (await _create(harness, org, **input))["userErrors"]] == [code]
    other_key = await harness.key(other)
    foreign = await _create(
        harness,
        org,
        kind="KEY_CAP_PERCENT",
        threshold="80",
        apiKeyId=to_global_id("ApiKey", other_key.id),
    )
    assert [e["code"] for e in foreign["userErrors"]] == ["NOT_FOUND"]

    rule = (await _create(harness, org, kind="BALANCE_BELOW", threshold="5"))["alertRule"]
    assert (await _alerts(harness, other))["alertRules"] == []
    theirs = await harness.graphql(
        UPDATE, harness.token(other), input={"id": rule["id"], "enabled": False}
    )
    assert theirs["data"]["updateAlertRule"]["userErrors"] == [{"code": "FORBIDDEN"}]
    theirs = await harness.graphql(
        UPDATE, harness.token(other, Role.ADMIN), input={"id": rule["id"], "enabled": False}
    )
    assert theirs["data"]["updateAlertRule"]["userErrors"] == [{"code": "NOT_FOUND"}]
    mine = await harness.graphql(
        UPDATE, harness.token(org, Role.ADMIN), input={"id": rule["id"], "enabled": False}
    )
    assert mine["data"]["updateAlertRule"]["alertRule"]["enabled"] is False
    await _move(harness, org, "-6")  # disabled: no event
    assert (await _alerts(harness, org))["alertEvents"]["edges"] == []

    node = await harness.graphql(
        "query($id: ID!) { node(id: $id) { ... on AlertRule { kind } } }",
        harness.token(org, Role.VIEWER),
        id=rule["id"],
    )
    assert node["data"]["node"] == {"kind": "BALANCE_BELOW"}
    audit = await harness.graphql(
        "query($id: ID!) { viewer { organization { auditEvents(filter: {targetId: $id}) "
        "{ edges { node { action targetId before after } } } } } }",
        harness.token(org, Role.OWNER),
        id=rule["id"],
    )
    logged = [e["node"] for e in audit["data"]["viewer"]["organization"]["auditEvents"]["edges"]]
    assert [e["action"] for e in logged] == ["alert_rule.update", "alert_rule.create"]
    assert {e["targetId"] for e in logged} == {rule["id"]}
    assert (logged[0]["before"]["enabled"], logged[0]["after"]["enabled"]) == (True, False)


async def test_key_cap_and_daily_spend_fire_on_usage(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    key = await harness.key(org, caps=Caps(quota=parse_usd("1"), limit_1d=parse_usd("0.5")))
    key_id = to_global_id("ApiKey", key.id)
    for threshold in ("80", "90", "100"):
        created = await _create(
            harness, org, kind="KEY_CAP_PERCENT", threshold=threshold, apiKeyId=key_id
        )
        assert created["userErrors"] == []
    await _create(harness, org, kind="DAILY_SPEND_ABOVE", threshold="0.4")
    await spend(harness, org, key.id, "0.41")  # 82% of the 1-day window; 0.41 USD today
    await harness.runtime.alerts.settled()
    events = [e["node"] for e in (await _alerts(harness, org))["alertEvents"]["edges"]]
    assert sorted((e["rule"]["kind"], e["value"]) for e in events) == [
        ("DAILY_SPEND_ABOVE", "0.410000"),
        ("KEY_CAP_PERCENT", "82.000000"),
    ]
    await spend(harness, org, key.id, "0.04")  # 90%: the 90% rule fires; the others hold
    await harness.runtime.alerts.settled()
    events = [e["node"] for e in (await _alerts(harness, org))["alertEvents"]["edges"]]
    assert len(events) == 3
    assert (events[0]["rule"]["kind"], events[0]["value"]) == ("KEY_CAP_PERCENT", "90.000000")


async def test_alert_fired_is_pushed_to_subscribers(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    rule = (await _create(harness, org, kind="BALANCE_BELOW", threshold="5"))["alertRule"]
    principal = Principal(org.id, org.slug, Role.VIEWER, "viewer@test")
    context = Context(harness.runtime, request=None, response=None, principal=principal)  # type: ignore[arg-type]
    results = await schema.subscribe(FIRED, context_value=context)
    assert not hasattr(results, "errors")
    pushed = asyncio.ensure_future(anext(results))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    await _move(harness, org, "-6")
    result = await asyncio.wait_for(pushed, WAIT)
    await results.aclose()  # type: ignore[union-attr]
    assert result.errors is None
    fired = result.data["alertFired"]
    assert fired["rule"] == {"id": rule["id"], "kind": "BALANCE_BELOW"}
    assert fired["value"] == "4.000000"
    assert "below 5.000000 USD" in fired["message"]


async def test_alert_fired_is_for_peoples_roles_only(harness: Harness) -> None:
    """Its events carry their rules, webhook URLs included: not for keys or the gateway."""
    org = await harness.org("acme")
    for role in (Role.API_KEY, Role.SERVICE):
        principal = Principal(org.id, org.slug, role, "caller@test")
        context = Context(harness.runtime, request=None, response=None, principal=principal)  # type: ignore[arg-type]
        results = await schema.subscribe(FIRED, context_value=context)
        # A stream that was allowed would wait for an event: bound it so that fails.
        first = await asyncio.wait_for(anext(results), 5)  # type: ignore[arg-type]
        await results.aclose()  # type: ignore[union-attr]
        assert first.errors is not None
        assert [e.extensions for e in first.errors] == [{"code": "FORBIDDEN"}]


async def test_a_failed_auto_reload_fires(
    harness: Harness, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await harness.org("acme")
    key = await harness.key(org)
    await fake_top_up(harness, org, "5")
    assert (await update(harness, org, enabled=True))["userErrors"] == []
    created = await _create(harness, org, kind="AUTO_RELOAD_FAILED", webhookUrl=receiver.url)
    assert created["userErrors"] == []

    async def declined(**_: Any) -> Payment:
        return Payment("failed", None, failure_reason="your card was declined")

    provider = harness.runtime.payments.provider
    assert provider is not None
    monkeypatch.setattr(provider, "charge_saved", declined)
    await spend(harness, org, key.id, "2.50")  # under the 3 USD threshold: a reload starts
    await idle(harness)
    await harness.runtime.alerts.settled()
    await harness.runtime.webhooks.settled()
    (event,) = [e["node"] for e in (await _alerts(harness, org))["alertEvents"]["edges"]]
    assert event["rule"]["kind"] == "AUTO_RELOAD_FAILED"
    assert event["message"] == "An auto-reload failed: your card was declined"
    assert event["value"] is None
    assert len(receiver.requests) == 1


async def test_api_keys_and_the_gateway_do_not_see_alert_rules(harness: Harness) -> None:
    """Rules carry webhook URLs: people's roles read them, API keys and the service not."""
    org = await harness.org("acme")
    key = await harness.key(org)
    query = "{ viewer { organization { alertRules { id } alertEvents { totalCount } } } }"
    for headers in ({"Authorization": f"Bearer {key.secret}"}, harness.token(org, Role.SERVICE)):
        data = await harness.graphql(query, headers)
        assert {e["extensions"]["code"] for e in data["errors"]} == {"FORBIDDEN"}
    data = await harness.graphql(query, harness.token(org, Role.VIEWER))
    assert data["data"]["viewer"]["organization"] == {
        "alertRules": [],
        "alertEvents": {"totalCount": 0},
    }


async def test_spend_percent_of_allocation_fires_within_a_real_plan_period(
    settings: Settings,
) -> None:
    """8bit-ai Starter grants 20,000 credits a period: spending half of them fires the
    50% rule; the next period's fresh allocation re-arms it, and it fires again there."""
    clock = FrozenClock(datetime(2026, 1, 10, 9, 30, tzinfo=UTC))
    async with running_app(settings, clock) as harness:
        org = await create_organization(harness.runtime, slug="agents", rate_card="8bit-ai")
        change = await harness.runtime.subscriptions.change(
            org.id, "8bit-starter", actor="test", by_operator=True
        )
        assert change.immediate
        created = await _create(harness, org, kind="SPEND_PERCENT_OF_ALLOCATION", threshold="50")
        assert created["userErrors"] == []
        await _move(harness, org, "-9999")  # 49.995%: below the threshold
        assert (await _alerts(harness, org))["alertEvents"]["edges"] == []
        await _move(harness, org, "-1")  # 50%
        events = [e["node"] for e in (await _alerts(harness, org))["alertEvents"]["edges"]]
        assert [(e["rule"]["kind"], e["value"]) for e in events] == [
            ("SPEND_PERCENT_OF_ALLOCATION", "50.000000")
        ]
        # The next period: a new allocation, nothing of it spent; the rule re-arms.
        subscription = (await _alerts(harness, org))["alertRules"]
        assert [r["firing"] for r in subscription] == [True]
        clock.advance(timedelta(days=40))
        assert (await maintenance.run_once(harness.runtime)).periods_started >= 1
        await _move(harness, org, "-1000")  # 5% of the new allocation
        assert [r["firing"] for r in (await _alerts(harness, org))["alertRules"]] == [False]
        await _move(harness, org, "-11000")  # 60%
        events = [e["node"] for e in (await _alerts(harness, org))["alertEvents"]["edges"]]
        assert [e["value"] for e in events] == ["60.000000", "50.000000"]
        assert await harness.books() == []

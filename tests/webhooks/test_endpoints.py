"""Event webhooks through the dashboards' operations, against a local receiver: signed
bodies for the events subscribed, retries with backoff on a frozen clock with every
attempt logged, redelivery, test events, roles and organizations, endpoint changes."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from graphql import print_ast

from app.auth import Role
from app.clock import FrozenClock
from app.ids import parse_global_id, to_global_id
from app.orgs.service import OrgRef
from tests.alerts.conftest import Received, Receiver
from tests.conftest import Harness
from tests.graphql.test_schema import OPERATIONS
from tests.payments.test_auto_reload import fake_top_up
from tests.webhooks.conftest import BACKOFF, START

SIGNATURE = "creditgraph-signature"
AUDIT = """
query($id: ID!) { viewer { organization { auditEvents(filter: {targetId: $id}) {
  edges { node { action actor before after } } } } } }
"""


def op(name: str) -> str:
    """A contract operation (frontend-examples/operations/dashboard.graphql), as sent."""
    return print_ast(OPERATIONS[name])


def signed_by(secret: str, request: Received) -> bool:
    """What a receiver does (README): recompute the HMAC of "<t>.<body>"."""
    parts = dict(item.split("=", 1) for item in request.headers[SIGNATURE].split(","))
    mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + request.body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


def signed_at(request: Received) -> int:
    return int(request.headers[SIGNATURE].split(",")[0].removeprefix("t="))


async def create(
    app: Harness, org: OrgRef, url: str, events: list[str], role: Role = Role.OWNER, **more: Any
) -> dict[str, Any]:
    body = await app.graphql(
        op("CreateWebhookEndpoint"),
        app.token(org, role),
        input={"url": url, "events": events} | more,
    )
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["createWebhookEndpoint"]
    return payload


async def mutate(
    app: Harness, org: OrgRef, operation: str, role: Role = Role.OWNER, **input: Any
) -> dict[str, Any]:
    body = await app.graphql(op(operation), app.token(org, role), input=input)
    assert "errors" not in body, body
    (payload,) = body["data"].values()
    assert isinstance(payload, dict)
    return payload


async def endpoints(app: Harness, org: OrgRef) -> list[dict[str, Any]]:
    body = await app.graphql(op("WebhookEndpoints"), app.token(org, Role.ADMIN))
    assert "errors" not in body, body
    found: list[dict[str, Any]] = body["data"]["viewer"]["organization"]["webhookEndpoints"]
    return found


def deliveries(endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in endpoint["deliveries"]["edges"]]


def codes(payload: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


async def test_subscribed_events_are_signed_and_delivered(app: Harness, receiver: Receiver) -> None:
    org, other = await app.org("acme"), await app.org("other")
    keys = await create(app, org, receiver.url, ["API_KEY_CREATED", "API_KEY_REVOKED"])
    assert keys["userErrors"] == []
    assert keys["secret"].startswith("whsec_")
    assert keys["webhookEndpoint"]["events"] == ["API_KEY_CREATED", "API_KEY_REVOKED"]
    assert keys["webhookEndpoint"]["enabled"] is True
    top_ups = await create(
        app, org, receiver.url + "?for=top-ups", ["TOP_UP_SUCCEEDED"], description="billing"
    )
    created = await mutate(app, org, "CreateApiKey", name="ci")
    key = created["apiKey"]
    await mutate(app, org, "RevokeApiKey", id=key["id"])
    await mutate(app, other, "CreateApiKey", name="theirs")  # another organization's
    await fake_top_up(app, org, "10")  # top_up.succeeded, to the other endpoint only
    await app.runtime.webhooks.settled()

    assert len(receiver.requests) == 3
    by_keys = [r for r in receiver.requests if signed_by(keys["secret"], r)]
    by_top_ups = [r for r in receiver.requests if signed_by(top_ups["secret"], r)]
    assert (len(by_keys), len(by_top_ups)) == (2, 1)
    sent = [json.loads(r.body) for r in by_keys]
    assert sorted(b["type"] for b in sent) == ["api_key.created", "api_key.revoked"]
    made = next(b for b in sent if b["type"] == "api_key.created")
    assert made["data"] == {
        "apiKey": {
            "id": key["id"],
            "name": "ci",
            "prefix": key["prefix"],
            "group": "default",
            "owner": "owner@test",
        }
    }
    assert made["organizationId"] == to_global_id("Organization", org.id)
    assert made["createdAt"] == START.isoformat()
    assert created["secret"] not in b"".join(r.body for r in receiver.requests).decode()
    request = by_top_ups[0]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "creditgraph-webhooks"
    assert signed_at(request) == int(START.timestamp())
    top_up = json.loads(request.body)
    assert top_up["type"] == "top_up.succeeded"
    assert top_up["data"]["topUp"]["status"] == "succeeded"
    assert top_up["data"]["topUp"]["amountPaid"] == {"credits": "10000000", "usd": "10.000000"}

    listed = await endpoints(app, org)
    assert [e["description"] for e in listed] == [None, "billing"]
    for endpoint, requests in zip(listed, (by_keys, by_top_ups), strict=True):
        got = deliveries(endpoint)
        assert endpoint["deliveries"]["totalCount"] == len(requests)
        assert {d["status"] for d in got} == {"DELIVERED"}
        assert {d["nextAttemptAt"] for d in got} == {None}
        for d in got:
            assert d["attempts"] == [
                {"attempt": 1, "statusCode": 200, "error": None, "at": START.isoformat()}
            ]
        assert sorted(json.dumps(d["event"]["payload"]) for d in got) == sorted(
            json.dumps(json.loads(r.body)) for r in requests
        )
    assert await endpoints(app, other) == []


async def test_a_failing_endpoint_is_retried_with_backoff_and_redelivered(
    app: Harness, clock: FrozenClock, receiver: Receiver
) -> None:
    receiver.status = 500
    org = await app.org("acme")
    created = await create(app, org, receiver.url, ["PLAN_CHANGED"])
    endpoint_id = created["webhookEndpoint"]["id"]
    sent = await mutate(app, org, "SendTestWebhookEvent", endpointId=endpoint_id)
    assert sent["userErrors"] == []
    assert sent["delivery"]["event"]["type"] == "webhook.test"
    await app.runtime.webhooks.settled()
    assert len(receiver.requests) == 1

    (delivery,) = deliveries((await endpoints(app, org))[0])
    assert (delivery["status"], delivery["attemptCount"]) == ("PENDING", 1)
    assert delivery["nextAttemptAt"] == (START + timedelta(seconds=BACKOFF)).isoformat()
    assert delivery["attempts"] == [
        {"attempt": 1, "statusCode": 500, "error": "HTTP 500", "at": START.isoformat()}
    ]
    # 30 s, then 60 s: nothing is sent a moment before each is due, one attempt at it.
    for wait in (BACKOFF, 2 * BACKOFF):
        before = len(receiver.requests)
        clock.advance(timedelta(seconds=wait - 1))
        await app.runtime.webhooks.settled()
        assert len(receiver.requests) == before
        clock.advance(timedelta(seconds=1))
        await app.runtime.webhooks.settled()
        assert len(receiver.requests) == before + 1
    (delivery,) = deliveries((await endpoints(app, org))[0])
    assert (delivery["status"], delivery["attemptCount"], delivery["nextAttemptAt"]) == (
        "FAILED",
        3,
        None,
    )
    at = [START, START + timedelta(seconds=30), START + timedelta(seconds=90)]
    assert delivery["attempts"] == [
        {"attempt": n + 1, "statusCode": 500, "error": "HTTP 500", "at": t.isoformat()}
        for n, t in enumerate(at)
    ]
    assert [signed_at(r) for r in receiver.requests] == [int(t.timestamp()) for t in at]
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    assert all(signed_by(created["secret"], r) for r in receiver.requests)
    clock.advance(timedelta(hours=1))
    assert await app.runtime.webhooks.deliver_due() == 0  # given up: nothing more

    receiver.status = 200
    again = await mutate(
        app,
        org,
        "RedeliverWebhookEvent",
        Role.ADMIN,
        eventId=delivery["event"]["id"],
        endpointId=endpoint_id,
    )
    assert again["userErrors"] == []
    assert again["delivery"]["event"]["id"] == delivery["event"]["id"]
    await app.runtime.webhooks.settled()
    assert len(receiver.requests) == 4
    assert receiver.requests[-1].body == receiver.requests[0].body  # same event id
    newest, failed = deliveries((await endpoints(app, org))[0])
    assert (newest["id"], newest["status"]) == (again["delivery"]["id"], "DELIVERED")
    assert [a["statusCode"] for a in newest["attempts"]] == [200]
    assert failed["status"] == "FAILED"

    audit = await app.graphql(AUDIT, app.token(org, Role.OWNER), id=endpoint_id)
    logged = [e["node"] for e in audit["data"]["viewer"]["organization"]["auditEvents"]["edges"]]
    assert [(e["action"], e["actor"]) for e in logged] == [
        ("webhook_endpoint.redeliver", "admin@test"),
        ("webhook_endpoint.test", "owner@test"),
        ("webhook_endpoint.create", "owner@test"),
    ]
    event_id = parse_global_id(delivery["event"]["id"])
    assert event_id is not None
    assert logged[0]["after"] == {"event_id": event_id[1]}
    assert logged[2]["after"] == {
        "url": receiver.url,
        "description": None,
        "events": ["plan.changed"],
        "enabled": True,
    }


async def test_roles_organizations_and_validation(app: Harness, receiver: Receiver) -> None:
    org, other = await app.org("acme"), await app.org("other")
    created = await create(app, org, receiver.url, ["PLAN_CHANGED"])
    endpoint_id = created["webhookEndpoint"]["id"]
    for role in (Role.VIEWER, Role.MEMBER, Role.SERVICE):
        refused = await create(app, org, receiver.url, ["PLAN_CHANGED"], role)
        assert codes(refused) == [(None, "FORBIDDEN")]
        tested = await mutate(app, org, "SendTestWebhookEvent", role, endpointId=endpoint_id)
        assert codes(tested) == [(None, "FORBIDDEN")]
        body = await app.graphql(op("WebhookEndpoints"), app.token(org, role))
        assert body["data"]["viewer"]["organization"]["webhookEndpoints"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    node = "query($id: ID!) { node(id: $id) { ... on WebhookEndpoint { url } } }"
    mine = await app.graphql(node, app.token(org, Role.ADMIN), id=endpoint_id)
    assert mine["data"]["node"] == {"url": receiver.url}
    for headers in (app.token(org, Role.VIEWER), app.token(other, Role.OWNER)):
        assert (await app.graphql(node, headers, id=endpoint_id))["data"]["node"] is None

    # Another organization's endpoint is not found, whatever is asked of it.
    assert await endpoints(app, other) == []
    for name, input in (
        ("SendTestWebhookEvent", {"endpointId": endpoint_id}),
        ("DeleteWebhookEndpoint", {"id": endpoint_id}),
        ("UpdateWebhookEndpoint", {"id": endpoint_id, "enabled": False}),
    ):
        assert [c for _, c in codes(await mutate(app, other, name, **input))] == ["NOT_FOUND"]

    bad = [
        ({"events": []}, [("events", "INVALID_INPUT")]),
        ({"description": "x" * 201}, [("description", "INVALID_INPUT")]),
        ({"url": "ftp://example.com/hook"}, [("url", "INVALID_INPUT")]),
    ]
    for change, expected in bad:
        input = {"url": receiver.url, "events": ["PLAN_CHANGED"]} | change
        assert codes(await mutate(app, org, "CreateWebhookEndpoint", **input)) == expected
    unknown = {"url": receiver.url, "events": ["NOT_AN_EVENT"]}
    body = await app.graphql(op("CreateWebhookEndpoint"), app.token(org), input=unknown)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    for name, input in (
        ("SendTestWebhookEvent", {"endpointId": "nope"}),
        ("RedeliverWebhookEvent", {"eventId": "nope", "endpointId": endpoint_id}),
        ("DeleteWebhookEndpoint", {"id": to_global_id("AlertRule", 1)}),
    ):
        assert [c for _, c in codes(await mutate(app, org, name, **input))] == ["NOT_FOUND"]

    # An event goes again only where it went: not to another endpoint.
    tested = await mutate(app, org, "SendTestWebhookEvent", endpointId=endpoint_id)
    second = await create(app, org, receiver.url, ["PLAN_CHANGED"])
    redelivered = await mutate(
        app,
        org,
        "RedeliverWebhookEvent",
        eventId=tested["delivery"]["event"]["id"],
        endpointId=second["webhookEndpoint"]["id"],
    )
    assert codes(redelivered) == [("eventId", "NOT_FOUND")]
    # At most 16 endpoints.
    for _ in range(14):
        assert (await create(app, org, receiver.url, ["PLAN_CHANGED"]))["userErrors"] == []
    assert codes(await create(app, org, receiver.url, ["PLAN_CHANGED"])) == [
        (None, "INVALID_INPUT")
    ]


async def test_endpoint_changes_disabling_and_deleting(
    app: Harness, clock: FrozenClock, receiver: Receiver
) -> None:
    org = await app.org("acme")
    created = await create(app, org, receiver.url, ["PLAN_CHANGED"])
    endpoint_id = created["webhookEndpoint"]["id"]
    updated = await mutate(
        app,
        org,
        "UpdateWebhookEndpoint",
        id=endpoint_id,
        url=receiver.url + "?v=2",
        events=["API_KEY_CREATED", "API_KEY_CREATED"],
        enabled=False,
    )
    assert updated["userErrors"] == []
    assert updated["webhookEndpoint"]["events"] == ["API_KEY_CREATED"]
    assert updated["webhookEndpoint"]["url"] == receiver.url + "?v=2"
    await mutate(app, org, "CreateApiKey", name="while disabled")
    tested = await mutate(app, org, "SendTestWebhookEvent", endpointId=endpoint_id)
    assert codes(tested) == [("endpointId", "INVALID_INPUT")]
    await app.runtime.webhooks.settled()
    assert receiver.requests == []  # a disabled endpoint is sent nothing

    await mutate(app, org, "UpdateWebhookEndpoint", id=endpoint_id, enabled=True)
    await mutate(app, org, "CreateApiKey", name="enabled again")
    await app.runtime.webhooks.settled()
    assert [json.loads(r.body)["data"]["apiKey"]["name"] for r in receiver.requests] == [
        "enabled again"
    ]

    # A delivery still pending when its endpoint is deleted ends at its next attempt.
    receiver.status = 500
    await mutate(app, org, "SendTestWebhookEvent", endpointId=endpoint_id)
    await app.runtime.webhooks.settled()
    (pending, _) = deliveries((await endpoints(app, org))[0])
    assert pending["status"] == "PENDING"
    deleted = await mutate(app, org, "DeleteWebhookEndpoint", id=endpoint_id)
    assert deleted == {"deletedWebhookEndpointId": endpoint_id, "userErrors": []}
    assert await endpoints(app, org) == []
    clock.advance(timedelta(seconds=BACKOFF))
    await app.runtime.webhooks.settled()
    assert len(receiver.requests) == 2
    after = await app.graphql(
        "query($id: ID!) { node(id: $id) { ... on WebhookDelivery "
        "{ status attempts { error } } } }",
        app.token(org, Role.ADMIN),
        id=pending["id"],
    )
    assert after["data"]["node"] == {
        "status": "FAILED",
        "attempts": [{"error": "HTTP 500"}, {"error": "the endpoint was deleted"}],
    }
    audit = await app.graphql(AUDIT, app.token(org, Role.OWNER), id=endpoint_id)
    actions = [
        e["node"]["action"] for e in audit["data"]["viewer"]["organization"]["auditEvents"]["edges"]
    ]
    assert actions == [
        "webhook_endpoint.delete",
        "webhook_endpoint.test",
        "webhook_endpoint.update",
        "webhook_endpoint.update",
        "webhook_endpoint.create",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0/",
    ],
)
async def test_metadata_and_link_local_urls_are_refused_even_when_private_is_allowed(
    app: Harness, url: str
) -> None:
    org = await app.org("acme")
    assert codes(await create(app, org, url, ["PLAN_CHANGED"])) == [("url", "INVALID_INPUT")]

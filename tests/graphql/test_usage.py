"""The usage log and recordUsage over GraphQL: filters, scoping, the REST path's rules."""

from __future__ import annotations

from typing import Any

from app.auth import Role
from app.ids import to_global_id
from app.keys.service import Caps
from tests.conftest import Harness, usage_event

USAGE = """
query Usage($filter: UsageFilter, $first: Int = 50, $after: String) {
  viewer { organization { usage(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      id requestId model action status promptTokens completionTokens
      cost { credits usd } tags { key value } createdAt apiKey { id name }
    } }
  } } }
}
"""

RECORD = """
mutation RecordUsage($input: RecordUsageInput!) {
  recordUsage(input: $input) {
    usage { id requestId cost { credits usd } status model }
    duplicate
    userErrors { field message code }
  }
}
"""


def usage_of(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    return body["data"]["viewer"]["organization"]["usage"]  # type: ignore[no-any-return]


async def test_usage_log_filters_and_pages(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    first, second = await harness.key(org), await harness.key(org)
    await harness.usage(
        org,
        usage_event(first.id, "a1", tags={"agent": "support"}),
        usage_event(first.id, "a2", model="gpt-5-5"),
        usage_event(second.id, "b1"),
    )
    headers = harness.token(org, Role.VIEWER)

    everything = usage_of(await harness.graphql(USAGE, headers=headers))
    assert everything["totalCount"] == 3
    nodes = [edge["node"] for edge in everything["edges"]]
    assert {n["requestId"] for n in nodes} == {"a1", "a2", "b1"}
    a1 = next(n for n in nodes if n["requestId"] == "a1")
    assert a1["cost"] == {"credits": "6000", "usd": "0.006000"}
    assert a1["tags"] == [{"key": "agent", "value": "support"}]
    assert a1["apiKey"] == {"id": to_global_id("ApiKey", first.id), "name": "test key"}
    assert a1["status"] == "SUCCEEDED"

    by_key = {"apiKeyId": to_global_id("ApiKey", first.id)}
    page = usage_of(await harness.graphql(USAGE, headers=headers, filter=by_key, first=1))
    assert page["totalCount"] == 2
    assert page["pageInfo"]["hasNextPage"]
    rest = usage_of(
        await harness.graphql(
            USAGE, headers=headers, filter=by_key, first=1, after=page["pageInfo"]["endCursor"]
        )
    )
    assert not rest["pageInfo"]["hasNextPage"]
    ids = {page["edges"][0]["node"]["requestId"], rest["edges"][0]["node"]["requestId"]}
    assert ids == {"a1", "a2"}

    by_model = usage_of(await harness.graphql(USAGE, headers=headers, filter={"model": "gpt-5-5"}))
    assert [e["node"]["requestId"] for e in by_model["edges"]] == ["a2"]
    by_request = usage_of(await harness.graphql(USAGE, headers=headers, filter={"requestId": "b1"}))
    assert by_request["totalCount"] == 1
    later = usage_of(
        await harness.graphql(USAGE, headers=headers, filter={"since": "2999-01-01T00:00:00Z"})
    )
    assert later["totalCount"] == 0


async def test_usage_of_another_organization_is_invisible(harness: Harness) -> None:
    acme, other = (
        await harness.org("acme", grant_usd="1"),
        await harness.org("other", grant_usd="1"),
    )
    other_key = await harness.key(other)
    await harness.usage(other, usage_event(other_key.id, "secret-call"))
    headers = harness.token(acme, Role.OWNER)
    body = await harness.graphql(
        USAGE, headers=headers, filter={"apiKeyId": to_global_id("ApiKey", other_key.id)}
    )
    assert usage_of(body)["totalCount"] == 0
    bad = await harness.graphql(USAGE, headers=headers, filter={"apiKeyId": "nonsense"})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_record_usage_bills_once_like_the_rest_path(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    key = await harness.key(org)
    service = harness.token(org, Role.SERVICE)
    payload = {
        "requestId": "g1",
        "apiKeyId": to_global_id("ApiKey", key.id),
        "model": "claude-sonnet-4-6",
        "promptTokens": 1000,
        "completionTokens": 200,
        "tags": [{"key": "conversation", "value": "c-9"}],
    }
    first = (await harness.graphql(RECORD, headers=service, input=payload))["data"]["recordUsage"]
    assert first["userErrors"] == []
    assert first["duplicate"] is False
    assert first["usage"]["cost"] == {"credits": "6000", "usd": "0.006000"}
    assert first["usage"]["status"] == "SUCCEEDED"

    again = (await harness.graphql(RECORD, headers=service, input=payload))["data"]["recordUsage"]
    assert again["duplicate"] is True
    assert again["usage"]["id"] == first["usage"]["id"]
    assert await harness.balance(org) == (1_000_000 - 6000, 0)
    assert await harness.books() == []


async def test_record_usage_refusals_change_nothing(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    other = await harness.org("other")
    key = await harness.key(org)
    foreign_key = await harness.key(other)
    base = {
        "requestId": "r",
        "apiKeyId": to_global_id("ApiKey", key.id),
        "model": "claude-sonnet-4-6",
        "promptTokens": 10,
    }
    cases = [
        (Role.SERVICE, base | {"model": "no-such-model"}, "INVALID_INPUT", "model"),
        (Role.SERVICE, base | {"promptTokens": -1}, "INVALID_INPUT", "promptTokens"),
        (Role.SERVICE, base | {"units": "1.0000001"}, "INVALID_INPUT", "units"),
        (
            Role.SERVICE,
            base | {"apiKeyId": to_global_id("ApiKey", foreign_key.id)},
            "NOT_FOUND",
            "apiKeyId",
        ),
        (Role.SERVICE, base | {"apiKeyId": "garbage"}, "INVALID_INPUT", "apiKeyId"),
        (Role.ADMIN, base, "FORBIDDEN", None),
        (Role.VIEWER, base, "FORBIDDEN", None),
    ]
    for role, payload, code, field in cases:
        body = await harness.graphql(RECORD, headers=harness.token(org, role), input=payload)
        result = body["data"]["recordUsage"]
        assert result["usage"] is None, payload
        assert [(e["code"], e["field"]) for e in result["userErrors"]] == [(code, field)], payload
    assert await harness.balance(org) == (1_000_000, 0)
    log = await harness.graphql(USAGE, headers=harness.token(org, Role.OWNER))
    assert usage_of(log)["totalCount"] == 0


async def test_a_records_key_shows_the_windows_the_key_list_shows(harness: Harness) -> None:
    """A usage record's key is read without its windows' marks; asked for, they are read
    then (once for all the page's keys) and agree with the key list's."""
    org = await harness.org("acme", grant_usd="10")
    capped = await harness.key(org, caps=Caps(limit_5h=1_000_000, limit_7d=5_000_000))
    plain = await harness.key(org)
    await harness.usage(
        org, usage_event(capped.id, "c1"), usage_event(capped.id, "c2"), usage_event(plain.id, "p1")
    )
    windows = (
        "windows { window limit { credits } spent { credits } remaining { credits } resetsAt }"
    )
    body = await harness.graphql(
        "{ viewer { organization {"
        f" usage {{ edges {{ node {{ requestId apiKey {{ id {windows} }} }} }} }}"
        f" apiKeys {{ edges {{ node {{ id {windows} }} }} }}"
        " } } }",
        headers=harness.token(org, Role.VIEWER),
    )
    assert "errors" not in body, body
    listed = {
        edge["node"]["id"]: edge["node"]["windows"]
        for edge in body["data"]["viewer"]["organization"]["apiKeys"]["edges"]
    }
    shown = {
        edge["node"]["requestId"]: edge["node"]["apiKey"]
        for edge in body["data"]["viewer"]["organization"]["usage"]["edges"]
    }
    assert [w["window"] for w in shown["c1"]["windows"]] == ["FIVE_HOURS", "SEVEN_DAYS"]
    assert shown["c1"]["windows"][0]["spent"] == {"credits": "12000"}  # two calls of 6000
    assert shown["p1"]["windows"] == [] == listed[to_global_id("ApiKey", plain.id)]
    for record in shown.values():
        assert record["windows"] == listed[record["id"]]

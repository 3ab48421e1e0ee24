"""The console's Test: authorize's answer (allowed or the exact refusal, the envelope)
without a hold, over REST (``"dry_run": true``) and GraphQL (``testApiKey``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.auth import Role
from app.clock import Clock, FrozenClock
from app.ids import to_global_id
from app.keys.service import Caps
from app.money import parse_usd
from tests.conftest import Harness
from tests.graphql.test_keys import codes, member

TEST = """
mutation($input: TestApiKeyInput!) {
  testApiKey(input: $input) {
    allowed hold { credits } refusal { status code message retryAfterSeconds }
    envelope { name value } userErrors { field message code }
  }
}
"""
ENVELOPE_PREFIX = "x-"


@pytest.fixture
def clock() -> Clock:
    """Frozen: the envelope's reset is a time, so the dry run and the real call must
    answer at the same instant to answer alike."""
    return FrozenClock(datetime(2026, 11, 2, 9, 30, tzinfo=UTC))


def envelope(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(ENVELOPE_PREFIX)}


async def test_a_dry_run_answers_as_authorize_and_holds_nothing(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    key = await harness.key(org)
    tried = await harness.authorize(key, "r1", hold_usd="0.25", dry_run=True)
    assert tried.status_code == 200, tried.text
    assert tried.json()["dry_run"] is True
    assert tried.json()["hold"]["usd"] == "0.250000"
    assert await harness.balance(org) == (parse_usd("1"), 0)
    # Nothing was taken: the same request id authorizes for real, with the same envelope.
    real = await harness.authorize(key, "r1", hold_usd="0.25")
    assert real.status_code == 200, real.text
    assert real.json()["dry_run"] is False
    assert envelope(tried.headers) == envelope(real.headers)
    assert await harness.balance(org) == (parse_usd("1"), parse_usd("0.25"))
    bad = await harness.authorize(key, "r2", dry_run="yes")
    assert bad.status_code == 400


async def test_a_dry_run_refuses_exactly_as_authorize(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    claude = await harness.key(org, group="claude-default")
    capped = await harness.key(org, caps=Caps(quota=parse_usd("0.1")))
    cases = [
        (claude, {"model": "gpt-5-mini"}),
        (capped, {"hold_usd": "0.5"}),
        (claude, {"model": "no-such-model"}),
    ]
    for key, body in cases:
        tried = await harness.authorize(key, "r", dry_run=True, **body)
        real = await harness.authorize(key, "r", **body)
        assert tried.status_code == real.status_code >= 400, real.text
        assert tried.json() == real.json()
        assert envelope(tried.headers) == envelope(real.headers)
    assert await harness.balance(org) == (parse_usd("1"), 0)


async def test_test_api_key_in_graphql(harness: Harness) -> None:
    org, other = await harness.org("acme", grant_usd="1"), await harness.org("other")
    owner = harness.token(org, Role.OWNER)
    claude = await harness.key(org, group="claude-default")
    key_id = to_global_id("ApiKey", claude.id)

    async def test(headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = await harness.graphql(TEST, headers=headers, input={"id": key_id, **fields})
        assert "errors" not in body, body
        payload: dict[str, Any] = body["data"]["testApiKey"]
        return payload

    allowed = await test(owner, model="claude-sonnet-4-6", holdUsd="0.2")
    real = await harness.authorize(claude, "r1", hold_usd="0.2")
    assert allowed["allowed"] is True
    assert allowed["hold"] == {"credits": str(parse_usd("0.2"))}
    assert allowed["refusal"] is None
    before = {h["name"].lower(): h["value"] for h in allowed["envelope"]}
    assert before
    assert set(before) == set(envelope(real.headers))

    refused = await test(owner, model="gpt-5-mini")
    rest = (await harness.authorize(claude, "r2", model="gpt-5-mini")).json()
    assert refused["allowed"] is False
    assert refused["refusal"] == {
        "status": 403,
        "code": "model_not_allowed",
        "message": rest["message"],
        "retryAfterSeconds": None,
    }
    assert await harness.balance(org) == (parse_usd("1"), parse_usd("0.2"))

    elsewhere = await test(harness.token(other, Role.OWNER), model="claude-sonnet-4-6")
    assert codes(elsewhere) == [("id", "NOT_FOUND")]
    not_theirs = await test(member(org, "alice"), model="claude-sonnet-4-6")
    assert codes(not_theirs) == [("id", "FORBIDDEN")]
    viewer = await test(harness.token(org, Role.VIEWER), model="claude-sonnet-4-6")
    assert codes(viewer) == [(None, "FORBIDDEN")]

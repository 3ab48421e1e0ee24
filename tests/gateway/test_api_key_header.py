"""ByteSpike's clients: the key in ``x-api-key`` wherever ``Authorization: Bearer`` takes
one, and ``GET /v1/usage`` for the usage log."""

from __future__ import annotations

from app.auth import Role
from tests.conftest import Harness, usage_event

VIEWER = "query { viewer { id role } }"


async def test_x_api_key_reads_the_usage_log_at_the_pages_short_path(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    key = await harness.key(org)
    await harness.usage(org, usage_event(key.id, "r1"))
    bearer = await harness.http.get(
        "/api/v1/me/usage", headers={"Authorization": f"Bearer {key.secret}"}
    )
    short = await harness.http.get("/v1/usage", headers={"x-api-key": key.secret})
    assert short.status_code == 200, short.text
    assert short.json() == bearer.json()
    assert [row["request_id"] for row in short.json()["data"]] == ["r1"]
    assert short.headers["X-Quota-Remaining-Credits"] == bearer.headers["X-Quota-Remaining-Credits"]

    refused = await harness.http.get("/v1/usage", headers={"x-api-key": "sk-nope-nope"})
    assert refused.status_code == 401
    assert (await harness.http.get("/v1/usage")).status_code == 401


async def test_x_api_key_authenticates_graphql(harness: Harness) -> None:
    org = await harness.org("acme")
    key = await harness.key(org)
    body = await harness.graphql(VIEWER, headers={"x-api-key": key.secret})
    assert body["data"]["viewer"]["role"] == "API_KEY", body
    # Authorization wins when both are sent.
    both = harness.token(org, Role.OWNER) | {"x-api-key": key.secret}
    assert (await harness.graphql(VIEWER, headers=both))["data"]["viewer"]["role"] == "OWNER"
    bad = await harness.graphql(VIEWER, headers={"x-api-key": "sk-nope-nope"})
    assert bad["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

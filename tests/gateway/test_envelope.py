"""The quota envelope as the seeds show it: USD with two decimals, rounded down (a
positive amount under a cent exact, never "0.00"), and a reset that is never 0."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import update

from app.clock import Clock, FrozenClock
from app.keys.service import Caps
from app.ledger.state import orgs_t
from app.money import parse_usd
from tests.conftest import Harness, usage_event

T0 = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


async def test_amounts_are_usd_rounded_down(harness: Harness) -> None:
    org = await harness.org(grant_usd="8420.659999")
    key = await harness.key(org, caps=Caps(quota=parse_usd("192.409"), limit_1d=parse_usd("50")))
    allowed = await harness.authorize(key, "a")
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["X-RateLimit-Limit"] == "50.00"
    assert allowed.headers["X-RateLimit-Remaining"] == "50.00"
    assert allowed.headers["X-Quota-Remaining-Credits"] == "192.40"
    assert allowed.headers["X-Org-Quota-Remaining-Credits"] == "8420.65"


async def test_under_a_cent_is_room_and_zero_is_the_cap(harness: Harness) -> None:
    org = await harness.org(grant_usd="10")
    # usage_event costs $0.006: a quota of $0.0105 leaves $0.0045 after it.
    key = await harness.key(org, caps=Caps(quota=parse_usd("0.0105")))
    await harness.usage(org, usage_event(key.id, "r1"))
    room = await harness.authorize(key, "a")
    assert room.status_code == 200, room.text
    assert room.headers["X-Quota-Remaining-Credits"] == "0.0045"
    assert room.headers["X-RateLimit-Remaining"] == "0.0045"
    await harness.usage(org, usage_event(key.id, "a", completion_tokens=0, prompt_tokens=1500))
    refused = await harness.authorize(key, "b")
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "quota_exhausted"
    assert refused.headers["X-Quota-Remaining-Credits"] == "0.00"
    assert refused.headers["X-RateLimit-Remaining"] == "0.00"


async def test_reset_is_now_for_the_wallet_and_next_month_for_the_spend_cap(
    harness: Harness,
) -> None:
    org = await harness.org(grant_usd="10")
    key = await harness.key(org)
    wallet = await harness.authorize(key, "a")
    assert wallet.headers["X-RateLimit-Reset"] == str(int(T0.timestamp()))
    async with harness.runtime.db.write(None) as conn:
        await conn.execute(
            update(orgs_t).where(orgs_t.c.id == org.id).values(spend_cap_monthly=2_000_000)
        )
    capped = await harness.authorize(key, "b")
    assert capped.headers["X-RateLimit-Limit"] == "2.00"
    assert capped.headers["X-RateLimit-Remaining"] == "2.00"
    december = datetime(2026, 12, 1, tzinfo=UTC)
    assert capped.headers["X-RateLimit-Reset"] == str(int(december.timestamp()))


ENVELOPE = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _has_envelope(response: httpx.Response) -> bool:
    return all(name in response.headers for name in (*ENVELOPE, "X-Quota-Remaining-Credits"))


async def test_every_rest_answer_to_a_key_carries_the_envelope(harness: Harness) -> None:
    org = await harness.org(grant_usd="10")
    key = await harness.key(org)
    bearer = {"Authorization": f"Bearer {key.secret}"}
    malformed = await harness.http.post(
        "/api/v1/authorize", json={"api_key": key.secret, "request_id": "r"}
    )
    assert malformed.status_code == 400, malformed.text
    assert malformed.headers["X-Quota-Remaining-Credits"] == "10.00"
    bad_limit = await harness.http.get("/api/v1/me/usage?limit=0", headers=bearer)
    assert bad_limit.status_code == 400
    assert _has_envelope(bad_limit)
    forbidden = await harness.http.post("/api/v1/usage", json={"events": []}, headers=bearer)
    assert forbidden.status_code == 403
    assert _has_envelope(forbidden)
    # Not authenticated by a key: no envelope.
    unknown = await harness.http.post(
        "/api/v1/authorize", json={"api_key": "sk-nope", "request_id": "r"}
    )
    assert unknown.status_code == 400
    assert not _has_envelope(unknown)
    token = await harness.http.get("/api/v1/me/usage?limit=0", headers=harness.token(org))
    assert not _has_envelope(token)


async def test_every_graphql_answer_to_a_key_carries_the_envelope(harness: Harness) -> None:
    org = await harness.org(grant_usd="10")
    key = await harness.key(org, caps=Caps(quota=parse_usd("4")))
    bearer = {"Authorization": f"Bearer {key.secret}"}
    query = {"query": "{ viewer { organization { slug } } }"}
    answered = await harness.http.post("/graphql", json=query, headers=bearer)
    assert answered.status_code == 200, answered.text
    assert answered.headers["X-Quota-Remaining-Credits"] == "4.00"
    assert answered.headers["X-Org-Quota-Remaining-Credits"] == "10.00"
    full_path = {"query": "query Other { viewer { organization { name } } }"}
    assert _has_envelope(await harness.http.post("/graphql", json=full_path, headers=bearer))
    malformed = await harness.http.post(
        "/graphql", content=b"{not json", headers=bearer | {"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert _has_envelope(malformed)
    invalid = await harness.http.post("/graphql", json={"query": "{ nope }"}, headers=bearer)
    assert _has_envelope(invalid)
    # A dashboard's token is no API key: no envelope.
    person = await harness.http.post("/graphql", json=query, headers=harness.token(org))
    assert person.status_code == 200
    assert not _has_envelope(person)

"""API keys over GraphQL: the list with quota and windows, the key mutations, setSpendCap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from app.audit import audit_t
from app.auth import Role, issue_token
from app.clock import Clock, FrozenClock
from app.ids import to_global_id
from app.keys.service import Caps
from app.orgs.service import OrgRef
from tests.conftest import JWT_SECRET, Harness

T0 = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)

MONEY = "{ credits usd }"
KEY_FIELDS = f"""
  id name prefix group status createdAt expiresAt lastUsedAt owner
  quota {{ limit {MONEY} spent {MONEY} remaining {MONEY} }}
  windows {{ window limit {MONEY} spent {MONEY} remaining {MONEY} resetsAt }}
"""
ERRORS = "userErrors { field message code }"

API_KEYS = f"""
query ApiKeys($first: Int = 50, $after: String) {{
  viewer {{ organization {{ apiKeys(first: $first, after: $after) {{
    totalCount
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{ {KEY_FIELDS} }} }}
  }} }} }}
}}
"""
CREATE = f"""
mutation($input: CreateApiKeyInput!) {{
  createApiKey(input: $input) {{ apiKey {{ {KEY_FIELDS} }} secret {ERRORS} }}
}}
"""
UPDATE = f"""
mutation($input: UpdateApiKeyCapsInput!) {{
  updateApiKeyCaps(input: $input) {{ apiKey {{ {KEY_FIELDS} }} {ERRORS} }}
}}
"""
ROTATE = f"""
mutation($input: RotateApiKeyInput!) {{
  rotateApiKey(input: $input) {{ apiKey {{ id prefix status }} secret {ERRORS} }}
}}
"""
REVOKE = f"""
mutation($input: RevokeApiKeyInput!) {{
  revokeApiKey(input: $input) {{ apiKey {{ id status }} {ERRORS} }}
}}
"""
SET_SPEND_CAP = f"""
mutation($input: SetSpendCapInput!) {{
  setSpendCap(input: $input) {{
    spendCap {{ monthlyLimit {MONEY} spentThisMonth {{ credits }} }} {ERRORS}
  }}
}}
"""
SPEND_CAP = f"query {{ viewer {{ organization {{ spendCap {{ monthlyLimit {MONEY} }} }} }} }}"
NODE = "query($id: ID!) { node(id: $id) { id ... on ApiKey { name } } }"


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


def usd(text: str) -> dict[str, str]:
    whole, _, fraction = text.partition(".")
    credits = int(whole) * 1_000_000 + int(fraction.ljust(6, "0"))
    return {"credits": str(credits), "usd": f"{whole}.{fraction.ljust(6, '0')}"}


def member(org: OrgRef, subject: str) -> dict[str, str]:
    """A member token with its own subject (the harness gives every member the same one)."""
    token = issue_token(
        JWT_SECRET, org=org.slug, role=Role.MEMBER, subject=subject, ttl=timedelta(hours=1)
    )
    return {"Authorization": f"Bearer {token}"}


async def create(harness: Harness, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = await harness.graphql(CREATE, headers=headers, input={"name": "key", **fields})
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["createApiKey"]
    return payload


async def mutate(
    harness: Harness, operation: str, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    body = await harness.graphql(operation, headers=headers, input=fields)
    assert "errors" not in body, body
    (payload,) = body["data"].values()
    assert isinstance(payload, dict)
    return payload


async def keys(harness: Harness, headers: dict[str, str], **variables: Any) -> dict[str, Any]:
    body = await harness.graphql(API_KEYS, headers=headers, **variables)
    assert "errors" not in body, body
    connection: dict[str, Any] = body["data"]["viewer"]["organization"]["apiKeys"]
    return connection


async def authorize(harness: Harness, secret: str, request_id: str) -> httpx.Response:
    payload = {"api_key": secret, "model": "claude-sonnet-4-6", "request_id": request_id}
    return await harness.http.post("/api/v1/authorize", json=payload)


def codes(payload: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


async def test_create_returns_the_secret_once_and_it_authorizes(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    admin = harness.token(org, Role.ADMIN)
    created = await create(
        harness,
        admin,
        name="  ci  ",
        group="claude-default",
        quotaUsd="7.5",
        rateLimit5hUsd="1.25",
        expiresInDays=30,
    )
    assert created["userErrors"] == []
    key, secret = created["apiKey"], created["secret"]
    assert secret.startswith(f"{key['prefix']}-")
    assert key["name"] == "ci"
    assert key["group"] == "claude-default"
    assert key["status"] == "ACTIVE"
    assert key["owner"] == "admin@test"
    assert key["expiresAt"] == (T0 + timedelta(days=30)).isoformat()
    assert key["quota"] == {"limit": usd("7.5"), "spent": usd("0"), "remaining": usd("7.5")}
    assert key["windows"] == [
        {
            "window": "FIVE_HOURS",
            "limit": usd("1.25"),
            "spent": usd("0"),
            "remaining": usd("1.25"),
            "resetsAt": None,
        }
    ]

    allowed = await authorize(harness, secret, "r1")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["api_key_id"] == key["id"]

    response = await harness.http.post(
        "/graphql", json={"query": API_KEYS}, headers=harness.token(org, Role.OWNER)
    )
    assert secret not in response.text
    listed = response.json()["data"]["viewer"]["organization"]["apiKeys"]
    assert [edge["node"] for edge in listed["edges"]] == [key | {"lastUsedAt": None}]

    frozen = harness.runtime.clock
    assert isinstance(frozen, FrozenClock)
    frozen.advance(timedelta(days=30))
    (edge,) = (await keys(harness, admin))["edges"]
    assert edge["node"]["status"] == "EXPIRED"


async def test_windows_and_quota_count_usage_and_holds_exactly(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    owner = harness.token(org, Role.OWNER)
    created = await create(
        harness,
        owner,
        quotaUsd="2",
        rateLimit5hUsd="1",
        rateLimit1dUsd="1.5",
        rateLimit7dUsd="3",
    )
    key_id = created["apiKey"]["id"]
    # 1,000 prompt and 200 completion tokens of claude-sonnet-4-6: 6,000 credits.
    await harness.usage(
        org,
        {
            "request_id": "r1",
            "api_key_id": key_id,
            "model": "claude-sonnet-4-6",
            "prompt_tokens": 1000,
            "completion_tokens": 200,
        },
    )
    held = await harness.http.post(
        "/api/v1/authorize",
        json={
            "api_key": created["secret"],
            "model": "claude-sonnet-4-6",
            "request_id": "in-flight",
            "hold_usd": "0.01",
        },
    )
    assert held.status_code == 200, held.text

    (edge,) = (await keys(harness, owner))["edges"]
    key = edge["node"]
    assert key["lastUsedAt"] == T0.isoformat()
    # spent = 6,000 billed + 10,000 held; remaining = limit - spent.
    assert key["quota"] == {
        "limit": usd("2"),
        "spent": usd("0.016"),
        "remaining": usd("1.984"),
    }
    assert key["windows"] == [
        {
            "window": window,
            "limit": usd(limit),
            "spent": usd("0.016"),
            "remaining": usd(remaining),
            "resetsAt": (T0 + length).isoformat(),
        }
        for window, limit, remaining, length in (
            ("FIVE_HOURS", "1", "0.984", timedelta(hours=5)),
            ("ONE_DAY", "1.5", "1.484", timedelta(days=1)),
            ("SEVEN_DAYS", "3", "2.984", timedelta(days=7)),
        )
    ]

    # 5 h and 1 s later the billed spend has left the 5 h window, not the others. The
    # hold still counts: nothing has released it (periodic jobs are off in tests).
    frozen = harness.runtime.clock
    assert isinstance(frozen, FrozenClock)
    frozen.advance(timedelta(hours=5, seconds=1))
    (edge,) = (await keys(harness, owner))["edges"]
    five_hours, one_day, _ = edge["node"]["windows"]
    assert five_hours["spent"] == usd("0.01")
    assert five_hours["remaining"] == usd("0.99")
    assert five_hours["resetsAt"] is None
    assert one_day["spent"] == usd("0.016")


async def test_update_caps_sets_clears_and_keeps(harness: Harness) -> None:
    org = await harness.org("acme")
    admin = harness.token(org, Role.ADMIN)
    created = await create(harness, admin, rateLimit5hUsd="1", rateLimit1dUsd="2")
    key_id = created["apiKey"]["id"]

    # A value sets, null clears, an omitted field keeps its limit.
    updated = await mutate(harness, UPDATE, admin, id=key_id, quotaUsd="7.5", rateLimit1dUsd=None)
    assert updated["userErrors"] == []
    key = updated["apiKey"]
    assert key["quota"]["limit"] == usd("7.5")
    assert key["quota"]["remaining"] == usd("7.5")
    assert [(w["window"], w["limit"]) for w in key["windows"]] == [("FIVE_HOURS", usd("1"))]

    (edge,) = (await keys(harness, admin))["edges"]
    assert edge["node"] == key

    cleared = await mutate(harness, UPDATE, admin, id=key_id, quotaUsd=None, rateLimit5hUsd=None)
    assert cleared["apiKey"]["quota"] == {"limit": None, "spent": usd("0"), "remaining": None}
    assert cleared["apiKey"]["windows"] == []


async def test_a_quota_of_0_is_no_quota(harness: Harness) -> None:
    """The seeds: "0 = unlimited (within the wallet)"; a window of 0 stays refused."""
    org = await harness.org("acme", grant_usd="3")
    admin = harness.token(org, Role.ADMIN)
    created = await create(harness, admin, quotaUsd="0")
    assert created["userErrors"] == []
    no_quota = {"limit": None, "spent": usd("0"), "remaining": None}
    assert created["apiKey"]["quota"] == no_quota
    allowed = await authorize(harness, created["secret"], "r1")
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["X-Quota-Remaining-Credits"] == "3.00"  # the wallet's

    key_id = created["apiKey"]["id"]
    assert (await mutate(harness, UPDATE, admin, id=key_id, quotaUsd="2"))["userErrors"] == []
    cleared = await mutate(harness, UPDATE, admin, id=key_id, quotaUsd="0.000000")
    assert cleared["userErrors"] == []
    assert cleared["apiKey"]["quota"] == no_quota
    refused = await mutate(harness, UPDATE, admin, id=key_id, rateLimit5hUsd="0")
    assert codes(refused) == [("rateLimit5hUsd", "INVALID_AMOUNT")]


async def test_invalid_amounts_are_user_errors_and_change_nothing(harness: Harness) -> None:
    org = await harness.org("acme")
    admin = harness.token(org, Role.ADMIN)
    refused = await create(
        harness, admin, quotaUsd="1.0000001", rateLimit1dUsd="-1", rateLimit7dUsd="0"
    )
    assert codes(refused) == [
        ("quotaUsd", "INVALID_AMOUNT"),
        ("rateLimit1dUsd", "INVALID_AMOUNT"),
        ("rateLimit7dUsd", "INVALID_AMOUNT"),
    ]
    assert refused["apiKey"] is None
    assert refused["secret"] is None
    assert (await keys(harness, admin))["totalCount"] == 0

    refused = await create(harness, admin, name=" ", group="no-such-group", expiresInDays=0)
    assert codes(refused) == [
        ("name", "INVALID_INPUT"),
        ("group", "INVALID_INPUT"),
        ("expiresInDays", "INVALID_INPUT"),
    ]
    assert (await keys(harness, admin))["totalCount"] == 0

    key = (await create(harness, admin, quotaUsd="5"))["apiKey"]
    for bad in ("1.0000001", "-1"):
        refused = await mutate(harness, UPDATE, admin, id=key["id"], quotaUsd=bad)
        assert codes(refused) == [("quotaUsd", "INVALID_AMOUNT")]
        assert refused["apiKey"] is None
    (edge,) = (await keys(harness, admin))["edges"]
    assert edge["node"] == key

    # Not a decimal at all: the scalar refuses it before any resolver runs.
    body = await harness.graphql(UPDATE, headers=admin, input={"id": key["id"], "quotaUsd": "1e3"})
    assert body["errors"]


async def test_rotate_gives_a_new_secret_and_the_old_one_stops(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    admin = harness.token(org, Role.ADMIN)
    created = await create(harness, admin, quotaUsd="1")
    old = created["secret"]
    assert (await authorize(harness, old, "before")).status_code == 200

    rotated = await mutate(harness, ROTATE, admin, id=created["apiKey"]["id"])
    assert rotated["userErrors"] == []
    new = rotated["secret"]
    assert new != old
    assert new.startswith(f"{rotated['apiKey']['prefix']}-")
    assert rotated["apiKey"]["prefix"] != created["apiKey"]["prefix"]

    refused = await authorize(harness, old, "with-old")
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_api_key"
    assert (await authorize(harness, new, "with-new")).status_code == 200
    (edge,) = (await keys(harness, admin))["edges"]
    assert edge["node"]["quota"]["limit"] == usd("1")  # caps stay


async def test_revoke_refuses_the_key_at_once(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    admin = harness.token(org, Role.ADMIN)
    created = await create(harness, admin)
    key_id = created["apiKey"]["id"]

    revoked = await mutate(harness, REVOKE, admin, id=key_id)
    assert revoked == {"apiKey": {"id": key_id, "status": "REVOKED"}, "userErrors": []}
    refused = await authorize(harness, created["secret"], "after")
    assert refused.status_code == 403
    assert refused.json()["code"] == "api_key_revoked"

    # Again: nothing to do, not an error. A revoked key cannot be rotated back to life.
    assert await mutate(harness, REVOKE, admin, id=key_id) == revoked
    rotated = await mutate(harness, ROTATE, admin, id=key_id)
    assert codes(rotated) == [("id", "INVALID_INPUT")]
    assert rotated["secret"] is None


async def test_roles_that_may_not_change_keys_get_forbidden(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    existing = await harness.key(org)
    key_id = to_global_id("ApiKey", existing.id)
    api_key = {"Authorization": f"Bearer {existing.secret}"}
    for headers in (harness.token(org, Role.VIEWER), harness.token(org, Role.SERVICE), api_key):
        assert codes(await create(harness, headers)) == [(None, "FORBIDDEN")]
        for operation in (UPDATE, ROTATE, REVOKE):
            refused = await mutate(harness, operation, headers, id=key_id)
            assert codes(refused) == [(None, "FORBIDDEN")]
    refused = await mutate(
        harness, UPDATE, harness.token(org, Role.VIEWER), id=key_id, quotaUsd="1"
    )
    assert codes(refused) == [(None, "FORBIDDEN")]

    (edge,) = (await keys(harness, harness.token(org, Role.OWNER)))["edges"]
    assert edge["node"]["status"] == "ACTIVE"
    assert edge["node"]["quota"]["limit"] is None
    assert (await authorize(harness, existing.secret, "still-works")).status_code == 200

    unauthenticated = await harness.graphql(CREATE, input={"name": "x"})
    assert [e["extensions"]["code"] for e in unauthenticated["errors"]] == ["UNAUTHENTICATED"]


async def test_members_manage_only_their_own_keys(harness: Harness) -> None:
    org = await harness.org("acme")
    admin = harness.token(org, Role.ADMIN)
    ada, bob = member(org, "ada@acme.test"), member(org, "bob@acme.test")
    admins_key = (await create(harness, admin, name="admin's", quotaUsd="1"))["apiKey"]
    adas = await create(harness, ada, name="ada's")
    assert adas["userErrors"] == []
    assert adas["apiKey"]["owner"] == "ada@acme.test"
    ada_key_id = adas["apiKey"]["id"]

    # Ada sees every key of the organization but changes only hers.
    listed = await keys(harness, ada)
    assert [edge["node"]["name"] for edge in listed["edges"]] == ["ada's", "admin's"]
    for operation in (UPDATE, ROTATE, REVOKE):
        refused = await mutate(harness, operation, ada, id=admins_key["id"])
        assert codes(refused) == [("id", "FORBIDDEN")]
        refused = await mutate(harness, operation, bob, id=ada_key_id)
        assert codes(refused) == [("id", "FORBIDDEN")]
    assert (await mutate(harness, UPDATE, ada, id=ada_key_id, quotaUsd="2"))["userErrors"] == []
    # Owners and admins manage everyone's keys.
    assert (await mutate(harness, REVOKE, admin, id=ada_key_id))["userErrors"] == []

    nodes = {edge["node"]["name"]: edge["node"] for edge in (await keys(harness, admin))["edges"]}
    assert nodes["admin's"] == admins_key
    assert nodes["ada's"]["quota"]["limit"] == usd("2")
    assert nodes["ada's"]["status"] == "REVOKED"


async def test_another_organizations_key_is_not_found_and_unchanged(harness: Harness) -> None:
    acme = await harness.org("acme")
    other = await harness.org("other", grant_usd="1")
    theirs = await create(harness, harness.token(other, Role.OWNER), quotaUsd="3")
    their_id = theirs["apiKey"]["id"]
    acme_owner = harness.token(acme, Role.OWNER)

    ledger_entry = to_global_id("LedgerEntry", 1)
    for key_id in (their_id, to_global_id("ApiKey", 999_999), ledger_entry, "not an id"):
        for operation in (UPDATE, ROTATE, REVOKE):
            refused = await mutate(harness, operation, acme_owner, id=key_id)
            assert codes(refused) == [("id", "NOT_FOUND")], (operation, key_id)
            assert refused["apiKey"] is None
        body = await harness.graphql(NODE, headers=acme_owner, id=key_id)
        assert body == {"data": {"node": None}}

    (edge,) = (await keys(harness, harness.token(other, Role.OWNER)))["edges"]
    assert edge["node"] == theirs["apiKey"]
    assert (await authorize(harness, theirs["secret"], "still-theirs")).status_code == 200


async def test_an_api_key_sees_only_itself(harness: Harness) -> None:
    org = await harness.org("acme")
    mine, other = await harness.key(org), await harness.key(org)
    headers = {"Authorization": f"Bearer {mine.secret}"}
    listed = await keys(harness, headers)
    assert listed["totalCount"] == 1
    assert [edge["node"]["id"] for edge in listed["edges"]] == [to_global_id("ApiKey", mine.id)]

    own = to_global_id("ApiKey", mine.id)
    body = await harness.graphql(NODE, headers=headers, id=own)
    assert body == {"data": {"node": {"id": own, "name": "test key"}}}
    body = await harness.graphql(NODE, headers=headers, id=to_global_id("ApiKey", other.id))
    assert body == {"data": {"node": None}}
    # A member, though, finds any key of the organization.
    body = await harness.graphql(
        NODE, headers=harness.token(org, Role.MEMBER), id=to_global_id("ApiKey", other.id)
    )
    assert body["data"]["node"]["id"] == to_global_id("ApiKey", other.id)


async def test_api_keys_page_newest_first_through_every_page(harness: Harness) -> None:
    org = await harness.org("acme")
    owner = harness.token(org, Role.OWNER)
    frozen = harness.runtime.clock
    assert isinstance(frozen, FrozenClock)
    for n in range(5):
        await create(harness, owner, name=f"k{n}")
        frozen.advance(timedelta(seconds=1))

    names: list[str] = []
    after = None
    while True:
        page = await keys(harness, owner, first=2, after=after)
        assert page["totalCount"] == 5
        assert len(page["edges"]) <= 2
        names += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert names == ["k4", "k3", "k2", "k1", "k0"]


async def test_set_spend_cap_sets_and_removes_for_admins_only(harness: Harness) -> None:
    org = await harness.org("acme")
    admin = harness.token(org, Role.ADMIN)

    async def cap() -> Any:
        body = await harness.graphql(SPEND_CAP, headers=harness.token(org, Role.VIEWER))
        return body["data"]["viewer"]["organization"]["spendCap"]["monthlyLimit"]

    payload = await mutate(harness, SET_SPEND_CAP, admin, monthlyLimitUsd="250.5")
    assert payload == {
        "spendCap": {"monthlyLimit": usd("250.5"), "spentThisMonth": {"credits": "0"}},
        "userErrors": [],
    }
    assert await cap() == usd("250.5")

    for role in (Role.VIEWER, Role.MEMBER, Role.SERVICE):
        refused = await mutate(
            harness, SET_SPEND_CAP, harness.token(org, role), monthlyLimitUsd=None
        )
        assert codes(refused) == [(None, "FORBIDDEN")]
        assert refused["spendCap"] is None
    for bad in ("-1", "1.0000001"):
        refused = await mutate(harness, SET_SPEND_CAP, admin, monthlyLimitUsd=bad)
        assert codes(refused) == [("monthlyLimitUsd", "INVALID_AMOUNT")]
    assert await cap() == usd("250.5")

    removed = await mutate(
        harness, SET_SPEND_CAP, harness.token(org, Role.OWNER), monthlyLimitUsd=None
    )
    assert removed["spendCap"]["monthlyLimit"] is None
    assert await cap() is None

    async with harness.runtime.db.reader.connect() as conn:
        audited = (
            await conn.execute(
                select(audit_t.c.actor, audit_t.c.before, audit_t.c.after)
                .where(audit_t.c.action == "organization.spend_cap")
                .order_by(audit_t.c.id)
            )
        ).all()
    assert [tuple(row) for row in audited] == [
        ("admin@test", {"spend_cap_monthly": None}, {"spend_cap_monthly": 250_500_000}),
        ("owner@test", {"spend_cap_monthly": 250_500_000}, {"spend_cap_monthly": None}),
    ]


async def test_a_page_of_keys_with_windows_takes_the_same_statements_for_10_or_100(
    harness: Harness,
) -> None:
    org = await harness.org("acme")
    owner = harness.token(org, Role.OWNER)
    await keys(harness, owner)  # signs the token in and caches the organization

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's, issued by app.db; counted below
            statements.append(statement)

    def began(_conn: Any) -> None:
        statements.append("BEGIN")  # a transaction, on either engine

    async def statements_for_one_page() -> list[str]:
        statements.clear()
        page = await keys(harness, owner, first=100)
        assert all(len(edge["node"]["windows"]) == 3 for edge in page["edges"])
        return [statement.split()[0] for statement in statements]

    caps = Caps(quota=1_000_000, limit_5h=1_000_000, limit_1d=2_000_000, limit_7d=3_000_000)
    engine = harness.runtime.db.read_engine
    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "begin", began)
    try:
        for _ in range(10):
            await harness.key(org, caps=caps)
        ten = await statements_for_one_page()
        for _ in range(90):
            await harness.key(org, caps=caps)
        hundred = await statements_for_one_page()
    finally:
        event.remove(engine, "before_cursor_execute", count)
        event.remove(engine, "begin", began)
    # The page, the window marks of every key on it and the total, in one read.
    assert ten == hundred == ["BEGIN", "SELECT", "SELECT", "SELECT"], statements

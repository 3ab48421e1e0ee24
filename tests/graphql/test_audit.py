"""The audit log over GraphQL: every change to keys, caps and money, owners and admins only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.auth import Role
from app.clock import Clock, FrozenClock
from app.ids import from_global_id, to_global_id
from app.ledger.book import entries_t
from app.operations import adjust
from tests.conftest import Harness
from tests.graphql.test_keys import CREATE, REVOKE, ROTATE, SET_SPEND_CAP, UPDATE, mutate

T0 = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)

AUDIT = """
query Audit($first: Int = 50, $after: String, $filter: AuditEventFilter) {
  viewer { organization {
    slug
    auditEvents(first: $first, after: $after, filter: $filter) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id action actor target targetId before after at } }
    }
  } }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on AuditEvent { action } } }"


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(T0)


async def audit(harness: Harness, headers: dict[str, str], **variables: Any) -> dict[str, Any]:
    body = await harness.graphql(AUDIT, headers=headers, **variables)
    assert "errors" not in body, body
    events: dict[str, Any] = body["data"]["viewer"]["organization"]["auditEvents"]
    return events


def nodes(events: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in events["edges"]]


async def test_key_changes_and_the_spend_cap_are_logged_newest_first(harness: Harness) -> None:
    org = await harness.org("acme")
    admin, owner = harness.token(org, Role.ADMIN), harness.token(org, Role.OWNER)
    created = await mutate(harness, CREATE, admin, name="ci", quotaUsd="5")
    key_id = created["apiKey"]["id"]
    await mutate(harness, UPDATE, admin, id=key_id, quotaUsd=None, rateLimit1dUsd="2")
    rotated = await mutate(harness, ROTATE, owner, id=key_id)
    await mutate(harness, REVOKE, owner, id=key_id)
    await mutate(harness, SET_SPEND_CAP, admin, monthlyLimitUsd="250")

    events = nodes(await audit(harness, owner))
    assert [(e["action"], e["actor"], e["targetId"]) for e in events] == [
        ("organization.spend_cap", "admin@test", to_global_id("Organization", org.id)),
        ("api_key.revoke", "owner@test", key_id),
        ("api_key.rotate", "owner@test", key_id),
        ("api_key.caps", "admin@test", key_id),
        ("api_key.create", "admin@test", key_id),
        ("organization.create", "cli", to_global_id("Organization", org.id)),
    ]
    spend_cap, revoke, rotate, caps, create, _ = events
    assert (spend_cap["before"], spend_cap["after"]) == (
        {"spend_cap_monthly": None},
        {"spend_cap_monthly": 250_000_000},
    )
    assert (revoke["before"], revoke["after"]) == (
        {"revoked_at": None},
        {"revoked_at": T0.isoformat()},
    )
    old_prefix = created["apiKey"]["prefix"]
    assert (rotate["before"], rotate["after"]) == (
        {"prefix": old_prefix},
        {"prefix": rotated["apiKey"]["prefix"]},
    )
    unlimited = {"limit_5h": None, "limit_1d": None, "limit_7d": None}
    assert caps["before"] == {"quota": 5_000_000, **unlimited}
    assert caps["after"] == {**unlimited, "quota": None, "limit_1d": 2_000_000}
    assert create["before"] is None
    assert create["after"]["name"] == "ci"
    assert create["after"]["quota"] == 5_000_000
    assert create["after"]["prefix"] == old_prefix
    assert "secret_hash" not in create["after"]
    assert create["target"] == f"api_key:{from_global_id(key_id, 'ApiKey')}"
    assert {e["at"] for e in events} == {"2026-11-02T12:00:00+00:00"}


async def test_an_adjustment_is_logged_with_its_ledger_entry(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="5")
    await adjust(harness.runtime, org.id, -1_500_000, "refund reversal", actor="support@test")
    events = nodes(await audit(harness, harness.token(org, Role.ADMIN)))
    assert [(e["action"], e["actor"], e["before"], e["after"]) for e in events[:2]] == [
        (
            "wallet.adjust",
            "support@test",
            {"balance": 5_000_000},
            {
                "amount": -1_500_000,
                "reason": "refund reversal",
                "expires_at": None,
                "balance": 3_500_000,
            },
        ),
        (
            "wallet.adjust",
            "cli",
            {"balance": 0},
            {
                "amount": 5_000_000,
                "reason": "opening grant",
                "expires_at": None,
                "balance": 5_000_000,
            },
        ),
    ]


# A trigger failing the audit record of an adjustment, in each engine's dialect.
REFUSE_ADJUST_AUDIT = {
    "sqlite": [
        "CREATE TRIGGER refuse_adjust_audit BEFORE INSERT ON audit_events "
        "WHEN NEW.action = 'wallet.adjust' BEGIN SELECT RAISE(ABORT, 'no log'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_adjust_audit() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'no log'; END $$",
        "CREATE TRIGGER refuse_adjust_audit BEFORE INSERT ON audit_events FOR EACH ROW "
        "WHEN (NEW.action = 'wallet.adjust') EXECUTE FUNCTION refuse_adjust_audit()",
    ],
}


async def test_an_adjustment_whose_audit_record_fails_is_not_committed(
    harness: Harness,
) -> None:
    org = await harness.org("acme")
    async with harness.runtime.db.write(None) as conn:
        for statement in REFUSE_ADJUST_AUDIT[conn.dialect.name]:
            await conn.execute(text(statement))
    with pytest.raises(RuntimeError, match="the write failed"):
        await adjust(harness.runtime, org.id, 1_000_000, "unlogged", actor="support@test")
    async with harness.runtime.db.reader.connect() as conn:
        entries = await conn.scalar(select(func.count()).select_from(entries_t))
    assert entries == 0
    assert await harness.balance(org) == (0, 0)


async def test_pages_and_filters(harness: Harness) -> None:
    org = await harness.org("acme")
    admin = harness.token(org, Role.ADMIN)
    first = await mutate(harness, CREATE, admin, name="one")
    second = await mutate(harness, CREATE, harness.token(org, Role.OWNER), name="two")
    await mutate(harness, REVOKE, admin, id=first["apiKey"]["id"])

    page = await audit(harness, admin, first=2)
    assert page["totalCount"] == 4
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await audit(harness, admin, first=2, after=page["pageInfo"]["endCursor"])
    assert [e["action"] for e in nodes(page) + nodes(rest)] == [
        "api_key.revoke",
        "api_key.create",
        "api_key.create",
        "organization.create",
    ]
    assert rest["pageInfo"]["hasNextPage"] is False

    async def actions(**filter: Any) -> list[tuple[str, str]]:
        return [
            (e["action"], e["actor"]) for e in nodes(await audit(harness, admin, filter=filter))
        ]

    assert await actions(targetId=first["apiKey"]["id"]) == [
        ("api_key.revoke", "admin@test"),
        ("api_key.create", "admin@test"),
    ]
    assert await actions(action="api_key.create", actor="owner@test") == [
        ("api_key.create", "owner@test")
    ]
    assert await actions(targetId=second["apiKey"]["id"], action="api_key.revoke") == []

    wallet = to_global_id("Wallet", 1)
    body = await harness.graphql(AUDIT, headers=admin, filter={"targetId": wallet})
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


async def test_only_owners_and_admins_read_the_log(harness: Harness) -> None:
    org = await harness.org("acme")
    key = await harness.key(org)
    owner_view = nodes(await audit(harness, harness.token(org, Role.OWNER)))
    event_id = owner_view[0]["id"]
    assert await audit(harness, harness.token(org, Role.ADMIN)) is not None

    for headers in (
        harness.token(org, Role.MEMBER),
        harness.token(org, Role.VIEWER),
        harness.token(org, Role.SERVICE),
        {"Authorization": f"Bearer {key.secret}"},
    ):
        body = await harness.graphql(AUDIT, headers=headers)
        # The field is null with FORBIDDEN; the rest of the query still answers.
        assert body["data"]["viewer"]["organization"] == {"slug": "acme", "auditEvents": None}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
        assert (await harness.graphql(NODE, headers=headers, id=event_id))["data"] == {"node": None}

    found = await harness.graphql(NODE, headers=harness.token(org, Role.OWNER), id=event_id)
    assert found["data"]["node"] == {"id": event_id, "action": "api_key.create"}


async def test_another_organizations_events_never_appear(harness: Harness) -> None:
    acme, globex = await harness.org("acme"), await harness.org("globex")
    globex_owner = harness.token(globex, Role.OWNER)
    theirs = await mutate(harness, CREATE, globex_owner, name="theirs")
    await mutate(harness, SET_SPEND_CAP, globex_owner, monthlyLimitUsd="1")
    globex_events = nodes(await audit(harness, globex_owner))
    assert len(globex_events) == 3

    acme_owner = harness.token(acme, Role.OWNER)
    ours = await audit(harness, acme_owner)
    assert ours["totalCount"] == 1
    assert [e["target"] for e in nodes(ours)] == [f"organization:{acme.id}"]
    mine = await audit(harness, acme_owner, filter={"targetId": theirs["apiKey"]["id"]})
    assert mine["totalCount"] == 0
    for event in globex_events:
        body = await harness.graphql(NODE, headers=acme_owner, id=event["id"])
        assert body["data"] == {"node": None}

"""What ByteSpike's console does with keys: org-owned keys, reveal, the Test call."""

from __future__ import annotations

from app.auth import Role
from tests.conftest import Harness
from tests.graphql.test_keys import CREATE, ROTATE, authorize, codes, create, member, mutate


async def test_owners_and_admins_create_org_owned_keys_members_may_not(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    admin = harness.token(org, Role.ADMIN)
    created = await create(harness, admin, orgOwned=True)
    assert created["userErrors"] == []
    assert created["apiKey"]["owner"] is None
    allowed = await authorize(harness, created["secret"], "r1")
    assert allowed.status_code == 200, allowed.text
    assert "X-Org-Quota-Remaining-Credits" in allowed.headers

    personal = await create(harness, admin)
    assert personal["apiKey"]["owner"] == "admin@test"
    answer = await authorize(harness, personal["secret"], "r2")
    assert "X-Org-Quota-Remaining-Credits" not in answer.headers

    alice = member(org, "alice")
    refused = await mutate(harness, CREATE, alice, name="k", orgOwned=True)
    assert codes(refused) == [("orgOwned", "FORBIDDEN")]
    assert refused["secret"] is None
    # Nobody owns it, so a member cannot manage it either.
    rotated = await mutate(harness, ROTATE, alice, id=created["apiKey"]["id"])
    assert codes(rotated) == [("id", "FORBIDDEN")]

"""What ByteSpike's console does with keys: org-owned keys, reveal, the Test call."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from app.auth import Role
from app.clock import Clock
from app.settings import Settings
from tests.conftest import Harness, running_app
from tests.graphql.test_keys import (
    CREATE,
    ERRORS,
    ROTATE,
    authorize,
    codes,
    create,
    keys,
    member,
    mutate,
)


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


REVEAL = f"""
mutation($input: RevealApiKeyInput!) {{
  revealApiKey(input: $input) {{ apiKey {{ id }} secret {ERRORS} }}
}}
"""
AUDIT = """
query { viewer { organization { auditEvents(first: 5) { edges { node {
  action actor targetId
} } } } } }
"""


@pytest.fixture
async def vaulted(settings: Settings, clock: Clock) -> AsyncIterator[Harness]:
    """The app keeping secrets encrypted, so owners can reveal them."""
    kept = settings.model_copy(update={"key_encryption_key": Fernet.generate_key().decode()})
    async with running_app(kept, clock) as running:
        yield running


async def test_owners_reveal_a_secret_again_and_it_is_audited(vaulted: Harness) -> None:
    org = await vaulted.org("acme")
    owner = vaulted.token(org, Role.OWNER)
    created = await create(vaulted, vaulted.token(org, Role.ADMIN))
    key_id = created["apiKey"]["id"]
    revealed = await mutate(vaulted, REVEAL, owner, id=key_id)
    assert revealed == {"apiKey": {"id": key_id}, "secret": created["secret"], "userErrors": []}
    body = await vaulted.graphql(AUDIT, headers=owner)
    (latest, *_) = body["data"]["viewer"]["organization"]["auditEvents"]["edges"]
    assert latest["node"] == {"action": "api_key.reveal", "actor": "owner@test", "targetId": key_id}


async def test_reveal_is_refused_to_admins_and_members_and_across_organizations(
    vaulted: Harness,
) -> None:
    org, other = await vaulted.org("acme"), await vaulted.org("other")
    created = await create(vaulted, member(org, "alice"))
    key_id = created["apiKey"]["id"]
    for headers in (vaulted.token(org, Role.ADMIN), member(org, "alice")):
        refused = await mutate(vaulted, REVEAL, headers, id=key_id)
        assert codes(refused) == [(None, "FORBIDDEN")]
        assert refused["secret"] is None
    elsewhere = await mutate(vaulted, REVEAL, vaulted.token(other, Role.OWNER), id=key_id)
    assert codes(elsewhere) == [("id", "NOT_FOUND")]


async def test_reveal_without_an_encryption_key_is_a_clear_user_error(harness: Harness) -> None:
    org = await harness.org("acme")
    owner = harness.token(org, Role.OWNER)
    created = await create(harness, owner)
    refused = await mutate(harness, REVEAL, owner, id=created["apiKey"]["id"])
    assert codes(refused) == [("id", "REVEAL_UNAVAILABLE")]
    assert "key encryption key" in refused["userErrors"][0]["message"]
    assert refused["secret"] is None


async def test_a_configured_prefix_starts_secrets_and_shows_in_listings(
    settings: Settings, clock: Clock
) -> None:
    byts = settings.model_copy(update={"api_key_prefix": "sk-byts"})
    async with running_app(byts, clock) as harness:
        org = await harness.org("acme", grant_usd="1")
        owner = harness.token(org, Role.OWNER)
        created = await create(harness, owner)
        prefix = created["apiKey"]["prefix"]
        assert re.fullmatch(r"sk-byts-[0-9a-f]{8}", prefix)
        assert created["secret"].startswith(f"{prefix}-")
        (listed,) = (await keys(harness, owner))["edges"]
        assert listed["node"]["prefix"] == prefix
        assert (await authorize(harness, created["secret"], "r1")).status_code == 200


def test_the_prefix_setting_must_start_with_sk() -> None:
    with pytest.raises(ValidationError):
        Settings(api_key_prefix="byts")

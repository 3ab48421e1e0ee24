"""The caller, the organization and its wallet over GraphQL: exact money, pages, scoping."""

from __future__ import annotations

from typing import Any

from app.auth import Role
from app.ids import to_global_id
from app.operations import adjust
from tests.conftest import Harness, usage_event

VIEWER = "query { viewer { id role organization { id slug name } } }"

WALLET = """
query {
  viewer { organization { wallet {
    id balance { credits usd } held { credits usd } available { credits usd }
    lots(first: 50) {
      totalCount
      edges { node { id source original { credits } remaining { credits } expiresAt } }
    }
  } } }
}
"""

LEDGER = """
query Ledger($first: Int = 50, $after: String) {
  viewer { organization { wallet { entries(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id kind amount { credits usd } balanceAfter { credits } reference memo } }
  } } } }
}
"""


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def test_viewer_names_the_caller_and_its_organization(harness: Harness) -> None:
    org = await harness.org("acme")
    body = await harness.graphql(VIEWER, headers=harness.token(org, Role.ADMIN))
    assert "errors" not in body
    viewer = body["data"]["viewer"]
    assert viewer["role"] == "ADMIN"
    assert viewer["id"] == "admin@test"
    assert viewer["organization"] == {
        "id": to_global_id("Organization", org.id),
        "slug": "acme",
        "name": "acme",
    }


async def test_no_token_and_a_bad_token_are_unauthenticated(harness: Harness) -> None:
    assert codes(await harness.graphql(VIEWER)) == ["UNAUTHENTICATED"]
    bad = {"Authorization": "Bearer not-a-token"}
    body = await harness.graphql(VIEWER, headers=bad)
    assert codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"] == "the token is not valid"


async def test_balances_past_32_bits_are_exact_strings(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="5000.000001")
    body = await harness.graphql(WALLET, headers=harness.token(org, Role.VIEWER))
    wallet = body["data"]["viewer"]["organization"]["wallet"]
    assert wallet["balance"] == {"credits": "5000000001", "usd": "5000.000001"}
    assert wallet["held"] == {"credits": "0", "usd": "0.000000"}
    assert wallet["available"]["credits"] == "5000000001"
    (lot,) = [edge["node"] for edge in wallet["lots"]["edges"]]
    assert lot["source"] == "ADJUSTMENT"
    assert lot["original"] == lot["remaining"] == {"credits": "5000000001"}
    assert lot["expiresAt"] is None
    assert wallet["lots"]["totalCount"] == 1


async def test_ledger_pages_newest_first_without_gaps(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    for cents in range(1, 5):
        await adjust(harness.runtime, org.id, -cents * 10_000, f"fee {cents}", actor="test")
    headers = harness.token(org, Role.OWNER)

    seen: list[dict[str, Any]] = []
    after = None
    while True:
        body = await harness.graphql(LEDGER, headers=headers, first=2, after=after)
        entries = body["data"]["viewer"]["organization"]["wallet"]["entries"]
        assert entries["totalCount"] == 5
        seen += [edge["node"] for edge in entries["edges"]]
        if not entries["pageInfo"]["hasNextPage"]:
            break
        after = entries["pageInfo"]["endCursor"]
        assert after == entries["edges"][-1]["cursor"]

    assert [e["amount"]["credits"] for e in seen] == [
        "-40000",
        "-30000",
        "-20000",
        "-10000",
        "10000000",
    ]
    assert [e["balanceAfter"]["credits"] for e in seen] == [
        "9900000",
        "9940000",
        "9970000",
        "9990000",
        "10000000",
    ]
    assert seen[0]["memo"] == "fee 4"
    assert len({e["id"] for e in seen}) == 5


async def test_page_size_and_cursor_are_checked(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    headers = harness.token(org, Role.OWNER)
    assert codes(await harness.graphql(LEDGER, headers=headers, first=101)) == ["BAD_USER_INPUT"]
    assert codes(await harness.graphql(LEDGER, headers=headers, first=0)) == ["BAD_USER_INPUT"]
    body = await harness.graphql(LEDGER, headers=headers, after="bm90IGEgY3Vyc29y")
    assert codes(body) == ["BAD_USER_INPUT"]
    # A huge number is not a 32-bit Int: GraphQL refuses it before any resolver runs.
    body = await harness.graphql(LEDGER, headers=headers, first=2**40)
    assert body["data"] is None
    assert body["errors"]


NODE = """
query($id: ID!) {
  node(id: $id) {
    id
    ... on LedgerEntry { kind amount { credits } }
    ... on Organization { slug }
    ... on Wallet { balance { credits } }
  }
}
"""


async def test_node_finds_own_objects_and_never_another_organizations(harness: Harness) -> None:
    acme = await harness.org("acme", grant_usd="1")
    other = await harness.org("other", grant_usd="2")
    acme_headers = harness.token(acme, Role.VIEWER)
    other_entries = await harness.graphql(LEDGER, headers=harness.token(other, Role.OWNER))
    other_entry_id = other_entries["data"]["viewer"]["organization"]["wallet"]["entries"]["edges"][
        0
    ]["node"]["id"]
    own_entries = await harness.graphql(LEDGER, headers=acme_headers)
    own_entry_id = own_entries["data"]["viewer"]["organization"]["wallet"]["entries"]["edges"][0][
        "node"
    ]["id"]

    body = await harness.graphql(NODE, headers=acme_headers, id=own_entry_id)
    assert body["data"]["node"] == {
        "id": own_entry_id,
        "kind": "ADJUSTMENT",
        "amount": {"credits": "1000000"},
    }
    own_org = to_global_id("Organization", acme.id)
    body = await harness.graphql(NODE, headers=acme_headers, id=own_org)
    assert body["data"]["node"] == {"id": own_org, "slug": "acme"}

    for foreign in (
        other_entry_id,
        to_global_id("Organization", other.id),
        to_global_id("Wallet", other.id),
        to_global_id("LedgerEntry", 999_999),
        to_global_id("NoSuchType", 1),
        "not base64 at all",
    ):
        body = await harness.graphql(NODE, headers=acme_headers, id=foreign)
        assert body == {"data": {"node": None}}, foreign


async def test_spend_cap_shows_the_limit_and_this_months_usage(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="10")
    key = await harness.key(org)
    await harness.usage(org, usage_event(key.id, "r1"))
    query = """
      query { viewer { organization {
        spendCap { monthlyLimit { usd } spentThisMonth { credits } }
      } } }
    """
    body = await harness.graphql(query, headers=harness.token(org, Role.MEMBER))
    cap = body["data"]["viewer"]["organization"]["spendCap"]
    assert cap == {"monthlyLimit": None, "spentThisMonth": {"credits": "6000"}}


async def test_an_api_key_reads_until_it_is_revoked(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    key = await harness.key(org)
    headers = {"Authorization": f"Bearer {key.secret}"}
    body = await harness.graphql(VIEWER, headers=headers)
    assert body["data"]["viewer"]["role"] == "API_KEY"

    await harness.revoke(org, key)
    body = await harness.graphql(VIEWER, headers=headers)
    assert codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"] == "the API key is revoked"


async def test_an_api_key_sees_the_balance_but_not_the_ledger(harness: Harness) -> None:
    """The ledger lists every key's calls (``usage:<request id>``); a key sees its own."""
    org = await harness.org("acme", grant_usd="1")
    key, other = await harness.key(org), await harness.key(org)
    await harness.usage(org, usage_event(other.id, "theirs"))
    owner = harness.token(org, Role.OWNER)
    entries = (
        "{ viewer { organization { wallet { entries(first: 5) { edges { node { id } } } } } } }"
    )
    body = await harness.graphql(entries, headers=owner)
    ids = [
        e["node"]["id"]
        for e in body["data"]["viewer"]["organization"]["wallet"]["entries"]["edges"]
    ]
    assert len(ids) == 2

    headers = {"Authorization": f"Bearer {key.secret}"}
    body = await harness.graphql(entries, headers=headers)
    assert codes(body) == ["FORBIDDEN"]
    node = "query ($id: ID!) { node(id: $id) { id } }"
    for entry_id in ids:
        assert (await harness.graphql(node, headers=owner, id=entry_id))["data"]["node"]
        assert (await harness.graphql(node, headers=headers, id=entry_id))["data"]["node"] is None
    balance = "{ viewer { organization { wallet { balance { credits } } } } }"
    body = await harness.graphql(balance, headers=headers)
    assert body["data"]["viewer"]["organization"]["wallet"]["balance"]["credits"] == "994000"

"""8bit-ai's "hard cap on monthly spending": set through setSpendCap in the
organization's unit (plan credits on 8bit-ai, USD elsewhere), which SpendCap.unit says;
at the cap non-critical actions pause and critical ones keep running."""

from __future__ import annotations

from app.auth import Role
from app.ids import to_global_id
from app.operations import create_organization
from app.orgs.service import OrgRef
from tests.conftest import Harness
from tests.plans.test_enforcement import refused, subscribe

SET = """
mutation($limit: Decimal) {
  setSpendCap(input: {monthlyLimitUsd: $limit}) {
    spendCap { unit monthlyLimit { credits usd } spentThisMonth { usd } }
    userErrors { code }
  }
}
"""
READ = "{ viewer { organization { spendCap { unit monthlyLimit { usd } } } } }"


async def set_cap(harness: Harness, org: OrgRef, limit: str) -> dict[str, object]:
    body = await harness.graphql(SET, headers=harness.token(org, Role.ADMIN), limit=limit)
    assert body["data"]["setSpendCap"]["userErrors"] == [], body
    cap: dict[str, object] = body["data"]["setSpendCap"]["spendCap"]
    return cap


async def test_an_8bit_cap_counts_plan_credits_and_pauses_only_non_critical_actions(
    harness: Harness,
) -> None:
    org = await create_organization(harness.runtime, slug="agents", rate_card="8bit-ai")
    await subscribe(harness, org, "8bit-starter")
    # 30 plan credits: three GPT-4 requests at 10 credits each, not $30.
    assert await set_cap(harness, org, "30") == {
        "unit": "credit",
        "monthlyLimit": {"credits": "30000000", "usd": "30.000000"},
        "spentThisMonth": {"usd": "0.000000"},
    }
    key = await harness.key(org)
    api_key_id = to_global_id("ApiKey", key.id)
    events = [{"request_id": f"g{n}", "api_key_id": api_key_id, "model": "gpt-4"} for n in range(3)]
    await harness.usage(org, *events)
    capped = await harness.authorize(key, "g3", model="gpt-4")
    assert refused(capped, 429, "spend_cap_reached")
    crud = await harness.authorize(key, "crud", model="8bit/api", hold_usd="0.1")
    assert crud.status_code == 200, crud.text


async def test_a_usd_organization_s_cap_is_usd(harness: Harness) -> None:
    org = await harness.org("spike", grant_usd="5")
    cap = await set_cap(harness, org, "20")
    assert (cap["unit"], cap["monthlyLimit"]) == (
        "usd",
        {"credits": "20000000", "usd": "20.000000"},
    )
    shown = await harness.graphql(READ, headers=harness.token(org, Role.VIEWER))
    assert shown["data"]["viewer"]["organization"]["spendCap"]["unit"] == "usd"

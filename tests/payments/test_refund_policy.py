"""Refunds follow the plan's policy: ByteSpike refunds by hand, Bytez's credits are
non-refundable (refused with a userError, nothing changed)."""

from __future__ import annotations

from typing import Any

import pytest

from app.auth import Role
from app.orgs.service import OrgRef
from tests.conftest import Harness
from tests.payments.test_fake_provider import create_top_up
from tests.plans.test_enforcement import subscribe

REFUND = """
mutation ($input: RefundTopUpInput!) {
  refundTopUp(input: $input) {
    topUp { refunded { usd } }
    userErrors { field code message }
  }
}
"""
PLAN = "{ viewer { organization { subscription { plan { code refundable } } } } }"


async def refund(harness: Harness, org: OrgRef, top_up_id: str) -> dict[str, Any]:
    body = await harness.graphql(
        REFUND, headers=harness.token(org, Role.ADMIN), input={"topUpId": top_up_id}
    )
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["refundTopUp"]
    return payload


async def paid_top_up(harness: Harness, org: OrgRef, plan: str) -> str:
    await subscribe(harness, org, plan)
    paid = await create_top_up(harness, harness.token(org, Role.OWNER), "10")
    assert paid["topUp"]["status"] == "SUCCEEDED", paid
    top_up_id: str = paid["topUp"]["id"]
    return top_up_id


@pytest.mark.parametrize("plan", ["bytez-free", "bytez-payg"])
async def test_bytez_credits_are_non_refundable(harness: Harness, plan: str) -> None:
    org = await harness.org("bytez")
    top_up_id = await paid_top_up(harness, org, plan)
    before = await harness.balance(org)
    result = await refund(harness, org, top_up_id)
    assert result["topUp"] is None
    [error] = result["userErrors"]
    assert error["code"] == "NOT_REFUNDABLE"
    assert error["field"] == "topUpId"
    assert "non-refundable" in error["message"]
    assert await harness.balance(org) == before
    shown = await harness.graphql(PLAN, headers=harness.token(org, Role.VIEWER))
    assert shown["data"]["viewer"]["organization"]["subscription"]["plan"] == {
        "code": plan,
        "refundable": False,
    }


async def test_bytespike_refunds_by_hand(harness: Harness) -> None:
    org = await harness.org("spike")
    top_up_id = await paid_top_up(harness, org, "bytespike-pro")
    result = await refund(harness, org, top_up_id)
    assert result["userErrors"] == []
    assert result["topUp"]["refunded"]["usd"] == "10.000000"

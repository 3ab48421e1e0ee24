"""The 402 a gateway passes on: Bytez's callers get the page's message word for word."""

from __future__ import annotations

from app.money import parse_usd
from app.operations import create_organization
from tests.conftest import Harness

BYTEZ_MESSAGE = "Insufficient credits. Please add credits to continue."


async def test_a_bytez_caller_gets_the_page_s_402_body(harness: Harness) -> None:
    org = await create_organization(
        harness.runtime, slug="bytez", grant=parse_usd("1"), rate_card="bytez"
    )
    key = await harness.key(org)
    refused = await harness.authorize(key, "r1", hold_usd="2")
    assert refused.status_code == 402
    body = refused.json()
    assert (body["status"], body["error"]) == (402, "Payment Required")
    assert body["message"] == BYTEZ_MESSAGE
    assert body["code"] == "insufficient_balance"  # the extra field stays


async def test_other_cards_keep_the_detailed_message(harness: Harness) -> None:
    org = await harness.org(grant_usd="1")
    key = await harness.key(org)
    refused = await harness.authorize(key, "r1", hold_usd="2")
    assert refused.status_code == 402
    assert "1.000000 USD available" in refused.json()["message"]

"""Grants and promo codes over GraphQL: the mutations, and codes made as operators do."""

from __future__ import annotations

from typing import Any

from app.grants.promos import PromoTerms, create_promo
from app.money import parse_usd
from tests.conftest import Harness

ENTRY = "entry { kind amount { credits usd } balanceAfter { credits } reference memo }"
LOT = "lot { remaining { credits } expiresAt }"
ERRORS = "userErrors { field message code }"
GRANT = f"""
mutation GrantCredits($input: GrantCreditsInput!) {{
  grantCredits(input: $input) {{ {ENTRY} {LOT} {ERRORS} }}
}}
"""
REDEEM = f"""
mutation RedeemPromoCode($input: RedeemPromoCodeInput!) {{
  redeemPromoCode(input: $input) {{ {ENTRY} {LOT} {ERRORS} }}
}}
"""
STATE = """
{ viewer { organization {
  wallet { balance { credits usd } purchasedLast28Days { credits } entries(first: 50) {
    totalCount edges { node { kind amount { credits } reference memo } } } }
  billingTransactions(first: 50) { edges { node { kind amount { credits } credits { credits } } } }
} } }
"""


async def grant(harness: Harness, headers: dict[str, str], **input: Any) -> dict[str, Any]:
    body = await harness.graphql(GRANT, headers, input=input)
    assert "errors" not in body, body
    return body["data"]["grantCredits"]  # type: ignore[no-any-return]


async def redeem(harness: Harness, headers: dict[str, str], code: str) -> dict[str, Any]:
    body = await harness.graphql(REDEEM, headers, input={"code": code})
    assert "errors" not in body, body
    return body["data"]["redeemPromoCode"]  # type: ignore[no-any-return]


async def wallet_state(harness: Harness, headers: dict[str, str]) -> dict[str, Any]:
    body = await harness.graphql(STATE, headers)
    assert "errors" not in body, body
    return body["data"]["viewer"]["organization"]  # type: ignore[no-any-return]


def codes(payload: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


async def make_promo(harness: Harness, code: str, amount_usd: str = "10", **terms: Any) -> str:
    """A promo code, made as ``creditgraph promo create`` makes it."""
    runtime = harness.runtime
    async with runtime.db.write(None) as conn:
        return await create_promo(
            conn,
            code,
            PromoTerms(parse_usd(amount_usd), **terms),
            actor="cli",
            now=runtime.clock.now(),
        )

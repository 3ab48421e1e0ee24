"""A promo code limited to 100 redemptions, raced by 300 redemptions split across two
real ``creditgraph serve`` processes on one PostgreSQL database: exactly 100 succeed,
none twice for one organization, and ``creditgraph verify`` (the CLI) finds the books whole.
Each instance has its own writer: the code's row lock keeps the count exact, and behind
it the redemptions' unique numbers."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx

from app.auth import Role, issue_token
from app.grants.promos import PromoTerms, create_promo
from app.money import CREDITS_PER_USD
from app.operations import create_organization
from app.runtime import Runtime
from app.settings import Settings
from tests import servers
from tests.servers import Instance

WAIT = 30  # only to notice a hang
REDEEM = """
mutation($input: RedeemPromoCodeInput!) {
  redeemPromoCode(input: $input) { entry { reference } userErrors { code } }
}
"""


def _setup(env: dict[str, str], organizations: int) -> list[str]:
    """The organizations and the code; an owner token for each organization."""

    async def setup() -> list[str]:
        settings = Settings(
            database_url=env["CREDITGRAPH_DATABASE_URL"],
            state_dir=Path(env["CREDITGRAPH_STATE_DIR"]),
            jwt_secret=servers.JWT_SECRET,
            run_jobs=False,
        )
        runtime = await Runtime.start(settings)
        try:
            slugs = [
                (await create_organization(runtime, slug=f"org-{n}")).slug
                for n in range(organizations)
            ]
            async with runtime.db.write(None) as conn:
                terms = PromoTerms(CREDITS_PER_USD, max_redemptions=100)
                await create_promo(conn, "HUNDRED", terms, actor="cli", now=runtime.clock.now())
        finally:
            await runtime.stop()
        return [
            issue_token(
                servers.JWT_SECRET,
                org=slug,
                role=Role.OWNER,
                subject=f"owner@{slug}",
                ttl=timedelta(hours=1),
            )
            for slug in slugs
        ]

    return asyncio.run(setup())


def test_300_redemptions_across_two_instances_give_exactly_100(
    env: dict[str, str], pair: tuple[Instance, Instance]
) -> None:
    tokens = _setup(env, 150)

    async def race() -> list[tuple[int, str]]:
        limits = httpx.Limits(max_connections=150)
        clients = [
            httpx.AsyncClient(base_url=i.url, limits=limits, timeout=WAIT * 2, trust_env=False)
            for i in pair
        ]
        tries = [n for n in range(len(tokens)) for _ in range(2)]
        try:
            responses = await asyncio.gather(
                *(
                    # An organization's two tries go to different instances.
                    clients[i % 2].post(
                        "/graphql",
                        json={"query": REDEEM, "variables": {"input": {"code": "hundred"}}},
                        headers={"Authorization": f"Bearer {tokens[n]}"},
                    )
                    for i, n in enumerate(tries)
                )
            )
        finally:
            for client in clients:
                await client.aclose()
        outcomes = []
        for n, response in zip(tries, responses, strict=True):
            assert response.status_code == 200, response.text
            errors = response.json()["data"]["redeemPromoCode"]["userErrors"]
            outcomes.append((n, errors[0]["code"] if errors else "ok"))
        return outcomes

    outcomes = asyncio.run(race())
    assert Counter(outcome for _, outcome in outcomes) == {
        "ok": 100,
        "PROMO_CODE_ALREADY_REDEEMED": 100,
        "PROMO_CODE_EXHAUSTED": 100,
    }
    assert set(Counter(n for n, outcome in outcomes if outcome == "ok").values()) == {1}
    verified = servers.verify(env)
    assert verified.returncode == 0, verified.stdout + verified.stderr

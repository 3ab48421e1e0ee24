"""Promo codes under real concurrency, over HTTP: of N concurrent redemptions exactly as
many succeed as the code's limits allow, in all and per organization; the books verify."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.auth import Role
from app.orgs.service import OrgRef
from tests.conftest import Harness
from tests.grants.conftest import make_promo, redeem

_names = itertools.count()


async def _race(harness: Harness, code: str, attempts: dict[OrgRef, int]) -> list[tuple[int, str]]:
    """Every attempt at once: (organization id, outcome: "ok" or the userError's code)."""
    tries = [org for org, times in attempts.items() for _ in range(times)]
    payloads = await asyncio.gather(
        *(redeem(harness, harness.token(org, Role.OWNER), code.lower()) for org in tries)
    )
    return [
        (org.id, p["userErrors"][0]["code"] if p["userErrors"] else "ok")
        for org, p in zip(tries, payloads, strict=True)
    ]


async def test_300_concurrent_redemptions_of_a_code_limited_to_100_give_exactly_100(
    harness: Harness,
) -> None:
    orgs = [await harness.org(f"org-{n}") for n in range(150)]
    await make_promo(harness, "HUNDRED", "1", max_redemptions=100)
    outcomes = await _race(harness, "HUNDRED", {org: 2 for org in orgs})
    # Each organization that got it finds its second try already redeemed; the others
    # find the code exhausted, twice.
    assert Counter(outcome for _, outcome in outcomes) == {
        "ok": 100,
        "PROMO_CODE_ALREADY_REDEEMED": 100,
        "PROMO_CODE_EXHAUSTED": 100,
    }
    winners = Counter(org_id for org_id, outcome in outcomes if outcome == "ok")
    assert set(winners.values()) == {1}
    balances = [(await harness.balance(org))[0] for org in orgs]
    assert sorted(set(balances)) == [0, 1_000_000]
    assert sum(balances) == 100 * 1_000_000
    assert await harness.books() == []


async def test_one_organization_racing_itself_gets_its_limit(harness: Harness) -> None:
    org = await harness.org("acme")
    await make_promo(harness, "THRICE", "2", per_organization=3)
    outcomes = await _race(harness, "THRICE", {org: 50})
    assert Counter(outcome for _, outcome in outcomes) == {
        "ok": 3,
        "PROMO_CODE_ALREADY_REDEEMED": 47,
    }
    assert await harness.balance(org) == (6_000_000, 0)
    assert await harness.books() == []


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    attempts=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    max_redemptions=st.none() | st.integers(1, 20),
    per_org=st.integers(1, 4),
)
async def test_concurrent_redemptions_give_what_the_limits_allow(
    harness: Harness, attempts: list[int], max_redemptions: int | None, per_org: int
) -> None:
    example = next(_names)
    orgs = [await harness.org(f"x{example}-{n}") for n in range(len(attempts))]
    code = await make_promo(
        harness,
        f"RACE-{example}",
        "0.5",
        max_redemptions=max_redemptions,
        per_organization=per_org,
    )
    outcomes = await _race(harness, code, dict(zip(orgs, attempts, strict=True)))

    wanted = {org.id: min(times, per_org) for org, times in zip(orgs, attempts, strict=True)}
    total = sum(wanted.values())
    if max_redemptions is not None:
        total = min(total, max_redemptions)
    got = Counter(org_id for org_id, outcome in outcomes if outcome == "ok")
    assert sum(got.values()) == total
    assert all(got[org_id] <= want for org_id, want in wanted.items())
    if max_redemptions is None or sum(wanted.values()) <= max_redemptions:
        assert got == {org_id: want for org_id, want in wanted.items()}
    refusals = {outcome for _, outcome in outcomes if outcome != "ok"}
    assert refusals <= {"PROMO_CODE_ALREADY_REDEEMED", "PROMO_CODE_EXHAUSTED"}
    for org in orgs:
        assert (await harness.balance(org))[0] == got[org.id] * 500_000
    assert await harness.books() == []

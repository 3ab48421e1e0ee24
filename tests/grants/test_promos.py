"""Promo codes: operators make them on the command line (on either engine); owners and
admins redeem them with redeemPromoCode, in any case, as GRANT entries whose credits
expire as the code says; every limit is a userError that changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from app import maintenance
from app.auth import Role
from app.cli import main
from app.clock import FrozenClock
from app.ledger.state import promo_codes_t
from app.operations import create_organization
from app.settings import Settings
from tests.conftest import JWT_SECRET, Harness
from tests.grants.conftest import REDEEM, codes, make_promo, redeem, wallet_state
from tests.graphql.test_audit import audit, nodes


@pytest.fixture
def clock() -> FrozenClock:
    """The app's clock starts at the wall clock's time, the command line's, then stays."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


def creditgraph(settings: Settings, *args: str) -> Result:
    """The ``creditgraph`` command on the test's database (SQLite or PostgreSQL), in this
    process: an interpreter's start for each would take longer than the rest of a test."""
    env = {
        "CREDITGRAPH_DATABASE_URL": settings.database_url,
        "CREDITGRAPH_STATE_DIR": str(settings.state_dir),
        "CREDITGRAPH_JWT_SECRET": JWT_SECRET,
    }
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


async def run(settings: Settings, *args: str) -> Result:
    """``creditgraph`` beside the running app: on a thread, with an event loop of its own."""
    return await asyncio.to_thread(creditgraph, settings, *args)


async def test_a_code_made_on_the_command_line_is_redeemed_in_any_case(
    harness: Harness, settings: Settings, clock: FrozenClock
) -> None:
    made = await run(
        settings,
        "promo",
        "create",
        "Welcome-10",
        "--amount-usd",
        "10",
        "--credits-expire-days",
        "14",
        "--max-redemptions",
        "100",
        "--expires-at",
        "2030-01-31T23:59:59Z",
    )
    assert made.exit_code == 0, made.output
    assert made.stdout == "created promo code WELCOME-10\n"
    org = await harness.org("acme", grant_usd="1")
    admin = harness.token(org, Role.ADMIN)

    given = await redeem(harness, admin, "  welcome-10 ")
    assert given["userErrors"] == []
    assert given["entry"] == {
        "kind": "GRANT",
        "amount": {"credits": "10000000", "usd": "10.000000"},
        "balanceAfter": {"credits": "11000000"},
        "reference": "promo:WELCOME-10:1",
        "memo": "promo code WELCOME-10",
    }
    expires = clock.at + timedelta(days=14)
    assert given["lot"] == {"remaining": {"credits": "10000000"}, "expiresAt": expires.isoformat()}
    state = await wallet_state(harness, admin)
    assert state["billingTransactions"]["edges"][0]["node"]["kind"] == "GRANT"
    assert state["wallet"]["purchasedLast28Days"]["credits"] == "0"
    (logged, *_) = nodes(await audit(harness, admin))
    assert (logged["action"], logged["actor"], logged["after"]) == (
        "promo.redeem",
        "admin@test",
        {
            "amount": 10_000_000,
            "reason": "promo code WELCOME-10",
            "expires_at": expires.isoformat(),
            "balance": 11_000_000,
            "code": "WELCOME-10",
            "number": 1,
        },
    )
    listed = await run(settings, "promo", "list")
    assert listed.stdout == (
        "WELCOME-10  10.000000 USD (credits expire 14 days after redemption)  redeemed 1 of "
        "100, 1 per organization  open until 2030-01-31T23:59:59+00:00\n"
    )
    assert (await run(settings, "verify")).exit_code == 0

    clock.advance(timedelta(days=14))
    await maintenance.run_once(harness.runtime)
    assert await harness.balance(org) == (1_000_000, 0)
    assert await harness.books() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--amount-usd", "5"], "must be 3 to 64 letters"),
        (["a b c", "--amount-usd", "5"], "must be 3 to 64 letters"),
        (["CODE", "--amount-usd", "0"], "greater than zero"),
        (["CODE", "--amount-usd", "-1"], "must not be negative"),
        (["CODE", "--amount-usd", "1.0000001"], "more than 6 decimal places"),
        (["CODE", "--amount-usd", "5", "--max-redemptions", "0"], "max_redemptions"),
        (["CODE", "--amount-usd", "5", "--per-org", "0"], "per_organization"),
        (["CODE", "--amount-usd", "5", "--credits-expire-days", "0"], "credits_expire_days"),
        (["CODE", "--amount-usd", "5", "--expires-at", "2020-01-01T00:00:00Z"], "future"),
        (["CODE", "--amount-usd", "5", "--expires-at", "2027-01-01T00:00:00"], "time zone"),
        (["CODE", "--amount-usd", "5", "--expires-at", "soon"], "ISO 8601"),
        (["CODE", "--amount-usd", "5", "--unit", "eur"], "eur"),
    ],
)
def test_the_command_line_refuses_bad_codes(
    settings: Settings, args: list[str], message: str
) -> None:
    refused = creditgraph(settings, "promo", "create", *args)
    assert refused.exit_code != 0
    assert message in refused.stderr


def test_codes_are_unique_whatever_their_case(settings: Settings) -> None:
    assert creditgraph(settings, "promo", "create", "SPRING", "--amount-usd", "5").exit_code == 0
    again = creditgraph(settings, "promo", "create", "spring", "--amount-usd", "7")
    assert again.exit_code != 0
    assert "promo code SPRING exists" in again.stderr


async def test_each_limit_refuses_with_its_own_code(harness: Harness, clock: FrozenClock) -> None:
    orgs = [await harness.org(f"org-{n}") for n in range(3)]
    owner = [harness.token(org, Role.OWNER) for org in orgs]
    await make_promo(harness, "TWICE", max_redemptions=2)
    await make_promo(harness, "THRICE", "1", per_organization=3)
    await make_promo(harness, "BRIEF", expires_at=clock.at + timedelta(hours=1))

    assert codes(await redeem(harness, owner[0], "nope")) == [("code", "NOT_FOUND")]
    assert codes(await redeem(harness, owner[0], "x" * 10_000)) == [("code", "NOT_FOUND")]
    assert (await redeem(harness, owner[0], "twice"))["userErrors"] == []
    assert codes(await redeem(harness, owner[0], "TWICE")) == [
        ("code", "PROMO_CODE_ALREADY_REDEEMED")
    ]
    assert (await redeem(harness, owner[1], "twice"))["userErrors"] == []
    exhausted = await redeem(harness, owner[2], "twice")
    assert codes(exhausted) == [("code", "PROMO_CODE_EXHAUSTED")]
    assert exhausted["userErrors"][0]["message"] == "TWICE has been redeemed as often as it may"
    for _ in range(3):
        assert (await redeem(harness, owner[2], "thrice"))["userErrors"] == []
    assert codes(await redeem(harness, owner[2], "thrice")) == [
        ("code", "PROMO_CODE_ALREADY_REDEEMED")
    ]
    clock.advance(timedelta(hours=1))
    assert codes(await redeem(harness, owner[0], "brief")) == [("code", "PROMO_CODE_EXPIRED")]

    balances = [(await harness.balance(org))[0] for org in orgs]
    assert balances == [10_000_000, 10_000_000, 3_000_000]
    assert await harness.books() == []


async def test_a_refused_redemption_changes_nothing(harness: Harness) -> None:
    org = await harness.org("acme")
    owner = harness.token(org, Role.OWNER)
    await make_promo(harness, "ONCE")
    assert (await redeem(harness, owner, "once"))["userErrors"] == []
    before = await wallet_state(harness, owner)
    logged = (await audit(harness, owner))["totalCount"]
    assert codes(await redeem(harness, owner, "once")) == [("code", "PROMO_CODE_ALREADY_REDEEMED")]
    assert await wallet_state(harness, owner) == before
    assert (await audit(harness, owner))["totalCount"] == logged


async def test_an_ended_code_is_expired_and_its_credits_stay(
    harness: Harness, settings: Settings, clock: FrozenClock
) -> None:
    orgs = [await harness.org(f"org-{n}") for n in range(2)]
    await make_promo(harness, "LEAKED")
    assert (await redeem(harness, harness.token(orgs[0], Role.OWNER), "leaked"))["entry"]
    ended = await run(settings, "promo", "end", "leaked")
    assert ended.stdout == "promo code LEAKED can no longer be redeemed\n"
    clock.at = datetime.now(UTC)  # when the command ran, on the wall clock
    late = await redeem(harness, harness.token(orgs[1], Role.OWNER), "LEAKED")
    assert codes(late) == [("code", "PROMO_CODE_EXPIRED")]
    assert await harness.balance(orgs[0]) == (10_000_000, 0)
    unknown = await run(settings, "promo", "end", "nope")
    assert unknown.exit_code != 0
    assert "no promo code NOPE" in unknown.stderr


async def test_a_code_credits_only_wallets_of_its_unit(harness: Harness) -> None:
    """A USD code is no use to a plan-credit wallet (8bit-ai), nor the reverse; a code in
    plan credits grants them."""
    usd = await harness.org("acme")
    agents = await create_organization(harness.runtime, slug="agents", rate_card="8bit-ai")
    await make_promo(harness, "DOLLARS", "10")
    await make_promo(harness, "CREDITS", "1000", unit="credit")
    refused = await redeem(harness, harness.token(agents, Role.OWNER), "dollars")
    assert codes(refused) == [("code", "PROMO_CODE_NOT_APPLICABLE")]
    assert refused["userErrors"][0]["message"] == (
        "DOLLARS grants USD; your organization's wallet counts plan credits"
    )
    assert codes(await redeem(harness, harness.token(usd, Role.OWNER), "credits")) == [
        ("code", "PROMO_CODE_NOT_APPLICABLE")
    ]
    given = await redeem(harness, harness.token(agents, Role.OWNER), "credits")
    assert given["entry"]["amount"] == {"credits": "1000000000", "usd": "1000.000000"}


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER, Role.SERVICE])
async def test_only_owners_and_admins_redeem(harness: Harness, role: Role) -> None:
    org = await harness.org("acme")
    await make_promo(harness, "OWNERS")
    assert codes(await redeem(harness, harness.token(org, role), "owners")) == [(None, "FORBIDDEN")]
    assert await harness.balance(org) == (0, 0)


async def test_unauthenticated_redemption_is_refused(harness: Harness) -> None:
    body = await harness.graphql(REDEEM, input={"code": "ANY"})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_verify_finds_a_code_whose_counter_drifted(harness: Harness) -> None:
    org = await harness.org("acme")
    await make_promo(harness, "DRIFT", max_redemptions=5)
    assert (await redeem(harness, harness.token(org, Role.OWNER), "drift"))["entry"]
    assert await harness.books() == []
    async with harness.runtime.db.write(None) as conn:
        await conn.execute(update(promo_codes_t).values(redemptions=2))
    assert await harness.books() == ["promo code DRIFT: counts 2 redemptions, 1 recorded"]

"""grantCredits: the platform (its service token, never the organization's own people)
gives credits with a reason and an optional expiry, as
a GRANT entry and lot, a GRANT billing transaction and a wallet.grant audit record; bad
input is a userError that changes nothing; the credits expire when told; verify balances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app import maintenance
from app.auth import Role
from app.clock import FrozenClock
from app.operations import create_organization
from tests.conftest import Harness
from tests.grants.conftest import GRANT, codes, grant, wallet_state
from tests.graphql.test_audit import audit, nodes

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


async def test_the_platform_grants_credits_that_expire_when_told(
    harness: Harness, clock: FrozenClock
) -> None:
    org = await harness.org("acme", grant_usd="1")
    service = harness.token(org, Role.SERVICE)  # the platform's
    admin = harness.token(org, Role.ADMIN)
    expires = T0 + timedelta(days=30)
    given = await grant(
        harness,
        service,
        amountUsd="25.5",
        reason="  Launch credit for the beta  ",
        expiresAt=expires.isoformat(),
    )
    assert given["userErrors"] == []
    assert given["entry"] == {
        "kind": "GRANT",
        "amount": {"credits": "25500000", "usd": "25.500000"},
        "balanceAfter": {"credits": "26500000"},
        "reference": "grant:service@test",
        "memo": "Launch credit for the beta",
    }
    assert given["lot"] == {"remaining": {"credits": "25500000"}, "expiresAt": expires.isoformat()}
    state = await wallet_state(harness, admin)
    assert state["wallet"]["balance"]["credits"] == "26500000"
    # Given, not bought: no unlock tier moves for it.
    assert state["wallet"]["purchasedLast28Days"]["credits"] == "0"
    assert state["billingTransactions"]["edges"][0]["node"] == {
        "kind": "GRANT",
        "amount": {"credits": "25500000"},
        "credits": {"credits": "25500000"},
    }
    (logged, *_) = nodes(await audit(harness, admin))
    assert (logged["action"], logged["actor"], logged["before"], logged["after"]) == (
        "wallet.grant",
        "service@test",
        {"balance": 1_000_000},
        {
            "amount": 25_500_000,
            "reason": "Launch credit for the beta",
            "expires_at": expires.isoformat(),
            "balance": 26_500_000,
        },
    )
    assert await harness.books() == []

    clock.advance(timedelta(days=30))
    await maintenance.run_once(harness.runtime)
    assert await harness.balance(org) == (1_000_000, 0)  # the grant expired, the rest stays
    assert await harness.books() == []


async def test_granted_credits_without_an_expiry_never_expire(harness: Harness) -> None:
    org = await harness.org("acme")
    service = harness.token(org, Role.SERVICE)  # the platform's
    given = await grant(harness, service, amountUsd="0.000001", reason="x")
    assert given["userErrors"] == []
    assert given["lot"] == {"remaining": {"credits": "1"}, "expiresAt": None}


async def test_a_plan_credit_wallet_is_granted_plan_credits(harness: Harness) -> None:
    """amountUsd counts the organization's unit, as its balance does: 8bit-ai's plan credits."""
    org = await create_organization(harness.runtime, slug="agents", rate_card="8bit-ai")
    service = harness.token(org, Role.SERVICE)  # the platform's
    owner = harness.token(org, Role.OWNER)
    given = await grant(harness, service, amountUsd="1000", reason="goodwill")
    assert given["entry"]["amount"] == {"credits": "1000000000", "usd": "1000.000000"}
    body = await harness.graphql(
        "{ viewer { organization { spendCap { unit } wallet { balance { usd } } } } }", owner
    )
    assert body["data"]["viewer"]["organization"] == {
        "spendCap": {"unit": "credit"},
        "wallet": {"balance": {"usd": "1000.000000"}},
    }


@pytest.mark.parametrize(
    ("input", "expected"),
    [
        ({"amountUsd": "0"}, [("amountUsd", "INVALID_AMOUNT")]),
        ({"amountUsd": "-5"}, [("amountUsd", "INVALID_AMOUNT")]),
        ({"amountUsd": "1.0000001"}, [("amountUsd", "INVALID_AMOUNT")]),
        ({"reason": ""}, [("reason", "INVALID_INPUT")]),
        ({"reason": "   "}, [("reason", "INVALID_INPUT")]),
        ({"reason": "x" * 501}, [("reason", "INVALID_INPUT")]),
        ({"expiresAt": (T0 - timedelta(seconds=1)).isoformat()}, [("expiresAt", "INVALID_INPUT")]),
        ({"expiresAt": T0.isoformat()}, [("expiresAt", "INVALID_INPUT")]),
        ({"expiresAt": "2027-01-01T00:00:00"}, [("expiresAt", "INVALID_INPUT")]),  # no zone
    ],
    ids=[
        "zero",
        "negative",
        "seven-decimals",
        "no-reason",
        "blank-reason",
        "long-reason",
        "expired",
        "expiring-now",
        "naive-expiry",
    ],
)
async def test_bad_input_is_a_user_error_that_changes_nothing(
    harness: Harness, input: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    org = await harness.org("acme", grant_usd="1")
    service = harness.token(org, Role.SERVICE)  # the platform's
    admin = harness.token(org, Role.ADMIN)
    before = await wallet_state(harness, admin)
    logged = (await audit(harness, admin))["totalCount"]
    given = await grant(harness, service, **({"amountUsd": "5", "reason": "why"} | input))
    assert codes(given) == expected
    assert (given["entry"], given["lot"]) == (None, None)
    assert await wallet_state(harness, admin) == before
    assert (await audit(harness, admin))["totalCount"] == logged


async def test_an_amount_that_is_not_a_decimal_is_a_bad_user_input(harness: Harness) -> None:
    org = await harness.org("acme")
    service = harness.token(org, Role.SERVICE)  # the platform's
    body = await harness.graphql(GRANT, service, input={"amountUsd": "1e3", "reason": "x"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_balance_past_64_bits_is_refused_not_a_fault(harness: Harness) -> None:
    org = await harness.org("acme")
    service = harness.token(org, Role.SERVICE)  # the platform's
    most = "9223372036854.775807"  # the largest amount a wallet's column holds
    assert (await grant(harness, service, amountUsd=most, reason="all"))["userErrors"] == []
    again = await grant(harness, service, amountUsd="0.000001", reason="one more")
    assert codes(again) == [("amountUsd", "INVALID_AMOUNT")]
    assert await harness.books() == []


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER])
async def test_only_the_platform_grants(harness: Harness, role: Role) -> None:
    org = await harness.org("acme")
    given = await grant(harness, harness.token(org, role), amountUsd="5", reason="me")
    assert codes(given) == [(None, "FORBIDDEN")]
    assert await harness.balance(org) == (0, 0)


async def test_an_api_key_may_not_grant(harness: Harness) -> None:
    org = await harness.org("acme")
    key = await harness.key(org)
    given = await grant(
        harness, {"Authorization": f"Bearer {key.secret}"}, amountUsd="5", reason="me"
    )
    assert codes(given) == [(None, "FORBIDDEN")]
    assert await harness.balance(org) == (0, 0)

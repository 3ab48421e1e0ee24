"""Top-ups with the fake provider of local development, over GraphQL and REST: the bonus
ladder and quotes, a top-up that succeeds at once with its bonus, amounts and roles that
are refused without creating anything, and which provider a process may use."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from app.auth import Role
from app.clock import Clock
from app.db import Database
from app.migrate import upgrade
from app.money import parse_usd
from app.orgs.service import OrgRef
from app.payments.config import PaymentConfigError, payment_provider
from app.payments.provider import FakeProvider
from app.settings import Settings
from tests.conftest import Harness, running_app

CREATE = """
mutation($input: CreateTopUpInput!) {
  createTopUp(input: $input) {
    topUp { id kind status amount { usd } bonus { usd } bonusPercent credits { usd } }
    clientSecret checkoutUrl
    userErrors { field code message }
  }
}
"""

QUOTE = """
query($amount: Decimal!) {
  topUpQuote(amountUsd: $amount) {
    amount { usd } bonusPercent bonus { usd } creditsDelivered { usd }
  }
}
"""

LADDER = """
query {
  bonusLadder { minTopUp { usd } maxTopUp { usd } tiers { minAmount { usd } bonusPercent } }
}
"""

BILLING = """
query {
  viewer { organization {
    billingTransactions { totalCount edges { node { id kind status amount { usd } } } }
    wallet { balance { credits } lots { edges { node { source original { usd } } } } }
  } }
}
"""


async def create_top_up(
    harness: Harness, headers: dict[str, str], amount: object
) -> dict[str, Any]:
    body = await harness.graphql(CREATE, headers=headers, input={"amountUsd": amount})
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["createTopUp"]
    return payload


async def billing(harness: Harness, org: OrgRef) -> dict[str, Any]:
    body = await harness.graphql(BILLING, headers=harness.token(org, Role.VIEWER))
    assert "errors" not in body, body
    organization: dict[str, Any] = body["data"]["viewer"]["organization"]
    return organization


@pytest.mark.parametrize(
    ("amount", "bonus_percent", "bonus"),
    [("99.99", "3", "2.999700"), ("1250", "11.2", "140.000000"), ("5", "0", "0.000000")],
)
async def test_fake_top_up_succeeds_at_once_with_its_bonus(
    harness: Harness, amount: str, bonus_percent: str, bonus: str
) -> None:
    org = await harness.org("acme")
    paid = await create_top_up(harness, harness.token(org, Role.OWNER), amount)

    assert paid["userErrors"] == []
    assert (paid["clientSecret"], paid["checkoutUrl"]) == (None, None)
    top_up = paid["topUp"]
    delivered = parse_usd(amount) + parse_usd(bonus)
    assert top_up["kind"] == "TOP_UP"
    assert top_up["status"] == "SUCCEEDED"
    assert top_up["amount"]["usd"] == f"{parse_usd(amount) / 1_000_000:.6f}"
    assert (top_up["bonus"]["usd"], top_up["bonusPercent"]) == (bonus, bonus_percent)
    assert parse_usd(top_up["credits"]["usd"]) == delivered
    assert await harness.balance(org) == (delivered, 0)

    seen = await billing(harness, org)
    assert [edge["node"]["id"] for edge in seen["billingTransactions"]["edges"]] == [top_up["id"]]
    lots = {
        edge["node"]["source"]: parse_usd(edge["node"]["original"]["usd"])
        for edge in seen["wallet"]["lots"]["edges"]
    }
    expected = {"TOP_UP": parse_usd(amount)}
    if parse_usd(bonus):
        expected["BONUS"] = parse_usd(bonus)
    assert lots == expected

    response = await harness.http.get(
        "/api/v1/me/billing/transactions", headers=harness.token(org, Role.VIEWER)
    )
    assert response.status_code == 200
    (row,) = response.json()["data"]
    assert row["id"] == top_up["id"]
    assert (row["kind"], row["status"], row["bonus_percent"]) == (
        "top_up",
        "succeeded",
        bonus_percent,
    )
    assert int(row["credits"]["credits"]) == delivered
    assert await harness.books() == []


async def test_ladder_and_quotes_follow_the_seed_ladder(harness: Harness) -> None:
    org = await harness.org("acme")
    headers = harness.token(org, Role.VIEWER)
    ladder = (await harness.graphql(LADDER, headers=headers))["data"]["bonusLadder"]
    assert ladder["minTopUp"]["usd"] == "5.000000"
    assert ladder["maxTopUp"]["usd"] == "1250.000000"
    assert [(tier["minAmount"]["usd"], tier["bonusPercent"]) for tier in ladder["tiers"]] == [
        ("19.990000", "0"),
        ("99.990000", "3"),
        ("499.990000", "5"),
        ("999.990000", "8"),
        ("1250.000000", "11.2"),
    ]

    for amount, percent, bonus, delivered in [
        ("5", "0", "0.000000", "5.000000"),
        ("99.98", "0", "0.000000", "99.980000"),
        ("99.99", "3", "2.999700", "102.989700"),
        ("499.99", "5", "24.999500", "524.989500"),
        ("1249.99", "8", "99.999200", "1349.989200"),
        ("1250", "11.2", "140.000000", "1390.000000"),
    ]:
        body = await harness.graphql(QUOTE, headers=headers, amount=amount)
        quote = body["data"]["topUpQuote"]
        assert quote["bonusPercent"] == percent, amount
        assert (quote["bonus"]["usd"], quote["creditsDelivered"]["usd"]) == (bonus, delivered)

    for bad in ("4.99", "1250.01", "5.001", "-5", "0"):
        body = await harness.graphql(QUOTE, headers=headers, amount=bad)
        assert body["data"] is None
        assert [error["extensions"]["code"] for error in body["errors"]] == ["BAD_USER_INPUT"]


async def test_bad_amounts_create_nothing(harness: Harness) -> None:
    org = await harness.org("acme")
    owner = harness.token(org, Role.OWNER)
    for bad in ("4.99", "1250.01", "5.001", "-5", "0", "0.00"):
        refused = await create_top_up(harness, owner, bad)
        assert refused["topUp"] is None
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [
            ("amountUsd", "INVALID_AMOUNT")
        ], bad

    # Neither an amount nor a pack: nothing to buy.
    refused = await create_top_up(harness, owner, None)
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(None, "INVALID_INPUT")]

    # Not a decimal string at all: the Decimal scalar refuses it before any resolver runs.
    for not_decimal in ("abc", "1e3", "", 100, 99.99):
        body = await harness.graphql(CREATE, headers=owner, input={"amountUsd": not_decimal})
        assert body.get("data") is None, not_decimal
        assert body["errors"], not_decimal

    assert (await billing(harness, org))["billingTransactions"]["totalCount"] == 0
    assert await harness.balance(org) == (0, 0)
    assert await harness.books() == []


async def test_only_owners_and_admins_top_up(harness: Harness) -> None:
    org = await harness.org("acme")
    key = await harness.key(org)
    for headers in (
        harness.token(org, Role.VIEWER),
        harness.token(org, Role.MEMBER),
        harness.token(org, Role.SERVICE),
        {"Authorization": f"Bearer {key.secret}"},
    ):
        refused = await create_top_up(harness, headers, "10")
        assert refused["topUp"] is None
        assert [e["code"] for e in refused["userErrors"]] == ["FORBIDDEN"]
    assert (await billing(harness, org))["billingTransactions"]["totalCount"] == 0
    assert await harness.balance(org) == (0, 0)

    admin = await create_top_up(harness, harness.token(org, Role.ADMIN), "10")
    assert admin["topUp"]["status"] == "SUCCEEDED"
    assert await harness.balance(org) == (parse_usd("10"), 0)
    assert await harness.books() == []


# -- which provider ----------------------------------------------------------------------


def _with(settings: Settings, **changes: Any) -> Settings:
    # Built anew rather than model_copy'd: a copy keeps the cached is_production.
    return Settings(**(settings.model_dump() | changes))


async def test_fake_is_the_development_default_and_refused_where_it_could_mint_credits(
    settings: Settings,
) -> None:
    db = Database(settings)  # where the fake provider keeps its cards

    def provider(**changes: Any) -> object:
        return payment_provider(_with(settings, **changes), db)

    try:
        assert isinstance(provider(), FakeProvider)
        assert isinstance(provider(payment_provider="fake"), FakeProvider)

        stripe_keys = {"stripe_secret_key": "sk_test_x", "stripe_webhook_secret": "whsec_x"}
        with pytest.raises(PaymentConfigError, match="Stripe keys"):
            provider(payment_provider="fake", **stripe_keys)
        with pytest.raises(PaymentConfigError, match="production"):
            provider(payment_provider="fake", environment="production")
        # Production without Stripe keys takes no payments rather than fake ones.
        assert provider(environment="production") is None

        with pytest.raises(PaymentConfigError, match="SECRET_KEY"):
            provider(payment_provider="stripe")
        for environment in ("development", "production"):
            with pytest.raises(PaymentConfigError, match="WEBHOOK_SECRET"):
                provider(stripe_secret_key="sk_test_x", environment=environment)
    finally:
        await db.dispose()


async def test_production_without_stripe_keys_takes_no_payments(
    settings: Settings, clock: Clock
) -> None:
    key = Fernet.generate_key().decode()
    production = _with(settings, environment="production", key_encryption_key=key)
    # Production does not migrate at start-up: `creditgraph migrate` does, as here.
    db = Database(production)
    try:
        await upgrade(db.writer)
    finally:
        await db.dispose()
    async with running_app(production, clock) as harness:
        assert harness.runtime.payments.provider is None
        org = await harness.org("acme")
        refused = await create_top_up(harness, harness.token(org, Role.OWNER), "10")
        assert refused["topUp"] is None
        assert [e["code"] for e in refused["userErrors"]] == ["PAYMENTS_UNAVAILABLE"]
        assert (await billing(harness, org))["billingTransactions"]["totalCount"] == 0
        assert await harness.books() == []

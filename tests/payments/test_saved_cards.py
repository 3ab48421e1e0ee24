"""Saved cards over GraphQL, through the Stripe stand-in and with the fake provider: the
cards top-ups saved, newest first; choosing the one auto-reload charges; removing one
(detached at Stripe), and the chosen one, after which nothing reloads; other
organizations' and unknown cards are NOT_FOUND; owners and admins only; audited."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet

from app.auth import Role
from app.clock import Clock
from app.db import Database
from app.migrate import upgrade
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, running_app
from tests.graphql.test_audit import audit, nodes
from tests.payments.conftest import StripeHarness
from tests.payments.stripe_standin import CARD_EXPIRY
from tests.payments.test_auto_reload import (
    fake_top_up,
    idle,
    off_session_charges,
    read,
    reloads,
    save_card,
    spend,
    update,
)

CARDS = """
query { viewer { organization {
  paymentMethods { id brand last4 expMonth expYear isDefault }
} } }
"""

SET_DEFAULT = """
mutation($input: SetDefaultPaymentMethodInput!) {
  setDefaultPaymentMethod(input: $input) {
    paymentMethod { id brand last4 isDefault }
    autoReload { cardSaved failureReason }
    userErrors { field code }
  }
}
"""

REMOVE = """
mutation($input: RemovePaymentMethodInput!) {
  removePaymentMethod(input: $input) {
    removedPaymentMethodId
    autoReload { cardSaved }
    userErrors { field code }
  }
}
"""

EXP_MONTH, EXP_YEAR = CARD_EXPIRY


async def cards(harness: Harness, org: OrgRef, role: Role = Role.OWNER) -> list[dict[str, Any]]:
    body = await harness.graphql(CARDS, headers=harness.token(org, role))
    assert "errors" not in body, body
    listed: list[dict[str, Any]] = body["data"]["viewer"]["organization"]["paymentMethods"]
    return listed


def card(pm: str, brand: str, last4: str, *, default: bool = False) -> dict[str, Any]:
    """A card as paymentMethods lists one saved through the stand-in."""
    return {
        "id": pm,
        "brand": brand,
        "last4": last4,
        "expMonth": EXP_MONTH,
        "expYear": EXP_YEAR,
        "isDefault": default,
    }


async def choose(harness: Harness, org: OrgRef, pm: str, role: Role = Role.OWNER) -> dict[str, Any]:
    body = await harness.graphql(
        SET_DEFAULT, headers=harness.token(org, role), input={"paymentMethodId": pm}
    )
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["setDefaultPaymentMethod"]
    return payload


async def remove(harness: Harness, org: OrgRef, pm: str, role: Role = Role.OWNER) -> dict[str, Any]:
    body = await harness.graphql(
        REMOVE, headers=harness.token(org, role), input={"paymentMethodId": pm}
    )
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["removePaymentMethod"]
    return payload


def codes(payload: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


async def reload_once(harness: Harness, org: OrgRef, key_id: int) -> list[dict[str, Any]]:
    """Spend the balance from 12.50 (or 20) to 2.50, under the 3 USD threshold, and let
    the auto-reload that starts (if any) finish; the auto-reloads so far."""
    balance, _ = await harness.balance(org)
    await spend(harness, org, key_id, f"{(balance - 2_500_000) / 1_000_000:.2f}")
    await idle(harness)
    return await reloads(harness, org)


# -- through the Stripe stand-in -----------------------------------------------------------


async def test_cards_listed_chosen_and_removed_at_stripe(paying: StripeHarness) -> None:
    app, standin = paying.app, paying.standin
    org = await app.org("acme")
    key = await app.key(org)
    assert await cards(app, org) == []  # no customer yet: Stripe is not asked

    await save_card(paying, org, "pm_card_visa")
    await save_card(paying, org, "pm_card_mastercard")
    # The first card became auto-reload's; a later payment's card joins the list only.
    assert await cards(app, org, Role.ADMIN) == [
        card("pm_card_mastercard", "mastercard", "4444"),
        card("pm_card_visa", "visa", "4242", default=True),
    ]
    (listing, *_) = [r for r in standin.requests if r.path == "/v1/payment_methods"]
    assert (listing.method, listing.params["type"]) == ("GET", "card")
    (customer,) = standin.objects_of("customer")
    assert listing.params["customer"] == customer["id"]

    assert (await update(app, org, enabled=True))["userErrors"] == []
    assert [r["status"] for r in await reload_once(app, org, key.id)] == ["SUCCEEDED"]
    assert off_session_charges(paying)[-1].params["payment_method"] == "pm_card_visa"

    chosen = await choose(app, org, "pm_card_mastercard", Role.ADMIN)
    assert chosen == {
        "paymentMethod": {
            "id": "pm_card_mastercard",
            "brand": "mastercard",
            "last4": "4444",
            "isDefault": True,
        },
        "autoReload": {"cardSaved": True, "failureReason": None},
        "userErrors": [],
    }
    assert [c["isDefault"] for c in await cards(app, org)] == [True, False]
    assert len(await reload_once(app, org, key.id)) == 2
    assert off_session_charges(paying)[-1].params["payment_method"] == "pm_card_mastercard"

    # Removing another card detaches it at Stripe; auto-reload keeps its card.
    removed = await remove(app, org, "pm_card_visa")
    assert removed == {
        "removedPaymentMethodId": "pm_card_visa",
        "autoReload": {"cardSaved": True},
        "userErrors": [],
    }
    assert standin.objects["pm_card_visa"]["customer"] is None
    assert [r.method for r in standin.requests if r.path.endswith("/detach")] == ["POST"]
    assert await cards(app, org) == [card("pm_card_mastercard", "mastercard", "4444", default=True)]

    # Removing the chosen one leaves auto-reload without a card: nothing reloads.
    removed = await remove(app, org, "pm_card_mastercard")
    assert removed["autoReload"] == {"cardSaved": False}
    assert await cards(app, org) == []
    charged = len(off_session_charges(paying))
    assert len(await reload_once(app, org, key.id)) == 2
    assert len(off_session_charges(paying)) == charged
    settings, _ = await read(app, org)
    assert (settings["enabled"], settings["cardSaved"]) == (True, False)
    # Gone for good: neither chosen nor removed again.
    assert codes(await choose(app, org, "pm_card_visa")) == [("paymentMethodId", "NOT_FOUND")]
    assert codes(await remove(app, org, "pm_card_mastercard")) == [("paymentMethodId", "NOT_FOUND")]

    # The next card paid with is auto-reload's again.
    await save_card(paying, org, "pm_card_amex")
    assert await cards(app, org) == [card("pm_card_amex", "amex", "0005", default=True)]

    owner = app.token(org, Role.OWNER)
    chosen_events = nodes(await audit(app, owner, filter={"action": "payment_method.default"}))
    assert [(e["actor"], e["target"], e["before"], e["after"]) for e in chosen_events] == [
        (
            "admin@test",
            "payment_method:pm_card_mastercard",
            {"payment_method_id": "pm_card_visa"},
            {"payment_method_id": "pm_card_mastercard", "brand": "mastercard", "last4": "4444"},
        )
    ]
    removals = nodes(await audit(app, owner, filter={"action": "payment_method.remove"}))
    assert [(e["target"], e["before"], e["after"]) for e in removals] == [
        (
            "payment_method:pm_card_mastercard",
            {
                "payment_method_id": "pm_card_mastercard",
                "brand": "mastercard",
                "last4": "4444",
                "default": True,
            },
            None,
        ),
        (
            "payment_method:pm_card_visa",
            {
                "payment_method_id": "pm_card_visa",
                "brand": "visa",
                "last4": "4242",
                "default": False,
            },
            None,
        ),
    ]
    assert await app.books() == []


async def test_other_organizations_cards_and_unknown_ids_are_not_found(
    paying: StripeHarness,
) -> None:
    app, standin = paying.app, paying.standin
    acme, rival, fresh = await app.org("acme"), await app.org("rival"), await app.org("fresh")
    await save_card(paying, acme, "pm_card_visa")
    await save_card(paying, rival, "pm_card_amex")

    for org, pm in [
        (rival, "pm_card_visa"),  # acme's
        (fresh, "pm_card_visa"),  # an organization that never paid
        (acme, "pm_card_mastercard"),  # saved by nobody
        (acme, "pm_unknown"),
        (acme, ""),
        (acme, "pm_" + "x" * 300),
    ]:
        assert codes(await choose(app, org, pm)) == [("paymentMethodId", "NOT_FOUND")], pm
        assert codes(await remove(app, org, pm)) == [("paymentMethodId", "NOT_FOUND")], pm
    assert [r for r in standin.requests if r.path.endswith("/detach")] == []
    assert standin.objects["pm_card_visa"]["customer"] is not None
    assert await cards(app, acme) == [card("pm_card_visa", "visa", "4242", default=True)]
    assert await cards(app, rival) == [card("pm_card_amex", "amex", "0005", default=True)]

    # Owners and admins only: other roles get FORBIDDEN, as for the audit log.
    for role in (Role.MEMBER, Role.VIEWER, Role.SERVICE):
        body = await app.graphql(CARDS, headers=app.token(acme, role))
        assert body["data"]["viewer"]["organization"]["paymentMethods"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
        assert codes(await choose(app, acme, "pm_card_visa", role)) == [(None, "FORBIDDEN")]
        assert codes(await remove(app, acme, "pm_card_visa", role)) == [(None, "FORBIDDEN")]
    assert standin.objects["pm_card_visa"]["customer"] is not None
    owner = app.token(acme, Role.OWNER)
    for action in ("payment_method.default", "payment_method.remove"):
        assert nodes(await audit(app, owner, filter={"action": action})) == []


async def test_stripe_unreachable(paying: StripeHarness) -> None:
    app, standin = paying.app, paying.standin
    org = await app.org("acme")
    await save_card(paying, org, "pm_card_visa")

    standin.fail_next(3)  # the first try and the library's two retries
    body = await app.graphql(CARDS, headers=app.token(org, Role.OWNER))
    assert body["data"]["viewer"]["organization"]["paymentMethods"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAVAILABLE"]
    standin.fail_next(3)
    assert codes(await remove(app, org, "pm_card_visa")) == [(None, "PAYMENT_FAILED")]
    assert standin.objects["pm_card_visa"]["customer"] is not None
    assert await cards(app, org) == [card("pm_card_visa", "visa", "4242", default=True)]


# -- with the fake provider ------------------------------------------------------------------


async def test_the_fake_provider_saves_lists_and_removes_cards_the_same(
    settings: Settings, clock: Clock
) -> None:
    async with running_app(settings, clock) as harness:
        org, rival = await harness.org("acme"), await harness.org("rival")
        await fake_top_up(harness, org, "10")
        await fake_top_up(harness, org, "10")
        await fake_top_up(harness, rival, "10")
    # Saved in the database, as Stripe keeps them: a later process lists them (the demo
    # seeds in one process and serves in the next).
    async with running_app(settings, clock) as harness:
        listed = await cards(harness, org)
        assert [(c["brand"], c["last4"], c["isDefault"]) for c in listed] == [
            ("mastercard", "4444", False),
            ("visa", "4242", True),
        ]
        assert all(c["expMonth"] == 12 and c["expYear"] > 2025 for c in listed)
        newer, first = (c["id"] for c in listed)
        (rivals,) = await cards(harness, rival)
        assert codes(await choose(harness, org, rivals["id"])) == [("paymentMethodId", "NOT_FOUND")]
        assert codes(await remove(harness, rival, first)) == [("paymentMethodId", "NOT_FOUND")]

        key = await harness.key(org)
        assert (await update(harness, org, enabled=True))["userErrors"] == []
        assert (await choose(harness, org, newer))["paymentMethod"]["isDefault"] is True
        assert [r["status"] for r in await reload_once(harness, org, key.id)] == ["SUCCEEDED"]

        assert (await remove(harness, org, first))["autoReload"] == {"cardSaved": True}
        assert (await remove(harness, org, newer))["autoReload"] == {"cardSaved": False}
        assert await cards(harness, org) == []
        assert len(await reload_once(harness, org, key.id)) == 1  # no card: no reload
        assert await harness.books() == []


async def test_without_payments_there_are_no_cards(settings: Settings, clock: Clock) -> None:
    production = Settings(
        **(
            settings.model_dump()
            | {"environment": "production", "key_encryption_key": Fernet.generate_key().decode()}
        )
    )
    db = Database(production)  # production migrates with `creditgraph migrate`, as here
    try:
        await upgrade(db.writer)
    finally:
        await db.dispose()
    async with running_app(production, clock) as harness:
        org = await harness.org("acme")
        assert await cards(harness, org) == []
        for mutate in (choose, remove):
            assert codes(await mutate(harness, org, "pm_card_visa")) == [
                (None, "PAYMENTS_UNAVAILABLE")
            ]

"""What fuzzing the REST API against its OpenAPI document found, each kept as a request
over HTTP: a clean 4xx naming the field, never a 5xx, and the answer the document gives."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from app.auth import Role
from app.ids import from_global_id
from tests.conftest import Harness, usage_event
from tests.payments import stripe_events
from tests.payments.conftest import StripeHarness
from tests.payments.conftest import paying as paying
from tests.payments.conftest import stripe_standin as stripe_standin


def _invalid(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_input"
    assert fragment in body["message"]


@pytest.mark.parametrize("path", ["/api/v1/me/billing/transactions", "/api/v1/me/ledger.csv"])
async def test_an_enum_parameter_takes_the_two_spellings_the_document_lists(
    harness: Harness, path: str
) -> None:
    owner = harness.token(await harness.org("acme"), Role.OWNER)
    for spelt in ("refund", "REFUND"):
        assert (
            await harness.http.get(path, params={"kind": spelt}, headers=owner)
        ).status_code == 200
    _invalid(await harness.http.get(path, params={"kind": "Refund"}, headers=owner), "kind:")


async def test_an_id_of_any_text_is_no_such_thing(harness: Harness) -> None:
    """base64 refuses non-ASCII with a ValueError, and int() refuses "²", which
    str.isdigit() lets through: both were 500s wherever a global id is read."""
    org = await harness.org("acme")
    key = await harness.key(org)
    owner = harness.token(org, Role.OWNER)
    for name in ("%C2%80", _b64("Receipt:²"), _b64("Receipt:\u0661")):
        response = await harness.http.get(f"/api/v1/receipts/{name}.json", headers=owner)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), name
    for api_key_id in ("\x80", _b64("ApiKey:²")):
        (result,) = await harness.usage(org, usage_event(key.id, "r1", api_key_id=api_key_id))
        assert (result["outcome"], result["error"]["code"]) == ("rejected", "invalid_input")
        assert "api_key_id" in result["error"]["message"]


async def test_digits_that_int_refuses_are_a_400_or_404(harness: Harness) -> None:
    org = await harness.org("acme")
    owner = harness.token(org, Role.OWNER)
    response = await harness.http.get("/api/v1/me/usage", params={"limit": "²"}, headers=owner)
    _invalid(response, "limit: must be an integer")
    response = await harness.http.get("/api/v1/statements/²²²²-11.json", headers=owner)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    response = await harness.http.post(
        "/api/v1/authorize", content=b"{}", headers={"content-length": "²".encode("latin-1")}
    )
    assert response.status_code == 413, response.text


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"], ids=["year 0", "year 10000"]
)
async def test_a_time_whose_zone_leaves_the_calendar_is_a_400(harness: Harness, at: str) -> None:
    """Valid ISO 8601 in its own zone, but past year 1 or 9999 in UTC, where every time is
    compared: an OverflowError (a 500) on both engines."""
    org = await harness.org("acme", grant_usd="1")
    key = await harness.key(org)
    owner = harness.token(org, Role.OWNER)
    for path in ("/api/v1/me/usage", "/api/v1/me/usage.csv", "/api/v1/me/ledger.csv"):
        for name in ("since", "until"):
            response = await harness.http.get(path, params={name: at}, headers=owner)
            _invalid(response, f"{name}: must be an ISO 8601 time with a time zone")
    (result,) = await harness.usage(org, usage_event(key.id, "r1", occurred_at=at))
    assert result["outcome"] == "rejected"
    assert result["error"]["message"] == "occurred_at: must be in years 1 to 9999 in UTC"
    assert await harness.books() == []


async def test_a_cursor_made_up_of_a_bad_time_or_a_huge_id_is_a_400(harness: Harness) -> None:
    """A cursor is base64 of the last row's time and id; one made up by hand with a time
    without a zone, past the calendar in UTC, or an id past 64 bits reached the database
    and was a 500."""
    org = await harness.org("acme", grant_usd="1")
    owner = harness.token(org, Role.OWNER)
    made_up = [
        "2026-01-01T00:00:00|1",
        "0001-01-01T00:00:00+01:00|1",
        f"2026-01-01T00:00:00+00:00|{2**63}",
    ]
    for position in made_up:
        cursor = base64.urlsafe_b64encode(position.encode()).decode()
        for path in ("/api/v1/me/usage", "/api/v1/me/billing/transactions"):
            response = await harness.http.get(path, params={"cursor": cursor}, headers=owner)
            _invalid(response, "cursor: not a cursor this API returned")


async def test_nul_in_a_body_or_a_filter_is_a_400(harness: Harness) -> None:
    """PostgreSQL's text cannot hold U+0000: a request id, a model, a tag or a filter with
    one was a 500 there (the writer's whole batch failed) and stored as is on SQLite."""
    org = await harness.org("acme", grant_usd="1")
    key = await harness.key(org)
    refused = "the request body holds a NUL character"
    _invalid(await harness.authorize(key, "a\x00b", hold_usd="0.1"), refused)
    for event in (
        usage_event(key.id, "r\x00"),
        usage_event(key.id, "r1", tags={"team": "a\x00"}),
        usage_event(key.id, "r1", tags={"\x00": "a"}),
    ):
        response = await harness.http.post(
            "/api/v1/usage", json={"events": [event]}, headers=harness.token(org)
        )
        _invalid(response, refused)
    # Deeper than Python recurses, found without recursion.
    deep = b'{"code": ' + b"[" * 1000 + b'"\\u0000"' + b"]" * 1000 + b"}"
    response = await harness.http.post("/api/v1/authorize", content=deep)
    _invalid(response, refused)
    owner = harness.token(org, Role.OWNER)
    for name in ("model", "request_id"):
        for path in ("/api/v1/me/usage", "/api/v1/me/usage.csv"):
            response = await harness.http.get(path, params={name: "a\x00"}, headers=owner)
            _invalid(response, f"{name}: must not contain NUL characters")
    # Nothing was held or billed, and a literal backslash-u is just text.
    assert await harness.balance(org) == (1_000_000, 0)
    assert (await harness.authorize(key, "a\\u0000b", hold_usd="0.1")).status_code == 200


async def test_a_signed_stripe_event_with_nul_is_refused(paying: StripeHarness) -> None:
    evt = stripe_events.event("payment_intent.succeeded", {"id": "pi_\x00", "object": "x"})
    response = await paying.webhook(evt)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_webhook")
    assert "NUL" in response.json()["message"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


TOP_UP = "mutation ($input: CreateTopUpInput!) { createTopUp(input: $input) { topUp { id } } }"


async def test_a_signed_payment_intent_without_its_id_settles_by_its_metadata(
    paying: StripeHarness,
) -> None:
    """The top-up is found by the id in the metadata; the intent's own id was then read
    as obj["id"], a KeyError (500) when the object had none."""
    org = await paying.app.org("acme")
    body = await paying.app.graphql(
        TOP_UP, paying.app.token(org, Role.OWNER), input={"amountUsd": "5"}
    )
    top_up_id = from_global_id(body["data"]["createTopUp"]["topUp"]["id"], "BillingTransaction")
    evt = stripe_events.payment_intent_succeeded(amount=500, top_up_id=top_up_id)
    del evt["data"]["object"]["id"]
    response = await paying.webhook(evt)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "succeeded"
    assert (await paying.app.balance(org))[0] == 5_000_000
    assert await paying.app.books() == []


@pytest.mark.parametrize("start", [2**40, 2**63], ids=["year 36812", "past time_t"])
async def test_a_signed_invoice_whose_period_leaves_the_calendar_is_ignored(
    paying: StripeHarness, start: int
) -> None:
    """datetime.fromtimestamp raised (ValueError, OverflowError) for a period start or
    end past year 9999: a 500 to a correctly signed invoice.paid."""
    org = await paying.app.org("acme")
    now = int(time.time())
    for period in (
        {"period_start": start, "period_end": now},
        {"period_start": now, "period_end": start},
    ):
        invoice = stripe_events.invoice(
            subscription_id="sub_1",
            amount_paid=2_000,
            organization_id=org.id,
            plan_code="bytez-platinum",
            **period,
        )
        response = await paying.webhook(stripe_events.invoice_paid(invoice))
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "ignored"

"""Downloading receipts and statements: JSON and PDF (read back with pypdf), for people
of the organization only (401 without a token, 403 for an API key or the gateway, 404 for
another organization's receipt, a month out of range or anything malformed)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader

from app.auth import Role
from app.clock import FrozenClock
from tests.conftest import Harness, usage_event
from tests.payments.test_auto_reload import fake_top_up
from tests.statements.test_receipts import receipts

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


def _text(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


async def test_a_receipt_downloads_as_json_and_pdf(harness: Harness) -> None:
    org = await harness.org("acme")
    await fake_top_up(harness, org, "99.99")
    (receipt,) = await receipts(harness, org)
    viewer = harness.token(org, Role.VIEWER)

    response = await harness.http.get(receipt["jsonUrl"], headers=viewer)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="ACME-000001.json"'
    document = response.json()
    assert document["number"] == "ACME-000001"
    assert document["organization"]["slug"] == "acme"
    assert (document["amount"], document["currency"], document["tax"]) == ("99.990000", "USD", None)
    assert document["credits"] == {"credits": "99990000", "usd": "99.990000"}
    assert document["bonus"] == {"credits": "2999700", "usd": "2.999700"}
    assert document["payment_method"] == {"brand": "visa", "last4": "4242"}
    assert document["issued_at"] == NOW.isoformat()

    response = await harness.http.get(receipt["pdfUrl"], headers=viewer)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = _text(response.content)
    for shown in ("Receipt ACME-000001", "99.990000 USD", "2.999700 USD", "Visa ending 4242"):
        assert shown in text


async def test_downloads_need_a_person_of_the_organization(harness: Harness) -> None:
    org = await harness.org("acme")
    other = await harness.org("beta")
    await fake_top_up(harness, org, "5")
    (receipt,) = await receipts(harness, org)
    key = await harness.key(org)
    month = "/api/v1/statements/2026-11.json"
    for path in (receipt["pdfUrl"], receipt["jsonUrl"], month):
        assert (await harness.http.get(path)).status_code == 401
        api_key = {"Authorization": f"Bearer {key.secret}"}
        for headers in (harness.token(org, Role.SERVICE), api_key):
            response = await harness.http.get(path, headers=headers)
            assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    # Another organization's receipt is one that does not exist.
    for path in (receipt["pdfUrl"], receipt["jsonUrl"]):
        response = await harness.http.get(path, headers=harness.token(other, Role.OWNER))
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    owner = harness.token(org, Role.OWNER)
    for path in (
        "/api/v1/receipts/nothing.pdf",
        "/api/v1/receipts/" + receipt["id"],  # no format
        "/api/v1/receipts/" + receipt["id"] + ".html",
        "/api/v1/receipts/QXBpS2V5OjE=.json",  # an ApiKey's id
        "/api/v1/statements/2026-12.json",  # not yet begun
        "/api/v1/statements/2026-10.json",  # before the organization
        "/api/v1/statements/2026-13.pdf",
        "/api/v1/statements/november.json",
    ):
        response = await harness.http.get(path, headers=owner)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path


STATEMENTS = """
query($first: Int = 12, $after: String) { viewer { organization {
statements(first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node {
    id month periodStart periodEnd closed unit pdfUrl jsonUrl
    openingBalance { usd } purchases { usd } bonuses { usd } grants { usd }
    adjustments { usd } usage { usd } overage { usd } expiries { usd } refunds { usd }
    closingBalance { usd }
    usageByModelAndAction { model action requests amount { usd } }
    receipts { number }
  } }
} } } }
"""


async def test_statements_list_months_with_their_figures(
    harness: Harness, clock: FrozenClock
) -> None:
    org = await harness.org("acme")  # created in November 2026
    key = await harness.key(org)
    await fake_top_up(harness, org, "99.99")
    await harness.usage(org, usage_event(key.id, "r1"), usage_event(key.id, "r2", model="gpt-5-5"))
    clock.advance(timedelta(days=15))  # December
    await fake_top_up(harness, org, "5")
    clock.advance(timedelta(days=31))  # January 2027: December has closed
    viewer = harness.token(org, Role.VIEWER)
    body = await harness.graphql(STATEMENTS, viewer, first=2)
    page = body["data"]["viewer"]["organization"]["statements"]
    assert page["totalCount"] == 3
    january, december = (edge["node"] for edge in page["edges"])
    assert (january["month"], january["closed"]) == ("2027-01", False)
    assert (december["month"], december["closed"], december["unit"]) == ("2026-12", True, "usd")
    assert december["periodStart"] == "2026-12-01T00:00:00+00:00"
    assert december["receipts"] == [{"number": "ACME-000002"}]
    assert december["purchases"] == {"usd": "5.000000"}
    assert december["closingBalance"] == january["openingBalance"] != december["openingBalance"]
    body = await harness.graphql(STATEMENTS, viewer, after=page["pageInfo"]["endCursor"])
    (november,) = (e["node"] for e in body["data"]["viewer"]["organization"]["statements"]["edges"])
    assert november["month"] == "2026-11"
    assert november["openingBalance"] == {"usd": "0.000000"}
    assert november["purchases"] == {"usd": "99.990000"}
    assert november["bonuses"] == {"usd": "2.999700"}
    assert november["closingBalance"] == december["openingBalance"]
    usage = november["usageByModelAndAction"]
    assert sum(int(u["amount"]["usd"].replace(".", "")) for u in usage) == int(
        november["usage"]["usd"].replace(".", "")
    )
    assert {u["model"] for u in usage} == {"claude-sonnet-4-6", "gpt-5-5"}

    # The same figures as JSON and as PDF.
    response = await harness.http.get(november["jsonUrl"], headers=viewer)
    document = response.json()
    assert response.headers["content-disposition"] == (
        'attachment; filename="statement-acme-2026-11.json"'
    )
    assert document["closing_balance"]["usd"] == november["closingBalance"]["usd"]
    assert document["usage"]["usd"] == november["usage"]["usd"]
    assert [r["number"] for r in document["receipts"]] == ["ACME-000001"]
    text = _text((await harness.http.get(november["pdfUrl"], headers=viewer)).content)
    for shown in ("Statement 2026-11", "ACME-000001", "gpt-5-5", november["closingBalance"]["usd"]):
        assert shown in text
    body = await harness.graphql(STATEMENTS, viewer, after="not a cursor")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await harness.books() == []

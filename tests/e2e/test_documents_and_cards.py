"""Each dashboard's documents and saved cards: receipts and monthly statements with their
PDF and JSON downloads, the saved cards (choose the default, remove one), and the ledger's
and billing history's CSV downloads. Each test checks what the page shows and what the
server then holds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Download, Locator, Page, expect

from app.auth import Role
from tests.e2e.conftest import Creditgraph, shown_usd

RECEIPTS = """
{ viewer { organization { receipts(first: 50) { edges { node {
  id number kind total { amount currency } credits { credits usd } bonus { credits usd }
  paymentMethod { brand last4 } refundOf { number } transaction { id } jsonUrl
} } } } } }
"""
STATEMENTS = """
{ viewer { organization { statements(first: 12) { edges { node {
  month closed jsonUrl
  openingBalance { credits usd } purchases { credits usd } bonuses { credits usd }
  grants { credits usd } adjustments { credits usd } usage { credits usd }
  overage { credits usd } expiries { credits usd } refunds { credits usd }
  closingBalance { credits usd }
  usageByModelAndAction { model action requests amount { credits usd } }
} } } } } }
"""
# A statement's figures, as GraphQL and its JSON document name them.
FIGURES = {
    "openingBalance": "opening_balance",
    "purchases": "purchases",
    "bonuses": "bonuses",
    "grants": "grants",
    "adjustments": "adjustments",
    "usage": "usage",
    "overage": "overage",
    "expiries": "expiries",
    "refunds": "refunds",
    "closingBalance": "closing_balance",
}
CARDS = (
    "{ viewer { organization { paymentMethods { id brand last4 expMonth expYear isDefault } } } }"
)
TOP_UP = """
mutation ($input: CreateTopUpInput!) {
  createTopUp(input: $input) { topUp { id status } userErrors { message } }
}
"""
REFUND = """
mutation ($input: RefundTopUpInput!) {
  refundTopUp(input: $input) { refund { id } userErrors { message } }
}
"""
LEDGER = """
{ viewer { organization { wallet { entries(first: 100) {
  totalCount edges { node { id } }
} } } } }
"""
TRANSACTIONS = """
{ viewer { organization { billingTransactions(first: 100) {
  totalCount edges { node { id } }
} } } }
"""


async def top_up(creditgraph: Creditgraph, usd: str) -> str:
    """A top-up through the fake provider (it settles at once and saves the card its payer
    entered); its global id."""
    data = await creditgraph.graphql(TOP_UP, input={"amountUsd": usd})
    top_up = data["createTopUp"]["topUp"]
    assert top_up["status"] == "SUCCEEDED", data
    return str(top_up["id"])


async def receipts(creditgraph: Creditgraph) -> list[dict[str, Any]]:
    """The organization's receipts, newest first."""
    data = await creditgraph.graphql(RECEIPTS)
    return [edge["node"] for edge in data["viewer"]["organization"]["receipts"]["edges"]]


async def cards(creditgraph: Creditgraph) -> list[dict[str, Any]]:
    data = await creditgraph.graphql(CARDS)
    return list(data["viewer"]["organization"]["paymentMethods"])


async def served(creditgraph: Creditgraph, path: str) -> bytes:
    """What the server answers the owner's GET of ``path``."""
    headers = creditgraph.harness.token(creditgraph.org, Role.OWNER)
    response = await creditgraph.harness.http.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return response.content


async def downloaded(page: Page, button: Locator, filename: str, tmp_path: Path) -> bytes:
    """The file ``button`` downloads, which must be named ``filename``."""
    async with page.expect_download() as started:
        await button.click()
    download: Download = await started.value
    assert download.suggested_filename == filename
    saved = tmp_path / filename
    await download.save_as(saved)
    return saved.read_bytes()


async def test_a_top_up_issues_a_receipt_downloadable_as_pdf_and_json(
    dashboard: Page, creditgraph: Creditgraph, tmp_path: Path
) -> None:
    panel = dashboard.get_by_test_id("receipts")
    # $100 earns the ladder's bonus, which the receipt shows apart from the credits bought.
    await dashboard.get_by_test_id("topup-amount").fill("100")
    await dashboard.get_by_test_id("topup-submit").click()
    await expect(dashboard.get_by_test_id("topup-status")).to_contain_text("SUCCEEDED")
    [receipt] = await receipts(creditgraph)
    assert receipt["number"] == "E2E-000001"
    assert receipt["total"] == {"amount": "100.000000", "currency": "USD"}
    assert int(receipt["bonus"]["credits"]) > 0, receipt
    row = panel.locator(f'[data-testid="receipt-row"][data-number="{receipt["number"]}"]')
    await expect(panel.get_by_test_id("receipt-row")).to_have_count(1)
    await expect(row.get_by_test_id("receipt-total")).to_have_text("$100.00")
    await expect(row.get_by_test_id("receipt-credits")).to_have_text(
        shown_usd(receipt["credits"]["usd"])
    )
    await expect(row.get_by_test_id("receipt-bonus")).to_have_text(
        shown_usd(receipt["bonus"]["usd"])
    )
    card = receipt["paymentMethod"]
    await expect(row.get_by_test_id("receipt-card")).to_contain_text(card["brand"])
    await expect(row.get_by_test_id("receipt-card")).to_contain_text(card["last4"])

    pdf = await downloaded(
        dashboard, row.get_by_test_id("receipt-pdf"), f"{receipt['number']}.pdf", tmp_path
    )
    assert pdf.startswith(b"%PDF")
    document = json.loads(
        await downloaded(
            dashboard, row.get_by_test_id("receipt-json"), f"{receipt['number']}.json", tmp_path
        )
    )
    assert document == json.loads(await served(creditgraph, receipt["jsonUrl"]))
    assert {key: document[key] for key in ("id", "number", "amount", "currency")} == {
        "id": receipt["id"],
        "number": receipt["number"],
        "amount": receipt["total"]["amount"],
        "currency": receipt["total"]["currency"],
    }
    assert document["kind"] == receipt["kind"].lower()
    assert document["credits"] == receipt["credits"]
    assert document["bonus"] == receipt["bonus"]
    assert document["payment_method"] == card
    assert document["refund_of"] is None

    # A refund gets a receipt of its own, which says what it refunds.
    refunded = await creditgraph.graphql(
        REFUND, input={"topUpId": receipt["transaction"]["id"], "amountUsd": "40"}
    )
    assert refunded["refundTopUp"]["userErrors"] == [], refunded
    refund, _ = await receipts(creditgraph)
    assert refund["kind"] == "REFUND"
    assert refund["refundOf"] == {"number": receipt["number"]}
    refund_row = panel.locator(f'[data-testid="receipt-row"][data-number="{refund["number"]}"]')
    await expect(refund_row.get_by_test_id("receipt-refund-of")).to_have_text(
        f"refund of {receipt['number']}"
    )
    await expect(refund_row.get_by_test_id("receipt-total")).to_have_text("$40.00")
    await expect(refund_row.get_by_test_id("receipt-credits")).to_have_text(
        shown_usd(refund["credits"]["usd"])
    )


async def test_the_running_months_statement_shows_the_servers_figures(
    page: Page, site: str, creditgraph: Creditgraph, tmp_path: Path
) -> None:
    await top_up(creditgraph, "100")
    await creditgraph.bill_a_call("e2e-statement-1")
    await creditgraph.bill_a_call("e2e-statement-2")
    data = await creditgraph.graphql(STATEMENTS)
    # A new organization: one statement, the month running.
    [statement] = [e["node"] for e in data["viewer"]["organization"]["statements"]["edges"]]
    assert statement["closed"] is False
    assert statement["usageByModelAndAction"][0]["requests"] == 2, statement
    await page.goto(creditgraph.dashboard_url(site))

    panel = page.get_by_test_id("statements")
    await expect(panel.get_by_test_id("statement-row")).to_have_count(1)
    row = panel.locator(f'[data-testid="statement-row"][data-month="{statement["month"]}"]')
    await expect(row.get_by_test_id("statement-state")).to_have_text("running")
    for line in FIGURES:
        await expect(row.locator(f'[data-line="{line}"]')).to_have_text(
            shown_usd(statement[line]["usd"])
        )

    # Its usage by model and action, on demand.
    usage = panel.get_by_test_id("statement-usage")
    await expect(usage).to_have_count(0)
    await row.get_by_test_id("statement-usage-toggle").click()
    rows = usage.get_by_test_id("statement-usage-row")
    await expect(rows).to_have_count(len(statement["usageByModelAndAction"]))
    for shown, line in zip(await rows.all(), statement["usageByModelAndAction"], strict=True):
        cells = [line["model"], line["action"], str(line["requests"])]
        await expect(shown.locator("td")).to_have_text([*cells, shown_usd(line["amount"]["usd"])])

    filename = f"statement-{statement['month']}"
    pdf = await downloaded(page, row.get_by_test_id("statement-pdf"), f"{filename}.pdf", tmp_path)
    assert pdf.startswith(b"%PDF")
    document = json.loads(
        await downloaded(page, row.get_by_test_id("statement-json"), f"{filename}.json", tmp_path)
    )
    assert document == json.loads(await served(creditgraph, statement["jsonUrl"]))
    assert (document["month"], document["closed"]) == (statement["month"], False)
    for line, name in FIGURES.items():
        assert document[name] == statement[line], name


async def test_saved_cards_are_made_default_and_removed(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    # Each fake payment saves the card its payer entered; the first is the default.
    await top_up(creditgraph, "10")
    await top_up(creditgraph, "10")
    saved = await cards(creditgraph)
    assert [(c["brand"], c["last4"], c["isDefault"]) for c in saved] == [
        ("mastercard", "4444", False),
        ("visa", "4242", True),
    ]
    mastercard, visa = saved
    await page.goto(creditgraph.dashboard_url(site))

    panel = page.get_by_test_id("saved-cards")
    rows = panel.get_by_test_id("card-row")
    await expect(rows).to_have_count(2)
    shown = {
        c["id"]: panel.locator(f'[data-testid="card-row"][data-id="{c["id"]}"]') for c in saved
    }
    for card in saved:
        await expect(shown[card["id"]]).to_contain_text(card["brand"])
        await expect(shown[card["id"]]).to_contain_text(card["last4"])
        await expect(shown[card["id"]]).to_contain_text(f"12/{card['expYear']}")
    await expect(shown[visa["id"]].get_by_test_id("card-default")).to_be_visible()
    await expect(shown[mastercard["id"]].get_by_test_id("card-default")).to_have_count(0)

    await shown[mastercard["id"]].get_by_test_id("card-make-default").click()
    await expect(shown[mastercard["id"]].get_by_test_id("card-default")).to_be_visible()
    await expect(shown[visa["id"]].get_by_test_id("card-default")).to_have_count(0)
    assert [(c["id"], c["isDefault"]) for c in await cards(creditgraph)] == [
        (mastercard["id"], True),
        (visa["id"], False),
    ]

    # Removing asks again; cancelled, nothing goes.
    await shown[visa["id"]].get_by_test_id("card-remove").click()
    await shown[visa["id"]].get_by_test_id("card-remove-cancel").click()
    await expect(shown[visa["id"]].get_by_test_id("card-remove-confirm")).to_have_count(0)
    assert len(await cards(creditgraph)) == 2
    await shown[visa["id"]].get_by_test_id("card-remove").click()
    await shown[visa["id"]].get_by_test_id("card-remove-confirm").click()
    await expect(rows).to_have_count(1)
    assert [c["id"] for c in await cards(creditgraph)] == [mastercard["id"]]

    # The default one gone, auto-reload has no card to charge, and says so.
    no_card = re.compile("No card saved yet")
    await expect(page.get_by_test_id("auto-reload")).not_to_contain_text(no_card)
    await shown[mastercard["id"]].get_by_test_id("card-remove").click()
    await shown[mastercard["id"]].get_by_test_id("card-remove-confirm").click()
    await expect(rows).to_have_count(0)
    assert await cards(creditgraph) == []
    await expect(page.get_by_test_id("auto-reload")).to_contain_text(no_card)


async def test_only_owners_and_admins_see_the_saved_cards(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    await top_up(creditgraph, "10")
    [receipt] = await receipts(creditgraph)
    await page.goto(creditgraph.dashboard_url(site, Role.VIEWER))
    # A viewer reads the receipts, not the cards.
    await expect(page.get_by_test_id("receipt-row")).to_have_count(1)
    await expect(page.get_by_test_id("receipt-row")).to_contain_text(receipt["number"])
    await expect(page.get_by_test_id("saved-cards")).to_have_count(0)

    await page.goto(creditgraph.dashboard_url(site, Role.ADMIN))
    await expect(page.get_by_test_id("saved-cards").get_by_test_id("card-row")).to_have_count(1)


async def test_the_ledger_and_the_billing_history_download_as_the_servers_csv(
    page: Page, site: str, creditgraph: Creditgraph, tmp_path: Path
) -> None:
    await top_up(creditgraph, "10")
    await creditgraph.bill_a_call("e2e-ledger-csv")
    ledger = (await creditgraph.graphql(LEDGER))["viewer"]["organization"]["wallet"]["entries"]
    history = (await creditgraph.graphql(TRANSACTIONS))["viewer"]["organization"][
        "billingTransactions"
    ]
    await page.goto(creditgraph.dashboard_url(site))
    await expect(page.get_by_test_id("ledger-row")).to_have_count(ledger["totalCount"])
    await expect(page.get_by_test_id("billing-row")).to_have_count(history["totalCount"])

    for button, path, filename, listed in (
        ("ledger-csv", "/api/v1/me/ledger.csv", "ledger.csv", ledger),
        ("billing-csv", "/api/v1/me/billing/transactions.csv", "billing-transactions.csv", history),
    ):
        saved = await downloaded(page, page.get_by_test_id(button), filename, tmp_path)
        assert saved == await served(creditgraph, path)
        header, *lines = saved.decode().splitlines()
        assert header.startswith("id,kind,")
        # Every row the server lists, newest first.
        ids = [line.split(",", 1)[0] for line in lines]
        assert ids == [edge["node"]["id"] for edge in listed["edges"]], button

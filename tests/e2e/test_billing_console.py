"""The billing console of each dashboard: auto-reload, autoScale, the spend cap, the plan,
credit packs, billing history and refunds, usage breakdowns and the usage CSV. Each test
checks what the page shows and what the server then holds."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from app.auth import Role
from tests.conftest import usage_event
from tests.e2e.conftest import GRANT_USD, Creditgraph, shown_usd

AUTO_RELOAD = """
{ viewer { organization { autoReload {
  enabled threshold { usd } amount { usd } monthlyMax { usd }
} } } }
"""
UPDATE_AUTO_RELOAD = """
mutation ($input: UpdateAutoReloadInput!) {
  updateAutoReload(input: $input) { userErrors { message } }
}
"""
AUTO_SCALE = "{ viewer { organization { autoScale { byDefault maxMonthlySpend { usd } } } } }"
SET_AUTO_SCALE = """
mutation ($input: SetAutoScaleInput!) {
  setAutoScale(input: $input) { userErrors { message } }
}
"""
AUDIT = "{ viewer { organization { auditEvents(first: 20) { edges { node { action } } } } } }"
SPEND_CAP = "{ viewer { organization { spendCap { monthlyLimit { usd } } } } }"
SET_SPEND_CAP = """
mutation ($input: SetSpendCapInput!) {
  setSpendCap(input: $input) { userErrors { message } }
}
"""
PLANS = "{ plans { code unit } }"
SUBSCRIPTION = """
{ viewer { organization { subscription { plan { code } nextPlan { code } } } } }
"""
TRANSACTIONS = """
{ viewer { organization { billingTransactions(first: 50) {
  totalCount edges { node { id kind status amount { usd } refunded { usd } } }
} } } }
"""
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
PACKS = "{ plans { code creditPacks { id credits { usd } priceUsd } } }"
WALLET = """
{ viewer { organization {
  wallet { balance { credits } entries(first: 10) { edges { node { kind amount { credits } } } } }
  billingTransactions(first: 10) {
    edges { node { kind status amount { usd } creditsBought { usd } } }
  }
} } }
"""
TOP_UP_ROW = '[data-testid="billing-row"][data-kind="TOP_UP"]'
SUMMARY = """
query ($since: DateTime!, $until: DateTime!) {
  viewer { organization { usageSummary(since: $since, until: $until) {
    byAction { action spend { usd } requests }
    byAgent { value spend { usd } requests }
    byConversation { value spend { usd } requests }
  } } }
}
"""


async def top_up(creditgraph: Creditgraph, usd: str) -> str:
    """A top-up through the fake provider (it settles at once); its global id."""
    data = await creditgraph.graphql(TOP_UP, input={"amountUsd": usd})
    top_up = data["createTopUp"]["topUp"]
    assert top_up["status"] == "SUCCEEDED", data
    return str(top_up["id"])


async def transactions(creditgraph: Creditgraph) -> dict[str, Any]:
    data = await creditgraph.graphql(TRANSACTIONS)
    return dict(data["viewer"]["organization"]["billingTransactions"])


async def auto_scale(creditgraph: Creditgraph) -> dict[str, Any]:
    return dict((await creditgraph.graphql(AUTO_SCALE))["viewer"]["organization"]["autoScale"])


async def wallet(creditgraph: Creditgraph) -> dict[str, Any]:
    return dict((await creditgraph.graphql(WALLET))["viewer"]["organization"])


async def test_auto_reload_is_edited_and_a_refusal_shown(
    dashboard: Page, creditgraph: Creditgraph
) -> None:
    panel = dashboard.get_by_test_id("auto-reload")
    await panel.get_by_test_id("auto-reload-enabled").check()
    await panel.get_by_test_id("auto-reload-threshold").fill("5")
    await panel.get_by_test_id("auto-reload-amount").fill("20")
    await panel.get_by_test_id("auto-reload-max").fill("200")
    await panel.get_by_test_id("auto-reload-save").click()

    await expect(panel.get_by_test_id("auto-reload-saved")).to_be_visible()
    saved = {
        "enabled": True,
        "threshold": {"usd": "5.000000"},
        "amount": {"usd": "20.000000"},
        "monthlyMax": {"usd": "200.000000"},
    }
    assert (await creditgraph.graphql(AUTO_RELOAD))["viewer"]["organization"]["autoReload"] == saved
    # A reload shows the settings as the server keeps them.
    await dashboard.reload()
    await expect(panel.get_by_test_id("auto-reload-enabled")).to_be_checked()
    for testid, value in (("auto-reload-amount", "20"), ("auto-reload-max", "200")):
        shown = re.compile(rf"^{value}(\.0+)?$")
        await expect(panel.get_by_test_id(testid)).to_have_value(shown)

    # A monthly maximum under the reload amount: the server's userError, nothing changed.
    await panel.get_by_test_id("auto-reload-max").fill("10")
    await panel.get_by_test_id("auto-reload-save").click()
    same = {"enabled": True, "thresholdUsd": "5", "amountUsd": "20", "monthlyMaxUsd": "10"}
    refused = await creditgraph.graphql(UPDATE_AUTO_RELOAD, input=same)
    [error] = refused["updateAutoReload"]["userErrors"]
    await expect(panel.get_by_role("alert")).to_contain_text(error["message"])
    assert (await creditgraph.graphql(AUTO_RELOAD))["viewer"]["organization"]["autoReload"] == saved


async def test_an_admin_switches_auto_scale_within_auto_reloads_monthly_max(
    dashboard: Page, creditgraph: Creditgraph
) -> None:
    panel = dashboard.get_by_test_id("auto-scale")
    state = panel.get_by_test_id("auto-scale-state")
    await expect(state).to_have_text("Off")
    # The Max Monthly Spend is auto-reload's monthly maximum: $100 until it is set.
    await expect(panel.get_by_test_id("auto-scale-max")).to_have_text("$100.00")

    await panel.get_by_test_id("auto-scale-toggle").click()
    await expect(state).to_have_text("On")
    assert await auto_scale(creditgraph) == {
        "byDefault": True,
        "maxMonthlySpend": {"usd": "100.000000"},
    }
    events = (await creditgraph.graphql(AUDIT))["viewer"]["organization"]["auditEvents"]
    assert [e["node"]["action"] for e in events["edges"]].count("auto_scale.update") == 1

    # It is edited where auto-reload's is, and follows.
    await panel.get_by_test_id("auto-scale-edit-max").click()
    monthly_max = dashboard.get_by_test_id("auto-reload-max")
    await expect(monthly_max).to_be_focused()
    await monthly_max.fill("150")
    await dashboard.get_by_test_id("auto-reload-save").click()
    await expect(panel.get_by_test_id("auto-scale-max")).to_have_text("$150.00")

    await panel.get_by_test_id("auto-scale-toggle").click()
    await expect(state).to_have_text("Off")
    assert await auto_scale(creditgraph) == {
        "byDefault": False,
        "maxMonthlySpend": {"usd": "150.000000"},
    }


async def test_a_viewer_sees_auto_scale_but_not_its_switch(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    await creditgraph.graphql(SET_AUTO_SCALE, input={"byDefault": True})
    await page.goto(creditgraph.dashboard_url(site, Role.VIEWER))
    panel = page.get_by_test_id("auto-scale")
    await expect(panel.get_by_test_id("auto-scale-state")).to_have_text("On")
    await expect(panel.get_by_test_id("auto-scale-max")).to_have_text("$100.00")
    await expect(panel.get_by_test_id("auto-scale-toggle")).to_have_count(0)
    await expect(panel.get_by_test_id("auto-scale-edit-max")).to_have_count(0)


async def test_a_plan_credit_organization_buys_a_credit_pack(
    page: Page, site: str, agents: Creditgraph
) -> None:
    before = await wallet(agents)
    await page.goto(agents.dashboard_url(site))

    # The plan's packs, each with its credits and price; no dollar amount to type.
    picker = page.get_by_test_id("topup-pack")
    [packs] = [
        p["creditPacks"]
        for p in (await agents.graphql(PACKS))["plans"]
        if p["code"] == "8bit-starter"
    ]
    options = picker.locator("option")
    await expect(options).to_have_count(len(packs))
    for option, pack in zip(await options.all(), packs, strict=True):
        assert await option.get_attribute("value") == pack["id"]
        await expect(option).to_contain_text(f"{int(Decimal(pack['credits']['usd'])):,} credits")
        await expect(option).to_contain_text(shown_usd(pack["priceUsd"]))
    await expect(page.get_by_test_id("topup-amount")).to_have_count(0)

    await picker.select_option("8bit-starter:1000")
    quote = page.get_by_test_id("topup-quote")
    await expect(quote).to_contain_text("1,000 credits")
    await expect(quote).to_contain_text("$20.00")
    await page.get_by_test_id("topup-submit").click()
    await expect(page.get_by_test_id("topup-status")).to_contain_text("SUCCEEDED")

    # The pack's 1,000 plan credits landed, for its $20.
    after = await wallet(agents)
    bought = 1000 * 1_000_000
    balance = int(after["wallet"]["balance"]["credits"])
    assert balance - int(before["wallet"]["balance"]["credits"]) == bought
    newest = after["wallet"]["entries"]["edges"][0]["node"]
    assert newest == {"kind": "TOP_UP", "amount": {"credits": str(bought)}}
    [paid] = [
        e["node"] for e in after["billingTransactions"]["edges"] if e["node"]["kind"] == "TOP_UP"
    ]
    assert paid == {
        "kind": "TOP_UP",
        "status": "SUCCEEDED",
        "amount": {"usd": "20.000000"},
        "creditsBought": {"usd": "1000.000000"},
    }


async def test_a_plan_credit_wallet_is_shown_in_plan_credits_and_a_usd_one_in_dollars(
    page: Page, site: str, creditgraph: Creditgraph, agents: Creditgraph
) -> None:
    # The cap and auto-reload's threshold count plan credits; the reload's amount is dollars.
    data = await agents.graphql(SET_SPEND_CAP, input={"monthlyLimitUsd": "25000"})
    assert data["setSpendCap"]["userErrors"] == [], data
    reload = {"enabled": True, "thresholdUsd": "50", "amountUsd": "10", "monthlyMaxUsd": "100"}
    data = await agents.graphql(UPDATE_AUTO_RELOAD, input=reload)
    assert data["updateAutoReload"]["userErrors"] == [], data
    await page.goto(agents.dashboard_url(site))
    balance = page.get_by_test_id("balance")
    # Starter's allocation: 20,000 plan credits, not $20000.
    await expect(balance).to_have_text("20,000 credits")

    await page.get_by_test_id("topup-pack").select_option("8bit-starter:1000")
    await page.get_by_test_id("topup-submit").click()
    await expect(balance).to_have_text("21,000 credits")
    main = page.locator("main")
    await expect(main).to_contain_text("$10.00 below 50 credits")
    await expect(page.get_by_test_id("spend-cap-current")).to_contain_text(
        "0 credits spent of 25,000 credits"
    )
    newest = page.get_by_test_id("ledger-row").first
    await expect(newest).to_contain_text("1,000 credits")
    await expect(newest).to_contain_text("21,000 credits")
    # The pack's row: its price in dollars, the credits it brought in plan credits.
    paid = page.locator(TOP_UP_ROW)
    await expect(paid).to_contain_text("$20.00")
    await expect(paid).to_contain_text("1,000 credits")
    allocation = page.locator('[data-testid="billing-row"][data-kind="PLAN_ALLOCATION"]')
    await expect(allocation).to_contain_text("20,000 credits")
    await expect(main).not_to_contain_text(re.compile(r"\$2[01],?000"))

    # A call billed a tenth of a plan credit: shown to the stored precision, live.
    key = await agents.key("agent key")
    [billed] = await agents.harness.usage(
        agents.org, usage_event(key.id, "call-1", model="8bit/api")
    )
    assert billed["cost"] == {"credits": "100000", "usd": "0.100000"}, billed
    await expect(balance).to_have_text("20,999.9 credits")
    await expect(page.get_by_test_id("usage-row").first).to_contain_text("0.1 credits")

    # A USD organization's wallet stays in dollars.
    await page.goto(creditgraph.dashboard_url(site))
    await expect(balance).to_have_text(shown_usd(GRANT_USD))
    await expect(page.get_by_test_id("ledger-row").first).to_contain_text(shown_usd(GRANT_USD))
    await expect(page.get_by_test_id("spend-cap-current")).to_contain_text("No cap; $0.00 spent")


async def test_a_usd_organization_tops_up_an_amount_not_packs(dashboard: Page) -> None:
    await expect(dashboard.get_by_test_id("topup-amount")).to_be_visible()
    await expect(dashboard.get_by_test_id("topup-quote")).to_contain_text("credits")
    await expect(dashboard.get_by_test_id("topup-pack")).to_have_count(0)


async def test_the_monthly_spend_cap_is_set_and_removed(
    dashboard: Page, creditgraph: Creditgraph
) -> None:
    panel = dashboard.get_by_test_id("spend-cap")
    await expect(panel.get_by_test_id("spend-cap-current")).to_contain_text("No cap")
    await panel.get_by_test_id("spend-cap-limit").fill("50")
    await panel.get_by_test_id("spend-cap-save").click()

    await expect(panel.get_by_test_id("spend-cap-current")).to_contain_text("$50.00")
    cap = await creditgraph.graphql(SPEND_CAP)
    assert cap["viewer"]["organization"]["spendCap"] == {"monthlyLimit": {"usd": "50.000000"}}

    await panel.get_by_test_id("spend-cap-remove").click()
    await expect(panel.get_by_test_id("spend-cap-current")).to_contain_text("No cap")
    cap = await creditgraph.graphql(SPEND_CAP)
    assert cap["viewer"]["organization"]["spendCap"] == {"monthlyLimit": None}


async def test_the_plan_is_shown_and_changed_among_the_plans_of_the_orgs_unit(
    dashboard: Page, creditgraph: Creditgraph
) -> None:
    panel = dashboard.get_by_test_id("plan")
    await expect(panel.get_by_test_id("plan-current")).to_contain_text("No plan")
    catalog = (await creditgraph.graphql(PLANS))["plans"]
    # A USD-credit organization: 8bit-ai's plan-credit plans are not offered.
    offered = [plan["code"] for plan in catalog if plan["unit"] == "usd"]
    rows = panel.get_by_test_id("plan-row")
    await expect(rows).to_have_count(len(offered))
    assert [await row.get_attribute("data-code") for row in await rows.all()] == offered

    # An upgrade applies at once.
    await panel.locator('[data-code="bytez-payg"]').get_by_test_id("plan-choose").click()
    await expect(panel.get_by_test_id("plan-current")).to_contain_text("Bytez Pay-as-you-go")
    data = await creditgraph.graphql(SUBSCRIPTION)
    assert data["viewer"]["organization"]["subscription"] == {
        "plan": {"code": "bytez-payg"},
        "nextPlan": None,
    }

    # A downgrade waits for the period's end.
    await panel.locator('[data-code="bytez-free"]').get_by_test_id("plan-choose").click()
    await expect(panel.get_by_test_id("plan-change-result")).to_contain_text("Bytez Free")
    await expect(panel.get_by_test_id("plan-current")).to_contain_text("Bytez Free")
    data = await creditgraph.graphql(SUBSCRIPTION)
    assert data["viewer"]["organization"]["subscription"] == {
        "plan": {"code": "bytez-payg"},
        "nextPlan": {"code": "bytez-free"},
    }


async def test_billing_history_lists_top_ups_with_their_status(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    await top_up(creditgraph, "10")
    await page.goto(creditgraph.dashboard_url(site))
    history = page.get_by_test_id("billing-history")
    rows = history.get_by_test_id("billing-row")
    await expect(rows).to_have_count((await transactions(creditgraph))["totalCount"])
    paid = history.locator(TOP_UP_ROW)
    await expect(paid).to_have_count(1)
    await expect(paid.get_by_test_id("billing-status")).to_have_text("SUCCEEDED")
    await expect(paid).to_contain_text("$10.00")

    # A top-up paid on the page joins the history without a reload.
    await page.get_by_test_id("topup-amount").fill("25")
    await page.get_by_test_id("topup-submit").click()
    await expect(paid).to_have_count(2)
    await expect(rows.first).to_contain_text("$25.00")
    await expect(rows).to_have_count((await transactions(creditgraph))["totalCount"])


async def test_an_admin_refunds_a_top_up(page: Page, site: str, creditgraph: Creditgraph) -> None:
    await top_up(creditgraph, "10")
    # Members see the history but no refund.
    await page.goto(creditgraph.dashboard_url(site, Role.MEMBER))
    paid = page.locator(TOP_UP_ROW)
    await expect(paid).to_contain_text("SUCCEEDED")
    await expect(page.get_by_test_id("topup-refund")).to_have_count(0)

    await page.goto(creditgraph.dashboard_url(site, Role.ADMIN))
    await paid.get_by_test_id("topup-refund").click()
    await page.get_by_test_id("refund-confirm").click()

    await expect(page.get_by_test_id("refund-result")).to_contain_text("$10.00")
    refunds = page.locator('[data-testid="billing-row"][data-kind="REFUND"]')
    await expect(refunds).to_have_count(1)
    # Unspent, the credits it bought (and their bonus) went back.
    await expect(page.get_by_test_id("balance")).to_have_text(shown_usd(GRANT_USD))
    await expect(paid.get_by_test_id("topup-refund")).to_have_count(0)
    [refunded] = [
        edge["node"]
        for edge in (await transactions(creditgraph))["edges"]
        if edge["node"]["kind"] == "TOP_UP"
    ]
    assert refunded["refunded"] == {"usd": "10.000000"}


async def test_a_refused_refund_shows_the_servers_reason(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    await creditgraph.harness.runtime.subscriptions.change(
        creditgraph.org.id, "bytez-payg", actor="test", by_operator=True
    )
    top_up_id = await top_up(creditgraph, "10")
    await page.goto(creditgraph.dashboard_url(site))
    paid = page.locator(TOP_UP_ROW)
    await paid.get_by_test_id("topup-refund").click()
    await page.get_by_test_id("refund-confirm").click()

    # Bytez: credits are non-refundable. The page shows the server's words.
    refused = await creditgraph.graphql(REFUND, input={"topUpId": top_up_id})
    [error] = refused["refundTopUp"]["userErrors"]
    assert "non-refundable" in error["message"]
    await expect(page.get_by_role("alert")).to_contain_text(error["message"])
    await expect(page.get_by_test_id("refund-result")).to_have_count(0)
    [kept] = [
        edge["node"]
        for edge in (await transactions(creditgraph))["edges"]
        if edge["node"]["kind"] == "TOP_UP"
    ]
    assert kept["refunded"] == {"usd": "0.000000"}


async def test_usage_breaks_down_by_action_agent_and_conversation(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    key = await creditgraph.key("agents")
    calls = [
        ("e2e-t1", "llm_inference", "support-bot", "c-1"),
        ("e2e-t2", "llm_inference", "support-bot", "c-2"),
        ("e2e-t3", "knowledge_base_query", "researcher", "c-2"),
    ]
    events = [
        usage_event(key.id, request_id, action=action, tags={"agent": agent, "conversation": chat})
        for request_id, action, agent, chat in calls
    ]
    results = await creditgraph.harness.usage(creditgraph.org, *events)
    assert [r["outcome"] for r in results] == ["billed"] * 3, results
    await page.goto(creditgraph.dashboard_url(site))

    now = creditgraph.harness.runtime.clock.now()
    since, until = (now - timedelta(days=1)).isoformat(), now.isoformat()
    data = await creditgraph.graphql(SUMMARY, since=since, until=until)
    summary = data["viewer"]["organization"]["usageSummary"]
    tables = {
        "action-breakdown": [(r["action"], r) for r in summary["byAction"]],
        "agent-breakdown": [(r["value"], r) for r in summary["byAgent"]],
        "conversation-breakdown": [(r["value"], r) for r in summary["byConversation"]],
    }
    assert [label for label, _ in tables["agent-breakdown"]] == ["support-bot", "researcher"]
    for testid, expected in tables.items():
        rows = page.get_by_test_id(testid).get_by_test_id("breakdown-row")
        await expect(rows).to_have_count(len(expected))
        for row, (label, figures) in zip(await rows.all(), expected, strict=True):
            cells = [label, str(figures["requests"]), shown_usd(figures["spend"]["usd"])]
            await expect(row.locator("td")).to_have_text(cells)


async def test_the_usage_log_downloads_as_the_servers_csv(
    page: Page, site: str, creditgraph: Creditgraph, tmp_path: Path
) -> None:
    key = await creditgraph.key("csv gateway")
    await creditgraph.bill_a_call("e2e-csv-1", key)
    await creditgraph.bill_a_call("e2e-csv-2", key)
    await page.goto(creditgraph.dashboard_url(site))
    await expect(page.get_by_test_id("usage-row")).to_have_count(2)

    async with page.expect_download() as started:
        await page.get_by_test_id("usage-csv").click()
    download = await started.value
    assert download.suggested_filename == "usage.csv"
    saved = tmp_path / "usage.csv"
    await download.save_as(saved)

    served = await creditgraph.harness.http.get(
        "/api/v1/me/usage.csv", headers=creditgraph.harness.token(creditgraph.org, Role.OWNER)
    )
    assert served.status_code == 200
    assert saved.read_bytes() == served.content
    lines = served.text.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("request_id,")
    assert lines[1].startswith("e2e-csv-2,")
    assert lines[2].startswith("e2e-csv-1,")

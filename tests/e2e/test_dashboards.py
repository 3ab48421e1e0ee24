"""Each dashboard (frontend-examples/*-dashboard), built and served from another origin,
against a real creditgraph: the shared UI contract in frontend-examples/README.md."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from app.ids import to_global_id
from tests.e2e.conftest import Creditgraph


async def test_it_loads_with_the_seeded_balance_and_every_panel(dashboard: Page) -> None:
    await expect(dashboard.get_by_test_id("balance")).to_have_text("$25.994")
    for panel in ("ledger", "api-keys", "usage-table", "spend-chart", "model-breakdown", "alerts"):
        await expect(dashboard.get_by_test_id(panel)).to_be_visible()
    # The grant is the ledger's one entry.
    await expect(dashboard.get_by_test_id("ledger-row")).to_have_count(1)


async def test_a_new_key_shows_its_secret_once(dashboard: Page) -> None:
    await dashboard.get_by_test_id("create-key-name").fill("ci gateway")
    await dashboard.get_by_test_id("create-key-submit").click()

    dialog = dashboard.get_by_test_id("key-secret-dialog")
    await expect(dialog).to_be_visible()
    secret = (await dialog.get_by_test_id("key-secret").inner_text()).strip()
    assert re.fullmatch(r"sk-\S+", secret), secret
    await dialog.get_by_test_id("key-secret-close").click()

    await expect(dialog).to_have_count(0)
    rows = dashboard.get_by_test_id("api-keys").get_by_test_id("api-key-row")
    await expect(rows.filter(has_text="ci gateway")).to_have_count(1)
    assert secret not in await dashboard.content()


async def test_a_top_up_through_the_fake_provider_lands_with_its_bonus(dashboard: Page) -> None:
    await expect(dashboard.get_by_test_id("balance")).to_have_text("$25.994")
    await dashboard.get_by_test_id("topup-amount").fill("99.99")
    # $99.99 earns the ladder's 3% bonus: 102,989,700 credits, however they are grouped.
    quote = dashboard.get_by_test_id("topup-quote")
    await expect(quote).to_have_text(re.compile(r"102[,.\s\u202f]?989[,.\s\u202f]?700"))
    await dashboard.get_by_test_id("topup-submit").click()

    await expect(dashboard.get_by_test_id("topup-status")).to_contain_text("SUCCEEDED")
    await expect(dashboard.get_by_test_id("balance")).to_have_text("$128.9837")


async def test_usage_billed_through_the_rest_api_moves_the_balance_without_a_reload(
    dashboard: Page, creditgraph: Creditgraph
) -> None:
    await expect(dashboard.get_by_test_id("balance")).to_have_text("$25.994")
    # Gone if the page reloads.
    await dashboard.evaluate("window.__notReloaded = true")

    await creditgraph.bill_a_call("e2e-call-1")
    await expect(dashboard.get_by_test_id("balance")).to_have_text("$25.988")
    await creditgraph.bill_a_call("e2e-call-2")
    await expect(dashboard.get_by_test_id("balance")).to_have_text("$25.982")
    assert await dashboard.evaluate("window.__notReloaded === true")


async def test_the_usage_log_filters_by_key(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    first, second = await creditgraph.key("gateway a"), await creditgraph.key("gateway b")
    await creditgraph.bill_a_call("e2e-by-a", first)
    await creditgraph.bill_a_call("e2e-by-b", second)
    await page.goto(creditgraph.dashboard_url(site))
    rows = page.get_by_test_id("usage-table").get_by_test_id("usage-row")
    await expect(rows).to_have_count(2)

    await page.get_by_test_id("usage-filter-key").select_option(to_global_id("ApiKey", second.id))
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("e2e-by-b")
    await expect(rows.first).to_contain_text("gateway b")

    await page.get_by_test_id("usage-filter-key").select_option("")  # all keys again
    await expect(rows).to_have_count(2)

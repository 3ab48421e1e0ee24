"""Each dashboard's webhook endpoints (against a receiver on this host: the signing secret
shown once, a signed test event and its attempts, a failure redelivered, a private address
refused, enable, disable and delete) and promo codes (redeemed once; the server's
refusals shown). Owners and admins only. Each test checks what the page shows and what
the server then holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Page, expect

from app.auth import Role
from app.settings import Settings
from tests.alerts.conftest import Receiver, receiver  # noqa: F401 - the fixture
from tests.e2e.conftest import GRANT_USD, Creditgraph, shown_usd
from tests.grants.conftest import REDEEM, make_promo
from tests.webhooks.test_endpoints import deliveries, op, signed_by

LEDGER = """
{ viewer { organization { wallet {
  balance { credits } entries(first: 10) { edges { node { kind amount { credits } reference } } }
} } } }
"""


@pytest.fixture
def allow_private() -> bool:
    """The receiver listens on 127.0.0.1: loopback destinations allowed, unless a test says."""
    return True


@pytest.fixture
def settings(settings: Settings, allow_private: bool) -> Settings:
    # A failed attempt is retried an hour later: never while a test looks at it.
    update = {"alert_webhook_allow_private": allow_private, "alert_webhook_backoff_seconds": 3600}
    return settings.model_copy(update=update)


async def endpoints(creditgraph: Creditgraph) -> list[dict[str, Any]]:
    data = await creditgraph.graphql(op("WebhookEndpoints"))
    return list(data["viewer"]["organization"]["webhookEndpoints"])


async def create_endpoint(creditgraph: Creditgraph, url: str) -> dict[str, Any]:
    data = await creditgraph.graphql(
        op("CreateWebhookEndpoint"), input={"url": url, "events": ["PLAN_CHANGED"]}
    )
    payload: dict[str, Any] = data["createWebhookEndpoint"]
    assert payload["userErrors"] == [], payload
    return payload


async def test_an_endpoint_shows_its_secret_once_and_gets_a_signed_test_event(
    dashboard: Page,
    creditgraph: Creditgraph,
    receiver: Receiver,  # noqa: F811 - the fixture
) -> None:
    panel = dashboard.get_by_test_id("webhooks")
    await panel.get_by_test_id("webhook-url").fill(receiver.url)
    await panel.get_by_test_id("webhook-description").fill("billing events")
    create = panel.get_by_test_id("webhook-create")
    await expect(create).to_be_disabled()  # at least one event
    for name in ("top_up.succeeded", "plan.changed"):
        await panel.get_by_label(name, exact=True).check()
    await create.click()

    dialog = dashboard.get_by_test_id("webhook-secret-dialog")
    secret = await dialog.get_by_test_id("webhook-secret").inner_text()
    assert secret.startswith("whsec_")
    await dialog.get_by_test_id("webhook-secret-close").click()
    await expect(dialog).to_have_count(0)
    assert secret not in await dashboard.content()
    [held] = await endpoints(creditgraph)
    assert (held["url"], held["description"], held["enabled"]) == (
        receiver.url,
        "billing events",
        True,
    )
    assert held["events"] == ["TOP_UP_SUCCEEDED", "PLAN_CHANGED"]
    row = panel.get_by_test_id("webhook-endpoint")
    await expect(row.get_by_test_id("webhook-endpoint-url")).to_have_text(receiver.url)
    await expect(row.get_by_test_id("webhook-endpoint-events")).to_have_text(
        "top_up.succeeded, plan.changed"
    )

    await row.get_by_test_id("webhook-test").click()
    delivery = row.get_by_test_id("webhook-delivery")
    await expect(delivery).to_have_attribute("data-status", "DELIVERED")
    await expect(delivery.get_by_test_id("webhook-delivery-type")).to_have_text("webhook.test")
    await expect(delivery.get_by_test_id("webhook-delivery-attempts")).to_have_text("1")
    await expect(delivery.get_by_test_id("webhook-delivery-next")).to_have_text("—")
    await expect(delivery.get_by_test_id("webhook-attempt")).to_contain_text("200")
    # Signed with the secret the page showed, as a receiver checks it (README).
    [request] = receiver.requests
    assert signed_by(secret, request)
    [sent] = deliveries((await endpoints(creditgraph))[0])
    assert json.loads(request.body) == sent["event"]["payload"]
    assert sent["event"]["type"] == "webhook.test"
    assert (sent["status"], [a["statusCode"] for a in sent["attempts"]]) == ("DELIVERED", [200])
    at = sent["attempts"][0]["at"]
    await expect(delivery.get_by_test_id("webhook-attempt").locator("time")).to_have_attribute(
        "datetime", at
    )


async def test_a_failed_attempt_shows_and_redeliver_sends_the_event_again(
    page: Page,
    site: str,
    creditgraph: Creditgraph,
    receiver: Receiver,  # noqa: F811 - the fixture
) -> None:
    receiver.status = 500
    await create_endpoint(creditgraph, receiver.url)
    await page.goto(creditgraph.dashboard_url(site))
    row = page.get_by_test_id("webhook-endpoint")
    await row.get_by_test_id("webhook-test").click()
    failed = row.get_by_test_id("webhook-delivery")
    await expect(failed.get_by_test_id("webhook-attempt")).to_contain_text("500: HTTP 500")
    [held] = deliveries((await endpoints(creditgraph))[0])
    assert (held["status"], held["attemptCount"]) == ("PENDING", 1)
    assert held["attempts"][0]["error"] == "HTTP 500"
    await expect(failed).to_have_attribute("data-status", "PENDING")
    await expect(failed.get_by_test_id("webhook-delivery-attempts")).to_have_text("1")
    next_attempt = failed.get_by_test_id("webhook-delivery-next").locator("time")
    await expect(next_attempt).to_have_attribute("datetime", held["nextAttemptAt"])

    receiver.status = 200
    await failed.get_by_test_id("webhook-redeliver").click()
    shown = row.get_by_test_id("webhook-delivery")
    await expect(shown).to_have_count(2)
    # Newest first: a new delivery of the same event, delivered; the failed one as it was.
    await expect(shown.first).to_have_attribute("data-status", "DELIVERED")
    await expect(shown.last).to_have_attribute("data-status", "PENDING")
    newest, first = deliveries((await endpoints(creditgraph))[0])
    assert newest["event"]["id"] == first["event"]["id"]
    assert (newest["status"], [a["statusCode"] for a in newest["attempts"]]) == (
        "DELIVERED",
        [200],
    )
    assert [r.body for r in receiver.requests] == [receiver.requests[0].body] * 2


async def test_an_endpoint_is_disabled_enabled_and_deleted(
    page: Page,
    site: str,
    creditgraph: Creditgraph,
    receiver: Receiver,  # noqa: F811 - the fixture
) -> None:
    await create_endpoint(creditgraph, receiver.url)
    await page.goto(creditgraph.dashboard_url(site))
    row = page.get_by_test_id("webhook-endpoint")
    state, toggle = row.get_by_test_id("webhook-state"), row.get_by_test_id("webhook-toggle")
    await toggle.click()
    await expect(state).to_have_text("Disabled")
    await expect(row.get_by_test_id("webhook-test")).to_be_disabled()
    assert [e["enabled"] for e in await endpoints(creditgraph)] == [False]
    await toggle.click()
    await expect(state).to_have_text("Enabled")
    await expect(row.get_by_test_id("webhook-test")).to_be_enabled()
    assert [e["enabled"] for e in await endpoints(creditgraph)] == [True]

    await row.get_by_test_id("webhook-delete").click()
    await row.get_by_test_id("webhook-delete-confirm").click()
    await expect(row).to_have_count(0)
    assert await endpoints(creditgraph) == []


@pytest.mark.parametrize("allow_private", [False])
async def test_a_private_address_is_refused_with_the_servers_message(
    dashboard: Page, creditgraph: Creditgraph
) -> None:
    panel = dashboard.get_by_test_id("webhooks")
    await panel.get_by_test_id("webhook-url").fill("http://10.0.0.1/hook")
    await panel.get_by_label("api_key.created", exact=True).check()
    await panel.get_by_test_id("webhook-create").click()

    input = {"url": "http://10.0.0.1/hook", "events": ["API_KEY_CREATED"]}
    refused = await creditgraph.graphql(op("CreateWebhookEndpoint"), input=input)
    [error] = refused["createWebhookEndpoint"]["userErrors"]
    assert (error["field"], error["code"]) == ("url", "INVALID_INPUT")
    assert "10.0.0.1 is not a public address" in error["message"]
    await expect(panel.get_by_role("alert")).to_contain_text(error["message"])
    await expect(dashboard.get_by_test_id("webhook-secret-dialog")).to_have_count(0)
    assert await endpoints(creditgraph) == []


async def test_a_promo_code_is_redeemed_once_and_refusals_say_why(
    dashboard: Page, creditgraph: Creditgraph
) -> None:
    await make_promo(creditgraph.harness, "WELCOME-10", "10", credits_expire_days=14)
    panel = dashboard.get_by_test_id("promo")
    balance = dashboard.get_by_test_id("balance")
    await expect(balance).to_have_text(shown_usd(GRANT_USD))
    await panel.get_by_test_id("promo-code").fill("welcome-10")
    await panel.get_by_test_id("promo-redeem").click()

    result = panel.get_by_test_id("promo-result")
    await expect(result).to_contain_text("Added $10.00")
    wallet = (await creditgraph.graphql(LEDGER))["viewer"]["organization"]["wallet"]
    assert wallet["balance"] == {"credits": "35994000"}
    assert wallet["entries"]["edges"][0]["node"] == {
        "kind": "GRANT",
        "amount": {"credits": "10000000"},
        "reference": "promo:WELCOME-10:1",
    }
    # The lot's expiry, as the server keeps it; the balance follows live.
    lots = """{ viewer { organization { wallet { lots(first: 5) {
      edges { node { source expiresAt } } } } } } }"""
    data = await creditgraph.graphql(lots)
    [expires] = [
        e["node"]["expiresAt"]
        for e in data["viewer"]["organization"]["wallet"]["lots"]["edges"]
        if e["node"]["expiresAt"]
    ]
    await expect(result.locator("time")).to_have_attribute("datetime", expires)
    await expect(balance).to_have_text("$35.994")

    # Again: refused, nothing given; then a code that does not exist.
    for code, expected in (("WELCOME-10", "PROMO_CODE_ALREADY_REDEEMED"), ("NO-SUCH", "NOT_FOUND")):
        await panel.get_by_test_id("promo-code").fill(code)
        await panel.get_by_test_id("promo-redeem").click()
        refused = await creditgraph.graphql(REDEEM, input={"code": code})
        [error] = refused["redeemPromoCode"]["userErrors"]
        assert error["code"] == expected
        await expect(panel.get_by_role("alert")).to_contain_text(error["message"])
        await expect(result).to_have_count(0)
    assert (await creditgraph.graphql(LEDGER))["viewer"]["organization"]["wallet"] == wallet


async def test_a_plan_credit_organization_redeems_plan_credits(
    page: Page, site: str, agents: Creditgraph
) -> None:
    await make_promo(agents.harness, "AGENTS-1000", "1000", unit="credit")
    await make_promo(agents.harness, "DOLLARS-5", "5")
    await page.goto(agents.dashboard_url(site))
    panel = page.get_by_test_id("promo")

    # A USD code does not apply to a plan-credit wallet.
    await panel.get_by_test_id("promo-code").fill("DOLLARS-5")
    await panel.get_by_test_id("promo-redeem").click()
    refused = await agents.graphql(REDEEM, input={"code": "DOLLARS-5"})
    [error] = refused["redeemPromoCode"]["userErrors"]
    assert error["code"] == "PROMO_CODE_NOT_APPLICABLE"
    await expect(panel.get_by_role("alert")).to_contain_text(error["message"])

    await panel.get_by_test_id("promo-code").fill("AGENTS-1000")
    await panel.get_by_test_id("promo-redeem").click()
    await expect(panel.get_by_test_id("promo-result")).to_have_text(
        "Added 1,000 credits, never expiring."
    )
    wallet = (await agents.graphql(LEDGER))["viewer"]["organization"]["wallet"]
    assert wallet["entries"]["edges"][0]["node"]["reference"] == "promo:AGENTS-1000:1"


async def test_only_owners_and_admins_see_webhooks_and_promo_codes(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    await page.goto(creditgraph.dashboard_url(site, Role.ADMIN))
    for testid in ("webhooks", "promo"):
        await expect(page.get_by_test_id(testid)).to_be_visible()

    await page.goto(creditgraph.dashboard_url(site, Role.VIEWER))
    # Once the page knows the role (its header says it), neither panel is there.
    await expect(page.locator("header")).to_contain_text("viewer", ignore_case=True)
    await expect(page.get_by_test_id("balance")).to_have_text(shown_usd(GRANT_USD))
    for testid in ("webhooks", "promo"):
        await expect(page.get_by_test_id(testid)).to_have_count(0)

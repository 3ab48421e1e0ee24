"""The key actions of each dashboard beyond create, rotate and revoke: reveal a secret
again (owners; only when the server keeps secrets encrypted) and the Test call (what
the gateway's authorize would answer, no hold placed)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from playwright.async_api import Page, expect

from app.auth import Role
from app.ids import to_global_id
from tests.e2e.conftest import Creditgraph

REVEAL = """
mutation ($input: RevealApiKeyInput!) {
  revealApiKey(input: $input) { secret userErrors { code message } }
}
"""
AUDIT = """
{ viewer { organization { auditEvents(first: 10) { edges { node { action targetId } } } } } }
"""


async def test_reveal_says_why_when_the_server_keeps_no_secrets(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    key = await creditgraph.key("kept nowhere")
    await page.goto(creditgraph.dashboard_url(site))
    row = page.get_by_test_id("api-key-row").filter(has_text="kept nowhere")
    await row.get_by_test_id("key-reveal").click()

    refused = await creditgraph.graphql(REVEAL, input={"id": to_global_id("ApiKey", key.id)})
    [error] = refused["revealApiKey"]["userErrors"]
    assert error["code"] == "REVEAL_UNAVAILABLE"
    assert "no key encryption key is configured" in error["message"]
    await expect(row.get_by_role("alert")).to_contain_text(error["message"])
    await expect(page.get_by_test_id("key-secret-dialog")).to_have_count(0)
    assert key.secret not in await page.content()


@pytest.mark.parametrize("key_encryption_key", [Fernet.generate_key().decode()])
async def test_an_owner_reveals_a_secret_and_it_is_audited(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    key = await creditgraph.key("kept encrypted")
    # Admins may do everything but reveal.
    await page.goto(creditgraph.dashboard_url(site, Role.ADMIN))
    row = page.get_by_test_id("api-key-row").filter(has_text="kept encrypted")
    await expect(row.get_by_test_id("key-rotate")).to_be_visible()
    await expect(row.get_by_test_id("key-reveal")).to_have_count(0)

    await page.goto(creditgraph.dashboard_url(site))
    await row.get_by_test_id("key-reveal").click()
    dialog = page.get_by_test_id("key-secret-dialog")
    await expect(dialog.get_by_test_id("key-secret")).to_have_text(key.secret)
    await dialog.get_by_test_id("key-secret-close").click()
    await expect(dialog).to_have_count(0)
    assert key.secret not in await page.content()

    events = (await creditgraph.graphql(AUDIT))["viewer"]["organization"]["auditEvents"]
    actions = [(e["node"]["action"], e["node"]["targetId"]) for e in events["edges"]]
    assert ("api_key.reveal", to_global_id("ApiKey", key.id)) in actions


async def test_the_test_call_shows_allowed_or_the_exact_refusal_and_holds_nothing(
    page: Page, site: str, creditgraph: Creditgraph
) -> None:
    key = await creditgraph.key("tested")
    await page.goto(creditgraph.dashboard_url(site))
    row = page.get_by_test_id("api-key-row").filter(has_text="tested")
    await row.get_by_test_id("key-test").click()
    await page.get_by_test_id("key-test-model").fill("claude-sonnet-4-6")
    await page.get_by_test_id("key-test-run").click()
    result = page.get_by_test_id("key-test-result")
    await expect(result).to_contain_text("Allowed")

    # More than the wallet holds: authorize's own 402 and message, word for word.
    await page.get_by_test_id("key-test-hold").fill("100")
    await page.get_by_test_id("key-test-run").click()
    answer = await creditgraph.harness.authorize(key, "e2e-test-call", hold_usd="100")
    assert answer.status_code == 402, answer.text
    await expect(result).to_contain_text("402")
    await expect(result).to_contain_text(answer.json()["message"])
    await expect(result).not_to_contain_text("Allowed")
    # The test placed no hold (nor did the refused authorization).
    assert await creditgraph.harness.balance(creditgraph.org) == (25_994_000, 0)

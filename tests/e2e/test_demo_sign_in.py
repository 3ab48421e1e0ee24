"""The demo's printed links in the browser: the console and GraphiQL signed in as the demo
owner with no token pasted, the code gone from the address, and a used link explained."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests import servers
from tests.e2e.conftest import build


@pytest.fixture
def links(tmp_path: Path, chromium: Path) -> Iterator[dict[str, str]]:
    """``creditgraph serve --demo`` serving the React dashboard's build from where it is
    by default (frontend-examples/react-dashboard/dist); its printed links by label."""
    build("react-dashboard")
    env = servers.environment(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", tmp_path / "state")
    log = tmp_path / "demo.log"
    instance = servers.start(env, log, "--demo")
    try:
        printed = [line.split() for line in servers.printout(log)]
        yield {words[0]: words[1] for words in printed if len(words) == 2}
    finally:
        instance.stop()


async def test_the_console_link_signs_in_once(
    page: Page, browser: Browser, links: dict[str, str]
) -> None:
    await page.goto(links["Console"])
    await expect(page.get_by_role("heading", name="Demo AI Labs billing")).to_be_visible()
    await expect(page.get_by_text("signed in as owner")).to_be_visible()
    await expect(page.get_by_test_id("balance")).to_have_text(re.compile(r"^\$\d"))
    assert "signin" not in page.url
    await page.reload()  # the tab keeps its session
    await expect(page.get_by_text("signed in as owner")).to_be_visible()

    elsewhere = await browser.new_page()
    try:
        await elsewhere.goto(links["Console"])
        refusal = elsewhere.get_by_role("alert")
        await expect(refusal).to_contain_text("already used")
        await expect(refusal).to_contain_text("restart `creditgraph serve --demo`")
    finally:
        await elsewhere.close()


async def test_the_graphiql_link_runs_a_query_as_the_owner(
    page: Page, links: dict[str, str]
) -> None:
    await page.goto(links["GraphiQL"])
    await expect(page.locator(".graphiql-container")).to_be_visible()
    assert "signin" not in page.url
    headers = page.locator(".graphiql-editor-tool .graphiql-editor").last
    await expect(headers).to_contain_text('"Authorization": "Bearer ey')
    # The default query holds every operation: the run button offers them by name.
    await page.locator(".graphiql-execute-button").click()
    await page.get_by_role("menuitem", name="Viewer", exact=True).click()
    result = page.locator(".result-window")
    await expect(result).to_contain_text('"role": "OWNER"')
    await expect(result).to_contain_text('"slug": "demo"')

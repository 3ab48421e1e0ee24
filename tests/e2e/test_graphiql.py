"""GraphiQL at /graphql, in the same browser as the dashboards: it runs a query."""

from __future__ import annotations

import json

from playwright.async_api import Page, expect

from tests.e2e.conftest import ORG, Creditgraph


async def test_graphiql_runs_a_query_with_a_token(page: Page, creditgraph: Creditgraph) -> None:
    await page.goto(creditgraph.graphql_url)
    await expect(page.locator(".graphiql-container")).to_be_visible()

    # The headers editor (CodeMirror): replace its placeholder with the owner's token.
    headers = page.locator(".graphiql-editor-tool .graphiql-editor").last
    await headers.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(
        json.dumps({"Authorization": f"Bearer {creditgraph.owner_token}"})
    )
    # The default query is the dashboards' operations: the run button offers them by name.
    await page.locator(".graphiql-execute-button").click()
    await page.get_by_role("menuitem", name="Viewer", exact=True).click()

    result = page.locator(".result-window")
    await expect(result).to_contain_text('"role": "OWNER"')
    await expect(result).to_contain_text(f'"slug": "{ORG}"')

"""Browser tests: the dashboards' built dist/ and GraphiQL, driven by Playwright in Chromium,
against a real creditgraph server (uvicorn on a free port) on a temporary SQLite database.

Playwright for Python (its playwright-core driver ships inside the wheel) launches the
system's Chromium; browsers cannot be downloaded here. Without /usr/bin/chromium, or
without Node.js and npm to build a dashboard, the tests skip and say why. A failed test
leaves a screenshot and the browser's console under ARTIFACTS, and prints their paths.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Page, async_playwright

from app import console_build
from app.auth import Role
from app.keys.service import CreatedKey
from app.operations import create_api_key, create_organization
from app.orgs.service import OrgRef
from app.settings import Settings
from tests.conftest import Harness, usage_event
from tests.graphql.conftest import server  # noqa: F401 - the real uvicorn server, reused

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "frontend-examples"
DASHBOARDS = ["react-dashboard", "vue-dashboard"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("CREDITGRAPH_E2E_ARTIFACTS", ROOT / ".e2e-artifacts"))
ORG = "e2e"
# The opening grant: three decimals, so the page must keep them ("$25.994").
GRANT_USD = "25.994"

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    # Kept so a fixture's teardown can tell whether the test failed (for screenshots).
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    """The test or a fixture after this one failed (a skipped setup, such as PostgreSQL's
    without its server, is not a failure)."""
    return any(report.failed for report in request.node.stash.get(REPORTS, {}).values())


# -- the dashboards' builds -------------------------------------------------------------


def build(dashboard: str) -> Path:
    """The dashboard's dist/, installed and built when missing or older than its sources
    (``app.console_build``); the test skips without Node.js and npm."""
    if console_build.npm() is None:
        pytest.skip(f"SKIPPED the {dashboard} browser test: it needs Node.js and npm on PATH")
    try:
        return console_build.build(EXAMPLES / dashboard)
    except console_build.BuildError as error:
        pytest.fail(str(error), pytrace=False)


# -- the browser --------------------------------------------------------------------------


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(
            f"SKIPPED the browser tests: no Chromium at {CHROMIUM} "
            "(Debian: apt-get install -y chromium)"
        )
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A fresh page; when the test fails, a screenshot of it is saved and its path printed."""
    context = await browser.new_context(viewport={"width": 1280, "height": 2000})
    opened = await context.new_page()
    console: list[str] = []
    opened.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    opened.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    try:
        yield opened
    finally:
        if _failed(request):
            name = "".join(c if c.isalnum() else "_" for c in request.node.name)
            shot, log = ARTIFACTS / f"{name}.png", ARTIFACTS / f"{name}.console.txt"
            await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
            await opened.screenshot(path=shot, full_page=True)
            await asyncio.to_thread(log.write_text, "\n".join(console) + "\n")
            print(f"screenshot of the failed page: {shot}")
            print(f"its browser console: {log}")
        await context.close()


def shown_usd(usd: str) -> str:
    """A USD Decimal string as the dashboards show it (frontend-examples/README.md):
    ``$`` and at least 2 decimals, trailing zeros past 2 trimmed ("0.012000" -> "$0.012")."""
    sign, digits = ("-", usd[1:]) if usd.startswith("-") else ("", usd)
    whole, _, fraction = digits.partition(".")
    return f"{sign}${whole}.{fraction.rstrip('0').ljust(2, '0')}"


# -- the servers ----------------------------------------------------------------------------


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on a free port, as any static host would serve a dist/."""
    handler = partial(_Quiet, directory=str(directory))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            thread.join()


@dataclass
class Creditgraph:
    """A real server (uvicorn on a free port, temporary SQLite, the fake payment provider)
    with organization ORG holding GRANT_USD."""

    harness: Harness
    org: OrgRef

    @property
    def graphql_url(self) -> str:
        return str(self.harness.http.base_url.copy_with(path="/graphql"))

    @property
    def owner_token(self) -> str:
        return self.token(Role.OWNER)

    def token(self, role: Role) -> str:
        return self.harness.token(self.org, role)["Authorization"].removeprefix("Bearer ")

    def dashboard_url(self, site: str, role: Role = Role.OWNER) -> str:
        """The built dashboard at ``site``, told where the API is and the token in the hash."""
        config = {"api": self.graphql_url, "token": self.token(role)}
        return f"{site}/index.html#{urlencode(config)}"

    async def graphql(self, query: str, role: Role = Role.OWNER, **variables: Any) -> Any:
        """The ``data`` of ``query`` run as ``role`` of ORG: what the server holds now."""
        body = await self.harness.graphql(query, self.harness.token(self.org, role), **variables)
        assert "errors" not in body, body
        return body["data"]

    async def key(self, name: str) -> CreatedKey:
        return await create_api_key(self.harness.runtime, self.org.id, name)

    async def bill_a_call(self, request_id: str, key: CreatedKey | None = None) -> None:
        """The gateway reports one call to the REST API: 6,000 credits ($0.006), on
        ``key`` (a new one by default)."""
        key = key or await self.key("test key")
        [result] = await self.harness.usage(self.org, usage_event(key.id, request_id))
        assert result["outcome"] == "billed", result


@pytest.fixture(params=DASHBOARDS)
def site(request: pytest.FixtureRequest, chromium: Path) -> Iterator[str]:
    """The dashboard's built dist/ on a static server of its own (another origin)."""
    with static_site(build(request.param)) as url:
        yield url


@pytest.fixture
def allowed_origin(request: pytest.FixtureRequest) -> str:
    """The origin CREDITGRAPH_CORS_ORIGINS allows: the dashboard's, when the test serves
    one (``site``); else none (same origin only)."""
    return str(request.getfixturevalue("site")) if "site" in request.fixturenames else ""


@pytest.fixture
def key_encryption_key() -> str | None:
    """CREDITGRAPH_KEY_ENCRYPTION_KEY: none by default, so secrets cannot be revealed."""
    return None


@pytest.fixture
def settings(settings: Settings, allowed_origin: str, key_encryption_key: str | None) -> Settings:
    origins = (allowed_origin,) if allowed_origin else ()
    update = {
        "payment_provider": "fake",
        "cors_origins": origins,
        "key_encryption_key": key_encryption_key,
    }
    return settings.model_copy(update=update)


@pytest.fixture
async def creditgraph(server: Harness) -> Creditgraph:  # noqa: F811 - the fixture above
    return Creditgraph(server, await server.org(ORG, grant_usd=GRANT_USD))


@pytest.fixture
async def agents(creditgraph: Creditgraph) -> Creditgraph:
    """A second organization, on a plan-credit wallet (8bit-ai Starter), on the same server."""
    org = await create_organization(
        creditgraph.harness.runtime, slug="agents", rate_card="8bit-ai", plan="8bit-starter"
    )
    return Creditgraph(creditgraph.harness, org)


@pytest.fixture
async def dashboard(page: Page, site: str, creditgraph: Creditgraph) -> Page:
    """The dashboard, opened as ORG's owner."""
    await page.goto(creditgraph.dashboard_url(site))
    return page

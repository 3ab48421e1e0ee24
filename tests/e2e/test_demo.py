"""The first five minutes: the README's `./scripts/demo` prints a console link; the
console opens signed in, shows 30 days of usage and a balance, and the balance moves by
itself (the demo's simulated gateway), with no request of the test's own."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from app import demo
from tests import servers
from tests.e2e.conftest import ARTIFACTS, ROOT, build

SCRIPT = ROOT / "scripts" / "demo"
# Where to keep the screenshot the README shows, when asked: the test takes it anyway.
SCREENSHOT = os.environ.get("CREDITGRAPH_SCREENSHOT")


@pytest.fixture
def console_link(tmp_path: Path, chromium: Path) -> Iterator[str]:
    """``./scripts/demo`` as the README runs it (its own database and state, so the
    user's are left alone); the console link it printed."""
    build("react-dashboard")  # as the demo would, once for every browser test
    env = os.environ | {
        "CREDITGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        "CREDITGRAPH_STATE_DIR": str(tmp_path / "state"),
    }
    instance = servers.start(env, tmp_path / "demo.log", command=(str(SCRIPT),))
    try:
        printed = servers.printout(instance.log)
        assert printed[0].startswith("creditgraph demo on http://127.0.0.1:"), printed
        (link,) = [line.split()[1] for line in printed if line.split()[:1] == ["Console"]]
        # The first link is the console's; no token in any printed address's query string.
        assert printed[1].split()[0] == "Console"
        assert not [line for line in printed if re.search(r"\?[^ ]*token=", line)]
        yield link
    finally:
        instance.stop()


async def test_the_demo_console_is_live(page: Page, console_link: str) -> None:
    await page.goto(console_link)
    await expect(page.get_by_text("signed in as owner")).to_be_visible()
    balance = page.get_by_test_id("balance")
    await expect(balance).to_have_text(re.compile(r"^\$\d"))
    # 30 days of usage: the chart's days and the calls the seed made.
    await expect(page.get_by_role("heading", name="Spend, last 30 days")).to_be_visible()
    total = page.get_by_text(re.compile(r"^Total \$[\d,.]+ over [\d,]+ calls"))
    await expect(total).to_be_visible()
    calls = int(re.sub(r"\D", "", (await total.inner_text()).split(" over ")[1]))
    assert calls >= demo.DAYS * demo.CALLS_PER_DAY * 9 // 10, calls
    await expect(page.get_by_test_id("usage-row").first).to_be_visible()

    # The demo's traffic moves the balance on screen; the test sends nothing.
    before = await balance.inner_text()
    await expect(balance).not_to_have_text(before, timeout=10_000)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console.png"))
    if SCREENSHOT:  # the README's: the console's first screens, as the demo opens it
        await page.screenshot(path=SCREENSHOT)

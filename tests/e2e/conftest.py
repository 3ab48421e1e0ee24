"""Browser tests: the dashboards' built dist/ and GraphiQL, driven by Playwright in Chromium,
against a real `creditgraph serve` on a temporary SQLite database.

Playwright for Python (its playwright-core driver ships inside the wheel) launches the
system's Chromium; browsers cannot be downloaded here. Without /usr/bin/chromium, or
without Node.js and npm to build a dashboard, the tests skip and say why. A failed test
leaves a screenshot and the server's log under ARTIFACTS, and prints their paths.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from app.auth import Role, issue_token

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "frontend-examples"
DASHBOARDS = ["react-dashboard", "vue-dashboard"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("CREDITGRAPH_E2E_ARTIFACTS", ROOT / ".e2e-artifacts"))
JWT_SECRET = "e2e-secret-that-is-long-enough-for-hs256"
ORG = "e2e"
# The opening grant: three decimals, so the page must keep them ("$25.994").
GRANT_USD = "25.994"
# Only to notice a hang: never a bound on how fast anything should be.
STARTUP_WAIT = 60
BUILD_WAIT = 900

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    # Kept so a fixture's teardown can tell whether the test failed (for screenshots).
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = request.node.stash.get(REPORTS, {}).get("call")
    return report is None or report.failed


def _free_port() -> int:
    # The server binds it a moment later in its own process; nothing else here takes ports.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the dashboards' builds -------------------------------------------------------------


def _sources(directory: Path) -> Iterator[Path]:
    """What a dashboard's dist/ is built from: its own files and the shared contract."""
    yield from (p for p in (directory / "src").rglob("*") if p.is_file())
    for name in ("index.html", "package.json", "package-lock.json"):
        yield directory / name
    yield from directory.glob("*.config.*")
    yield from directory.glob("codegen.*")
    yield EXAMPLES / "operations" / "dashboard.graphql"
    yield ROOT / "schema.graphql"


def _stale(directory: Path) -> bool:
    index = directory / "dist" / "index.html"
    if not index.is_file():
        return True
    built = index.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _sources(directory) if p.exists())


def _npm(npm: str, directory: Path, *args: str) -> None:
    done = subprocess.run(
        [npm, *args, "--no-audit", "--no-fund"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=BUILD_WAIT,
        check=False,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        pytest.fail(f"`npm {' '.join(args)}` failed in {directory}:\n{output}", pytrace=False)


def build(dashboard: str) -> Path:
    """The dashboard's dist/, installed (npm ci) and built (npm run build) when missing or
    older than its sources; one build at a time per dashboard, across processes."""
    directory = EXAMPLES / dashboard
    if not (directory / "package.json").is_file():
        pytest.fail(f"{directory} has no package.json: the dashboard is missing", pytrace=False)
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip(f"SKIPPED the {dashboard} browser test: it needs Node.js and npm on PATH")
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    lock = Path(tempfile.gettempdir()) / f"creditgraph-e2e-build-{digest}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (directory / "node_modules").is_dir():
            _npm(npm, directory, "ci")
        if _stale(directory):
            _npm(npm, directory, "run", "build")
    return directory / "dist"


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
    """A `creditgraph serve` process with organization ORG (GRANT_USD) and its tokens."""

    base: str
    owner_token: str
    service_token: str

    @property
    def graphql_url(self) -> str:
        return f"{self.base}/graphql"

    def dashboard_url(self, site: str) -> str:
        """The built dashboard at ``site``, told where the API is and the token in the hash."""
        return f"{site}/index.html#" + urlencode(
            {"api": self.graphql_url, "token": self.owner_token}
        )

    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        """An owner's operation over HTTP; its data, asserting it had no errors."""
        async with httpx.AsyncClient(base_url=self.base, trust_env=False) as http:
            response = await http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {self.owner_token}"},
            )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def post_usage(self, api_key_id: str, request_id: str) -> None:
        """The gateway reports one call to the REST API: 6,000 credits ($0.006)."""
        event = {
            "request_id": request_id,
            "api_key_id": api_key_id,
            "model": "claude-sonnet-4-6",
            "prompt_tokens": 1000,
            "completion_tokens": 200,
        }
        async with httpx.AsyncClient(base_url=self.base, trust_env=False) as http:
            response = await http.post(
                "/api/v1/usage",
                json={"events": [event]},
                headers={"Authorization": f"Bearer {self.service_token}"},
            )
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["outcome"] == "billed", response.text


@pytest.fixture
def allowed_origin() -> str:
    """The origin CREDITGRAPH_CORS_ORIGINS allows; none by default (same origin only)."""
    return ""


@pytest.fixture
def creditgraph(
    tmp_path: Path, allowed_origin: str, request: pytest.FixtureRequest
) -> Iterator[Creditgraph]:
    """The real server: `creditgraph org create` seeds the database, `creditgraph serve`
    serves it on a free port with the fake payment provider."""
    command = Path(sys.executable).with_name("creditgraph")
    env = os.environ | {
        "CREDITGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        "CREDITGRAPH_STATE_DIR": str(tmp_path / "state"),
        "CREDITGRAPH_JWT_SECRET": JWT_SECRET,
        "CREDITGRAPH_PAYMENT_PROVIDER": "fake",
        "CREDITGRAPH_CORS_ORIGINS": allowed_origin,
    }
    seeded = subprocess.run(
        [command, "org", "create", ORG, "--grant-usd", GRANT_USD],
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_WAIT,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    port = _free_port()
    log = tmp_path / "creditgraph.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [command, "serve", "--port", str(port)], env=env, stdout=output, stderr=output
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _until_healthy(base, process, log)
        yield Creditgraph(base, owner_token=_token(Role.OWNER), service_token=_token(Role.SERVICE))
    finally:
        process.terminate()
        try:
            process.wait(timeout=STARTUP_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if _failed(request):
            print(f"the server's log: {log}")


def _token(role: Role) -> str:
    return issue_token(
        JWT_SECRET, org=ORG, role=role, subject=f"{role}@e2e", ttl=timedelta(hours=1)
    )


def _until_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_WAIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"creditgraph serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"creditgraph serve did not answer /healthz:\n{log.read_text()}")

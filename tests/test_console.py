"""The console at /console/, the demo's sign-in links and GraphiQL signed in, through real
``creditgraph serve`` processes (SQLite: the embedded setup the demo runs), and a link's
expiry through the app on a frozen clock (both engines)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.clock import FrozenClock
from app.settings import Settings
from app.signin import CODE_TTL, PATH, SignInCodes
from tests import servers
from tests.conftest import JWT_SECRET, running_app

PAGE = (
    "<!doctype html><html><head><title>built console</title>"
    '<script type="module" src="./assets/app-1a2b.js"></script></head>'
    '<body><div id="root"></div></body></html>'
)
VIEWER = "{ viewer { role organization { slug } } }"


@dataclass
class Served:
    """A server process and what it printed once it listened (uvicorn's lines left out)."""

    instance: servers.Instance
    printout: list[str]

    def get(
        self, path: str, headers: dict[str, str] | None = None, *, follow_redirects: bool = False
    ) -> httpx.Response:
        response = httpx.get(
            self.instance.url + path,
            headers=headers,
            follow_redirects=follow_redirects,
            trust_env=False,
        )
        assert response.status_code < 500, response.text
        return response

    def exchange(self, body: object) -> httpx.Response:
        response = httpx.post(self.instance.url + PATH, json=body, trust_env=False)
        assert response.status_code < 500, response.text
        return response

    def link(self, label: str) -> str:
        [line] = [line for line in self.printout if line.strip().startswith(f"{label} ")]
        return line.split()[-1]

    def code(self, label: str) -> str:
        fragment = urlsplit(self.link(label)).fragment
        assert fragment.startswith("signin="), fragment
        return fragment.removeprefix("signin=")

    def viewer(self, token: str) -> dict[str, object]:
        response = httpx.post(
            self.instance.url + "/graphql",
            json={"query": VIEWER},
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
        )
        body = response.json()
        assert "errors" not in body, body
        return dict(body["data"]["viewer"])


@contextmanager
def serve(tmp_path: Path, name: str, *args: str, **env: str) -> Iterator[Served]:
    """``creditgraph serve ARGS`` on ``tmp_path``'s database, with CREDITGRAPH_ ``env``."""
    environment = {
        key: value
        for key, value in servers.environment(
            f"sqlite+aiosqlite:///{tmp_path / 'console.db'}", tmp_path / "state"
        ).items()
        if not key.startswith("CREDITGRAPH_CONSOLE")  # this shell's own, if any
    } | {f"CREDITGRAPH_{key.upper()}": value for key, value in env.items()}
    log = tmp_path / f"{name}.log"
    instance = servers.start(environment, log, *args)
    try:
        yield Served(instance, servers.printout(log))
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the dashboard's dist/: a page and a hashed asset."""
    dist = tmp_path_factory.mktemp("dist")
    (dist / "assets").mkdir()
    (dist / "index.html").write_text(PAGE)
    (dist / "assets" / "app-1a2b.js").write_text("console.log('built');\n")
    return dist


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, build: Path) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("demo"), "demo", "--demo", console_dir=str(build)) as s:
        yield s


def test_the_demo_printout_fits_a_screen_console_first(demo: Served) -> None:
    assert len(demo.printout) <= 20, "\n".join(demo.printout)
    text = "\n".join(demo.printout)
    console, graphiql, curl = (text.index(s) for s in ("Console ", "GraphiQL ", "curl "))
    assert console < graphiql < curl
    assert "/api/v1/authorize" in text
    assert "/api/v1/usage" in text
    for name in ("production", "claude-agents", "staging"):
        assert re.search(rf"API key {name} +sk-", text)
    assert urlsplit(demo.link("Console")).path == "/console/"
    assert urlsplit(demo.link("GraphiQL")).path == "/graphql"
    # Nothing secret rides in a query string, where access logs and Referer would keep it.
    urls = re.findall(r"https?://[^\s'\"]+", text)
    assert len(urls) >= 4
    assert all(urlsplit(url).query == "" for url in urls), urls
    assert demo.code("Console") != demo.code("GraphiQL")


def test_the_demo_serves_the_console_at_its_origin(demo: Served) -> None:
    home = demo.get("/", follow_redirects=False)
    assert home.status_code == 302
    assert home.headers["location"] == "/console/"
    assert demo.get("/console", follow_redirects=True).url.path == "/console/"

    page = demo.get("/console/")
    assert page.status_code == 200
    assert "built console" in page.text
    assert page.headers["cache-control"] == "no-cache"
    # Told its API is this origin's /graphql, and where its relative assets are.
    assert '<meta name="creditgraph-graphql" content="/graphql" />' in page.text
    assert '<base href="/console/" />' in page.text
    # A client-side route answers the page; a missing file does not.
    assert demo.get("/console/keys/42").text == page.text
    asset = demo.get("/console/assets/app-1a2b.js")
    assert asset.text == "console.log('built');\n"
    assert "immutable" in asset.headers["cache-control"]
    assert demo.get("/console/assets/gone-9f9f.js").status_code == 404


def test_a_console_link_signs_in_as_the_owner_once(demo: Served) -> None:
    code = demo.code("Console")
    signed_in = demo.exchange({"code": code})
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.headers["cache-control"] == "no-store"
    viewer = demo.viewer(signed_in.json()["token"])
    assert viewer == {"role": "OWNER", "organization": {"slug": "demo"}}

    again = demo.exchange({"code": code})
    assert again.status_code == 401
    assert again.json()["code"] == "sign_in_code_used"
    assert "restart `creditgraph serve --demo`" in again.json()["message"]

    forged = demo.exchange({"code": code[:-2] + ("AA" if code[-2:] != "AA" else "BB")})
    assert (forged.status_code, forged.json()["code"]) == (401, "sign_in_code_unknown")
    for body in ({}, {"code": 7}, ["code"], {"code": "x" * 2000}):
        assert demo.exchange(body).status_code in (400, 401, 413), body
    not_json = httpx.post(demo.instance.url + PATH, content=b"code=x", trust_env=False)
    assert not_json.status_code == 400


def test_graphiql_opens_with_the_operations_and_signs_in(demo: Served) -> None:
    page = demo.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    # The dashboards' operations, whole, as its default query.
    operations = Path(__file__).parents[1] / "frontend-examples/operations/dashboard.graphql"
    assert json.dumps(operations.read_text())[1:-1] in page.text
    # The page's own script exchanges the link's code for the headers tab.
    assert '"/console/session"' in page.text
    assert 'get("signin")' in page.text
    assert "Authorization" in page.text

    signed_in = demo.exchange({"code": demo.code("GraphiQL")})
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["token"]
    assert demo.viewer(token)["role"] == "OWNER"
    # The documentation explorer's introspection answers with that header.
    schema = httpx.post(
        demo.instance.url + "/graphql",
        json={"query": "{ __schema { queryType { name } types { name } } }"},
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    ).json()
    assert schema["data"]["__schema"]["queryType"]["name"] == "Query"


def test_a_rerun_prints_new_links_and_says_how_to_build_the_console(tmp_path: Path) -> None:
    missing = tmp_path / "no-build"
    with serve(tmp_path, "first", "--demo", console_dir=str(missing)) as seeded:
        last = seeded.printout[-1]
        assert last.startswith("Console: not built yet")
        assert f"CREDITGRAPH_CONSOLE_DIR ({missing})" in last
        assert "`npm ci && npm run build`" in last
        page = seeded.get("/console/")
        assert page.status_code == 404
        assert "<code>npm ci &amp;&amp; npm run build</code>" in page.text
        old = seeded.code("Console")

    with serve(tmp_path, "again", "--demo", console_dir=str(missing)) as again:
        assert any("already existed" in line for line in again.printout)
        assert "not built yet" in again.printout[-1]
        assert again.code("Console") != old
        signed_in = again.exchange({"code": again.code("Console")})
        assert again.viewer(signed_in.json()["token"])["role"] == "OWNER"
        assert again.exchange({"code": old}).json()["code"] == "sign_in_code_unknown"


def test_the_console_is_off_without_the_demo(tmp_path: Path, build: Path) -> None:
    with serve(tmp_path, "plain", console_dir=str(build)) as served:
        assert served.printout == []
        assert served.get("/").status_code == 404
        assert served.get("/console/").status_code == 404
        refused = served.exchange({"code": "anything"})
        assert refused.status_code == 404
        assert "--demo" in refused.json()["message"]


def test_a_setting_turns_the_console_on(tmp_path: Path, build: Path) -> None:
    with serve(tmp_path, "on", console="true", console_dir=str(build)) as served:
        assert served.printout == [f"Console: {served.instance.url}/console/"]
        assert served.get("/", follow_redirects=True).text.startswith("<!doctype html>")
        assert "built console" in served.get("/console/").text
        # No demo, no sign-in codes.
        assert served.exchange({"code": "anything"}).status_code == 404


async def test_a_link_expires_after_its_minutes(settings: Settings) -> None:
    clock = FrozenClock(datetime.now(UTC))
    codes = SignInCodes(JWT_SECRET, clock, org="acme", subject="owner@acme.test")
    async with running_app(settings, clock, sign_in=codes) as harness:
        await harness.org("acme")
        in_time, late = codes.new(), codes.new()
        clock.advance(CODE_TTL - timedelta(seconds=1))
        signed_in = await harness.http.post(PATH, json={"code": in_time})
        assert signed_in.status_code == 200
        viewer = await harness.graphql(
            VIEWER, {"Authorization": f"Bearer {signed_in.json()['token']}"}
        )
        assert viewer["data"]["viewer"]["role"] == "OWNER"

        clock.advance(timedelta(seconds=1))
        expired = await harness.http.post(PATH, json={"code": late})
        assert (expired.status_code, expired.json()["code"]) == (401, "sign_in_code_expired")
        assert "15 minutes" in expired.json()["message"]

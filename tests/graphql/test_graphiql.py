"""GraphiQL at GET /graphql, entirely from creditgraph: no CDN, so it works offline."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest

from app.graphql.ide import STATIC
from tests.conftest import Harness

CONTENT_TYPES = {
    ".css": {"text/css; charset=utf-8"},
    ".js": {"text/javascript; charset=utf-8", "application/javascript"},
}


async def _page(harness: Harness) -> str:
    response = await harness.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return response.text


async def test_the_page_loads_only_files_served_here(harness: Harness) -> None:
    html = await _page(harness)
    assert re.findall(r"https?://", html) == []
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assets = [url for url in urls if url != "data:,"]  # "data:," is the (empty) favicon
    assert len(assets) == 4  # GraphiQL's CSS and JS, React, ReactDOM
    assert all(url.startswith("/graphql/static/") for url in assets), assets

    for url in assets:
        response = await harness.http.get(url)
        assert response.status_code == 200, url
        suffix = PurePosixPath(url.split("?")[0]).suffix
        assert response.headers["content-type"] in CONTENT_TYPES[suffix], url
        assert "immutable" in response.headers["cache-control"]
        assert len(response.content) > 1000


async def test_the_page_sets_up_the_auth_header_and_subscriptions(harness: Harness) -> None:
    html = await _page(harness)
    # The placeholder, unless a demo sign-in link gave the page a token (tests/test_console.py).
    assert 'Authorization: "Bearer " + (token || "<token>")' in html
    assert "subscriptionUrl" in html
    assert "shouldPersistHeaders: false" in html


async def test_an_asset_url_changes_with_the_file(harness: Harness) -> None:
    html = await _page(harness)
    assert re.search(r"/graphql/static/graphiql/graphiql\.min\.js\?v=[0-9a-f]{16}\"", html)


@pytest.mark.parametrize("package", ["graphiql", "react", "react-dom"])
def test_each_vendored_package_keeps_its_license(package: str) -> None:
    assert "MIT License" in (STATIC / package / "LICENSE").read_text()


async def test_a_query_by_get_is_not_the_page(harness: Harness) -> None:
    response = await harness.http.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"Accept": "text/html"}
    )
    assert response.json() == {"data": {"__typename": "Query"}}

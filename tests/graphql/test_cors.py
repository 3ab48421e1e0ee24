"""CREDITGRAPH_CORS_ORIGINS: CORS for HTTP, and the Origin check on WebSocket handshakes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from app.clock import Clock
from app.settings import Settings
from tests.conftest import Harness, running_app

DASHBOARD = "http://dashboard.example:5173"
OTHER = "http://evil.example"
QUERY = "{ viewer { organization { slug } } }"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'creditgraph.db'}",
        state_dir=tmp_path / "state",
        jwt_secret="test-secret-that-is-long-enough-for-hs256",
        run_jobs=False,
        cors_origins=(DASHBOARD,),
    )


def test_origins_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITGRAPH_CORS_ORIGINS", f" {DASHBOARD} ,https://b.example,")
    assert Settings().cors_origins == (DASHBOARD, "https://b.example")


async def _preflight(harness: Harness, origin: str) -> httpx.Response:
    return await harness.http.options(
        "/graphql",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


async def test_an_allowed_origin_is_granted_the_preflight_and_the_response(
    server: Harness,
) -> None:
    org = await server.org("acme")
    preflight = await _preflight(server, DASHBOARD)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == DASHBOARD
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

    response = await server.http.post(
        "/graphql", json={"query": QUERY}, headers={"Origin": DASHBOARD} | server.token(org)
    )
    assert response.json() == {"data": {"viewer": {"organization": {"slug": "acme"}}}}
    assert response.headers["access-control-allow-origin"] == DASHBOARD


async def test_another_origin_is_refused_the_preflight_and_granted_nothing(
    server: Harness,
) -> None:
    org = await server.org("acme")
    preflight = await _preflight(server, OTHER)
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers

    response = await server.http.post(
        "/graphql", json={"query": QUERY}, headers={"Origin": OTHER} | server.token(org)
    )
    # The browser withholds a response without the header from the page.
    assert "access-control-allow-origin" not in response.headers


async def test_without_origins_no_page_elsewhere_is_granted_anything(
    settings: Settings, clock: Clock
) -> None:
    async with running_app(settings.model_copy(update={"cors_origins": ()}), clock) as harness:
        org = await harness.org("acme")
        preflight = await _preflight(harness, DASHBOARD)
        assert preflight.status_code == 405
        response = await harness.http.post(
            "/graphql", json={"query": QUERY}, headers={"Origin": DASHBOARD} | harness.token(org)
        )
        assert response.status_code == 200
        assert not any(name.startswith("access-control-") for name in response.headers)


def _ws_url(harness: Harness) -> str:
    return str(harness.http.base_url.copy_with(scheme="ws", path="/graphql"))


async def _acknowledged(harness: Harness, origin: str | None) -> bool:
    org = await harness.org("acme")
    authorization = harness.token(org)["Authorization"]
    async with connect(
        _ws_url(harness),
        subprotocols=[Subprotocol("graphql-transport-ws")],
        origin=None if origin is None else Origin(origin),
        proxy=None,
    ) as ws:
        init = {"type": "connection_init", "payload": {"authorization": authorization}}
        await ws.send(json.dumps(init))
        return bool(json.loads(await ws.recv())["type"] == "connection_ack")


@pytest.mark.parametrize("origin", [DASHBOARD, "own", None])
async def test_a_websocket_from_an_allowed_its_own_or_no_origin_is_served(
    server: Harness, origin: str | None
) -> None:
    if origin == "own":
        origin = str(server.http.base_url).rstrip("/")
    assert await _acknowledged(server, origin)


async def test_a_websocket_from_another_origin_is_refused_at_the_handshake(
    server: Harness,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await _acknowledged(server, OTHER)
    assert refused.value.response.status_code == 403

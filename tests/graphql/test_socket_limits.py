"""WebSocket limits at /graphql, over real sockets: connections per caller, operations
per connection. Past either the caller gets a clear refusal; everyone else is served."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from app.auth import Role
from app.settings import Settings
from tests.conftest import Harness, usage_event
from tests.graphql.test_subscriptions import (
    BALANCE,
    LEGACY_WS,
    WAIT,
    _bearer,
    _next,
    _open,
    _receive,
    _send,
    _signed_in,
    _subscribe,
)

CONNECTIONS, SUBSCRIPTIONS = 2, 2
TOO_MANY = f"too many connections: at most {CONNECTIONS} WebSockets per caller; close one"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "graphql_ws_connections_per_caller": CONNECTIONS,
            "graphql_ws_subscriptions_per_connection": SUBSCRIPTIONS,
        }
    )


async def _refused(ws: ClientConnection) -> tuple[int, str]:
    """The close code and reason the server ended ``ws`` with."""
    await asyncio.wait_for(ws.wait_closed(), WAIT)
    assert ws.close_code is not None
    assert ws.close_reason is not None
    return ws.close_code, ws.close_reason


async def _balance(ws: ClientConnection, id_: str) -> str:
    """Subscribes to the balance; its first push's reason ("current")."""
    await _subscribe(ws, BALANCE, id_)
    reason: str = (await _next(ws))["balanceChanged"]["reason"]
    return reason


async def test_a_caller_past_its_connections_is_closed_with_4429_others_are_served(
    server: Harness,
) -> None:
    org = await server.org("acme", grant_usd="10")
    key = await server.key(org)
    viewer = server.token(org, Role.VIEWER)
    held = [await _signed_in(server, viewer) for _ in range(CONNECTIONS)]

    extra = await _open(server)
    await _send(extra, {"type": "connection_init", "payload": _bearer(viewer)})
    assert await _refused(extra) == (4429, TOO_MANY)
    # The legacy protocol says why in its connection_error, and closes the same way.
    legacy = await _open(server, LEGACY_WS)
    await _send(legacy, {"type": "connection_init", "payload": _bearer(viewer)})
    error = await _receive(legacy)
    assert error == {
        "type": "connection_error",
        "payload": {"message": TOO_MANY, "extensions": {"code": "RATE_LIMITED"}},
    }
    assert (await _refused(legacy))[0] == 4429

    # Another caller of the same organization connects, and is pushed its commits; so are
    # the connections already held.
    async with await _signed_in(server, server.token(org, Role.OWNER)) as other:
        assert await _balance(other, "1") == "current"
        assert await _balance(held[0], "1") == "current"
        await server.usage(org, usage_event(key.id, "r1"))
        for ws in (other, held[0]):
            assert (await _next(ws))["balanceChanged"]["delta"]["credits"] == "-6000"

    # A connection closed gives its slot back.
    await held.pop().close()
    async with asyncio.timeout(WAIT):
        while True:  # the server notices the close a moment later; nothing signals when
            again = await _open(server)
            await _send(again, {"type": "connection_init", "payload": _bearer(viewer)})
            if (await _receive_or_close(again)) == "connection_ack":
                break
    assert await _balance(again, "1") == "current"
    for ws in (*held, again):
        await ws.close()


async def _receive_or_close(ws: ClientConnection) -> str:
    """The next message's type, or "closed"."""
    try:
        return str((await _receive(ws))["type"])
    except ConnectionClosed:  # with the refusal's code
        return "closed"


async def test_a_subscription_past_the_connections_limit_is_an_error_the_others_go_on(
    server: Harness,
) -> None:
    org = await server.org("acme", grant_usd="10")
    key = await server.key(org)
    async with await _signed_in(server, server.token(org, Role.VIEWER)) as ws:
        for id_ in ("a", "b"):
            assert await _balance(ws, id_) == "current"
        await _subscribe(ws, BALANCE, "c")
        refused = await _receive(ws)
        assert refused["type"] == "error"
        assert refused["id"] == "c"
        assert [e["message"] for e in refused["payload"]] == ["Subscription limit reached"]

        # The connection and its subscriptions go on.
        await server.usage(org, usage_event(key.id, "r1"))
        pushed = {(await _receive(ws))["id"] for _ in range(2)}
        assert pushed == {"a", "b"}

        # Completing one makes room for another.
        await _send(ws, {"id": "a", "type": "complete"})
        async with asyncio.timeout(WAIT):
            while True:  # the completion is handled a moment later; nothing signals when
                await _subscribe(ws, BALANCE, "d")
                message = await _receive(ws)
                if message["type"] == "next":
                    break
                assert message["payload"][0]["message"] == "Subscription limit reached"
        assert message["id"] == "d"
        assert message["payload"]["data"]["balanceChanged"]["reason"] == "current"

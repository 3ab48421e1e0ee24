"""Subscriptions over real WebSockets against a real uvicorn server: auth, pushes, scoping."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import GraphQLError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from app.auth import Principal, Role
from app.clock import Clock, FrozenClock
from app.events import QUEUE_SIZE, BalanceChanged, UsageRecorded
from app.graphql.context import Context
from app.graphql.schema import schema
from app.graphql.subscriptions import balance_changes, usage_records
from app.ids import to_global_id
from app.ledger import reads
from app.operations import adjust
from app.orgs.service import OrgRef
from app.runtime import Runtime
from app.settings import Settings
from tests.conftest import Harness, running_app, usage_event

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
# Only to notice a hang or confirm an absence; never a bound on how fast anything is.
WAIT = 10
QUIET = 0.5

BALANCE = """
subscription BalanceChanged {
  balanceChanged { walletId balance { credits usd } delta { credits usd } reason version at }
}
"""
USAGE = """
subscription { usageRecorded { requestId apiKeyId model action status cost { credits usd } at } }
"""


def _ws_url(harness: Harness) -> str:
    return str(harness.http.base_url.copy_with(scheme="ws", path="/graphql"))


async def _open(harness: Harness, protocol: str = TRANSPORT_WS) -> ClientConnection:
    return await connect(_ws_url(harness), subprotocols=[Subprotocol(protocol)], proxy=None)


async def _send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def _receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return message


async def _close_code(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def _bearer(headers: dict[str, str]) -> dict[str, str]:
    """Harness headers as a connection_init payload."""
    return {"authorization": headers["Authorization"]}


async def _signed_in(harness: Harness, authorization: dict[str, str]) -> ClientConnection:
    ws = await _open(harness)
    await _send(ws, {"type": "connection_init", "payload": _bearer(authorization)})
    assert (await _receive(ws))["type"] == "connection_ack"
    return ws


async def _subscribe(ws: ClientConnection, query: str, id_: str = "1") -> None:
    await _send(ws, {"id": id_, "type": "subscribe", "payload": {"query": query}})


async def _next(ws: ClientConnection) -> dict[str, Any]:
    message = await _receive(ws)
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    data: dict[str, Any] = message["payload"]["data"]
    return data


async def _wallet_id(runtime: Runtime, org: OrgRef) -> int:
    row = await runtime.db.read(lambda conn: reads.wallet_of(conn, org.id))
    return int(row.id)


def _viewer(org: OrgRef, expires_at: int | None = None) -> Principal:
    return Principal(org.id, org.slug, Role.VIEWER, "viewer@test", expires_at=expires_at)


def _subscribers(runtime: Runtime) -> int:
    # Each test has one organization subscribing: the bus's count (what /metrics shows) is
    # how to see a leak, on either bus.
    return runtime.bus.subscriber_count()


async def _until_subscribers(runtime: Runtime, count: int) -> None:
    async with asyncio.timeout(WAIT):
        while _subscribers(runtime) != count:  # noqa: ASYNC110 - the bus signals nothing
            await asyncio.sleep(0.01)


# -- the graphql-transport-ws handshake --------------------------------------------------


async def test_a_valid_token_is_acknowledged(server: Harness) -> None:
    org = await server.org("acme")
    async with await _open(server) as ws:
        await _send(ws, {"type": "connection_init", "payload": _bearer(server.token(org))})
        assert (await _receive(ws))["type"] == "connection_ack"


async def test_messages_are_text_frames_as_browsers_need(server: Harness) -> None:
    # graphql-ws in a browser cannot parse a binary frame (a Blob) and drops the socket.
    org = await server.org("acme", grant_usd="1")
    async with await _open(server) as ws:
        await _send(ws, {"type": "connection_init", "payload": _bearer(server.token(org))})
        assert isinstance(await ws.recv(), str)
        subscribe = {"query": "subscription { balanceChanged { balance { usd } } }"}
        await _send(ws, {"id": "1", "type": "subscribe", "payload": subscribe})
        pushed = await asyncio.wait_for(ws.recv(), WAIT)
        assert isinstance(pushed, str)
        assert (
            json.loads(pushed)["payload"]["data"]["balanceChanged"]["balance"]["usd"] == "1.000000"
        )


@pytest.mark.parametrize(
    "payload",
    [{}, {"authorization": "Bearer not-a-token"}, {"authorization": "Basic dXNlcjpwYXNz"}],
)
async def test_no_token_or_a_bad_one_closes_with_4403(
    server: Harness, payload: dict[str, str]
) -> None:
    async with await _open(server) as ws:
        await _send(ws, {"type": "connection_init", "payload": payload})
        assert await _close_code(ws) == 4403


async def test_subscribing_before_the_ack_closes_with_4401(server: Harness) -> None:
    async with await _open(server) as ws:
        await _subscribe(ws, BALANCE)
        assert await _close_code(ws) == 4401


# -- balanceChanged ------------------------------------------------------------------------


async def test_balance_starts_with_the_current_one_then_follows_each_commit(
    server: Harness,
) -> None:
    org = await server.org("acme", grant_usd="5000.000001")
    key = await server.key(org)
    wallet = to_global_id("Wallet", await _wallet_id(server.runtime, org))
    async with await _signed_in(server, server.token(org, Role.VIEWER)) as ws:
        await _subscribe(ws, BALANCE)
        first = (await _next(ws))["balanceChanged"]
        assert first["walletId"] == wallet
        assert first["balance"] == {"credits": "5000000001", "usd": "5000.000001"}
        assert first["delta"] == {"credits": "0", "usd": "0.000000"}
        assert first["reason"] == "current"
        assert datetime.fromisoformat(first["at"]).utcoffset() == timedelta(0)

        await server.usage(org, usage_event(key.id, "r1"))
        pushed = (await _next(ws))["balanceChanged"]
        assert pushed["walletId"] == wallet
        assert pushed["balance"] == {"credits": "4999994001", "usd": "4999.994001"}
        assert pushed["delta"] == {"credits": "-6000", "usd": "-0.006000"}
        assert pushed["reason"] == "usage"
        assert pushed["version"] > first["version"]

        await server.usage(org, usage_event(key.id, "r2"))
        again = (await _next(ws))["balanceChanged"]
        assert again["balance"]["credits"] == "4999988001"
        assert again["version"] > pushed["version"]


async def test_another_organizations_subscriber_receives_nothing(server: Harness) -> None:
    acme = await server.org("acme", grant_usd="10")
    other = await server.org("other", grant_usd="10")
    key = await server.key(acme)
    async with (
        await _signed_in(server, server.token(acme, Role.VIEWER)) as mine,
        await _signed_in(server, server.token(other, Role.OWNER)) as theirs,
    ):
        await _subscribe(mine, BALANCE)
        await _subscribe(theirs, BALANCE)
        assert (await _next(mine))["balanceChanged"]["reason"] == "current"
        assert (await _next(theirs))["balanceChanged"]["balance"]["credits"] == "10000000"

        await server.usage(acme, usage_event(key.id, "r1"))
        # acme's push is proof the commit was published, to every subscriber at once.
        assert (await _next(mine))["balanceChanged"]["delta"]["credits"] == "-6000"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(theirs.recv(), QUIET)


async def test_closing_the_socket_or_completing_unsubscribes_from_the_bus(
    server: Harness,
) -> None:
    org = await server.org("acme", grant_usd="1")
    async with await _signed_in(server, server.token(org, Role.VIEWER)) as ws:
        await _subscribe(ws, BALANCE, "a")
        await _subscribe(ws, BALANCE, "b")
        await _next(ws)
        await _next(ws)
        assert _subscribers(server.runtime) == 2
        await _send(ws, {"id": "a", "type": "complete"})
        await _until_subscribers(server.runtime, 1)
    await _until_subscribers(server.runtime, 0)


# -- usageRecorded -------------------------------------------------------------------------


async def test_usage_records_reach_the_org_and_only_the_key_they_billed(
    server: Harness,
) -> None:
    org = await server.org("acme", grant_usd="10")
    billed, idle = await server.key(org), await server.key(org)
    key_auth = {"Authorization": f"Bearer {billed.secret}"}
    idle_auth = {"Authorization": f"Bearer {idle.secret}"}
    async with (
        await _signed_in(server, server.token(org, Role.VIEWER)) as viewer,
        await _signed_in(server, key_auth) as by_key,
        await _signed_in(server, idle_auth) as other_key,
    ):
        for ws in (viewer, by_key, other_key):
            await _subscribe(ws, USAGE)
        # No first message to wait for: the bus shows when all three listen.
        await _until_subscribers(server.runtime, 3)

        await server.usage(org, usage_event(billed.id, "r1"))
        expected = {
            "requestId": "r1",
            "apiKeyId": to_global_id("ApiKey", billed.id),
            "model": "claude-sonnet-4-6",
            "action": "llm_inference",
            "status": "SUCCEEDED",
            "cost": {"credits": "6000", "usd": "0.006000"},
        }
        for ws in (viewer, by_key):
            record = (await _next(ws))["usageRecorded"]
            assert datetime.fromisoformat(record.pop("at")).utcoffset() == timedelta(0)
            assert record == expected
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(other_key.recv(), QUIET)


# -- the legacy graphql-ws protocol: offered, with the same authentication ---------------


async def test_legacy_protocol_rejects_a_missing_or_bad_token(server: Harness) -> None:
    for payload in (None, {"authorization": "Bearer not-a-token"}):
        async with await _open(server, LEGACY_WS) as ws:
            assert ws.subprotocol == LEGACY_WS
            await _send(ws, {"type": "connection_init", "payload": payload})
            message = await _receive(ws)
            assert message["type"] == "connection_error"
            assert await _close_code(ws) == 1011


async def test_legacy_protocol_refuses_a_start_before_the_ack(server: Harness) -> None:
    async with await _open(server, LEGACY_WS) as ws:
        await _send(ws, {"id": "1", "type": "start", "payload": {"query": BALANCE}})
        assert await _close_code(ws) == 4401


async def test_legacy_protocol_serves_a_signed_in_caller(server: Harness) -> None:
    org = await server.org("acme", grant_usd="2")
    async with await _open(server, LEGACY_WS) as ws:
        init = {"type": "connection_init", "payload": _bearer(server.token(org, Role.VIEWER))}
        await _send(ws, init)
        assert (await _receive(ws))["type"] == "connection_ack"
        await _send(ws, {"id": "1", "type": "start", "payload": {"query": BALANCE}})
        message = await _receive(ws)
        assert message["type"] == "data"
        assert message["payload"]["data"]["balanceChanged"]["balance"]["credits"] == "2000000"


# -- outside the WebSocket -----------------------------------------------------------------


async def test_a_subscription_over_http_is_a_clear_error(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="1")
    body = await harness.graphql(BALANCE, headers=harness.token(org, Role.VIEWER))
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "WebSocket" in error["message"]


async def test_an_unauthenticated_subscribe_is_refused(harness: Harness) -> None:
    # The WebSocket handshake already refuses such a caller; the resolvers check anyway.
    for query in (BALANCE, USAGE):
        context = Context(harness.runtime, request=None, response=None)
        results = await schema.subscribe(query, context_value=context)
        first = await anext(results)
        await results.aclose()
        assert first.errors is not None
        assert [e.extensions for e in first.errors] == [{"code": "UNAUTHENTICATED"}]


async def test_commits_around_the_first_read_are_neither_lost_nor_repeated(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await harness.org("acme", grant_usd="1")
    read = harness.runtime.db.read

    async def read_between_commits(work: Any) -> Any:
        await adjust(harness.runtime, org.id, -100, "before the read", actor="test")
        row = await read(work)
        await adjust(harness.runtime, org.id, -200, "after the read", actor="test")
        return row

    monkeypatch.setattr(harness.runtime.db, "read", read_between_commits)
    # Only the subscription's read here: the alert evaluations after each commit read too.
    monkeypatch.setattr(harness.runtime.writer, "on_balance_changed", None)
    stream = balance_changes(harness.runtime, _viewer(org))
    first = await anext(stream)
    assert (first.balance.credits, first.reason) == (999_900, "current")
    # The first commit is in the balance read, so its push is dropped; the second's comes.
    pushed = await asyncio.wait_for(anext(stream), WAIT)
    assert (pushed.balance.credits, pushed.delta.credits) == (999_700, -200)
    assert pushed.version > first.version
    await stream.aclose()


# -- a subscriber falling behind -------------------------------------------------------------


async def test_a_lagging_balance_subscriber_gets_the_balance_restated(harness: Harness) -> None:
    org = await harness.org("acme", grant_usd="3")
    wallet_id = await _wallet_id(harness.runtime, org)
    stream = balance_changes(harness.runtime, _viewer(org))
    current = await anext(stream)
    at = harness.runtime.clock.now()
    flood = [
        BalanceChanged(org.id, wallet_id, 1, 1, "usage", current.version + n, at)
        for n in range(1, QUEUE_SIZE + 2)
    ]
    await harness.runtime.bus.publish(flood)  # one more than the queue holds

    restated = await anext(stream)
    assert restated.reason == "current"
    assert restated.balance.credits == 3_000_000
    # The oldest push was dropped; those after it still come, in order.
    assert (await anext(stream)).version == current.version + 2
    await stream.aclose()
    assert _subscribers(harness.runtime) == 0


async def test_a_lagging_usage_subscriber_is_told_and_ended(harness: Harness) -> None:
    org = await harness.org("acme")
    principal = await harness.runtime.auth.authenticate(
        harness.token(org, Role.VIEWER)["Authorization"]
    )
    stream = usage_records(harness.runtime, principal)
    pending = asyncio.ensure_future(anext(stream))
    await _until_subscribers(harness.runtime, 1)
    at = harness.runtime.clock.now()
    flood = [
        UsageRecorded(org.id, 1, f"r{n}", "m", "llm_inference", "succeeded", 1, at)
        for n in range(QUEUE_SIZE + 1)
    ]
    await harness.runtime.bus.publish(flood)  # one more than the queue holds
    with pytest.raises(GraphQLError, match="dropped") as refused:
        await pending
    assert refused.value.extensions == {"code": "RATE_LIMITED"}
    assert _subscribers(harness.runtime) == 0


# -- a subscriber whose sign-in ends -----------------------------------------------------------

T0 = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)


async def test_an_expired_token_ends_the_stream_at_the_next_push(settings: Settings) -> None:
    clock = FrozenClock(T0)
    async with running_app(settings, clock) as app:
        org = await app.org("acme", grant_usd="1")
        expires = int(T0.timestamp()) + 60
        stream = balance_changes(app.runtime, _viewer(org, expires_at=expires))
        assert (await anext(stream)).reason == "current"
        await adjust(app.runtime, org.id, -100, "still signed in", actor="test")
        assert (await asyncio.wait_for(anext(stream), WAIT)).delta.credits == -100
        clock.advance(timedelta(seconds=60))
        await adjust(app.runtime, org.id, -200, "after expiry", actor="test")
        with pytest.raises(GraphQLError) as ended:
            await asyncio.wait_for(anext(stream), WAIT)
        assert ended.value.extensions == {"code": "UNAUTHENTICATED"}
        assert _subscribers(app.runtime) == 0


async def test_a_revoked_key_ends_its_stream(settings: Settings, clock: Clock) -> None:
    immediate = settings.model_copy(update={"subscription_recheck_seconds": 0})
    async with running_app(immediate, clock) as app:
        org = await app.org("acme", grant_usd="1")
        key = await app.key(org)
        principal = await app.runtime.auth.authenticate(f"Bearer {key.secret}")
        stream = usage_records(app.runtime, principal)
        pending = asyncio.ensure_future(anext(stream))
        await _until_subscribers(app.runtime, 1)
        await app.usage(org, usage_event(key.id, "before"))
        assert (await asyncio.wait_for(pending, WAIT)).request_id == "before"

        await app.revoke(org, key)
        await app.usage(org, usage_event(key.id, "after"))
        with pytest.raises(GraphQLError) as ended:
            await asyncio.wait_for(anext(stream), WAIT)
        assert ended.value.extensions == {"code": "UNAUTHENTICATED"}
        assert ended.value.message == "the API key is revoked"


async def test_a_top_up_pushes_its_status_and_the_new_balance(server: Harness) -> None:
    """The fake provider settles at once: the subscriber sees the top-up succeed and the
    balance rise by the amount and its bonus, in one commit."""
    org = await server.org("acme")
    viewer = server.token(org, Role.VIEWER)
    async with await _signed_in(server, viewer) as ws:
        await _subscribe(ws, "subscription { topUpUpdated { id status amount { usd } } }", "t")
        await _subscribe(ws, BALANCE, "b")
        assert (await _next(ws))["balanceChanged"]["reason"] == "current"
        await _until_subscribers(server.runtime, 2)
        created = await server.graphql(
            'mutation { createTopUp(input: {amountUsd: "100"}) { topUp { id } } }',
            server.token(org, Role.OWNER),
        )
        top_up_id = created["data"]["createTopUp"]["topUp"]["id"]
        pushes = [await _receive(ws), await _receive(ws)]
        by_id = {push["id"]: push["payload"]["data"] for push in pushes}
        assert by_id["t"]["topUpUpdated"] == {
            "id": top_up_id,
            "status": "SUCCEEDED",
            "amount": {"usd": "100.000000"},
        }
        change = by_id["b"]["balanceChanged"]
        assert change["reason"] == "top_up,bonus"
        assert change["delta"]["usd"] == change["balance"]["usd"] == "103.000000"

"""Two real ``creditgraph serve`` processes on one PostgreSQL database and one Redis:
live pushes cross instances, holds stay exact across them, and a SIGKILLed instance
loses nothing it acknowledged. Each ends with ``creditgraph verify`` (the CLI)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from app.auth import Role
from tests import servers
from tests.conftest import asyncpg_dsn
from tests.servers import Instance, Tenant

# Only to notice a hang; never a bound on how fast anything is.
WAIT = 30
COST = 6000  # credits: claude-sonnet-4-6, 1000 prompt + 200 completion tokens
BALANCE = "subscription { balanceChanged { balance { credits } reason version } }"
USAGE = "subscription { usageRecorded { requestId cost { credits } } }"


def _event(tenant: Tenant, request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "api_key_id": tenant.key_global_id,
        "model": "claude-sonnet-4-6",
        "prompt_tokens": 1000,
        "completion_tokens": 200,
    }


def _verified(env: dict[str, str]) -> None:
    result = servers.verify(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok")


async def _receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return message


async def _next(ws: ClientConnection) -> tuple[str, dict[str, Any]]:
    message = await _receive(ws)
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    return message["id"], message["payload"]["data"]


def test_a_subscriber_on_one_instance_sees_usage_posted_on_the_other(
    env: dict[str, str], pair: tuple[Instance, Instance]
) -> None:
    tenant = servers.create_tenant(env, "acme", grant_usd="10")
    first, second = pair

    async def scenario() -> None:
        authorization = tenant.headers(Role.VIEWER)["Authorization"]
        async with connect(
            first.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], proxy=None
        ) as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"authorization": authorization}})
            )
            assert (await _receive(ws))["type"] == "connection_ack"
            for id_, query in (("balance", BALANCE), ("usage", USAGE)):
                await ws.send(
                    json.dumps({"id": id_, "type": "subscribe", "payload": {"query": query}})
                )
            id_, current = await _next(ws)
            assert id_ == "balance"
            assert current["balanceChanged"]["reason"] == "current"
            assert current["balanceChanged"]["balance"]["credits"] == "10000000"

            async with httpx.AsyncClient(base_url=second.url, trust_env=False) as http:
                response = await http.post(
                    "/api/v1/usage",
                    json={"events": [_event(tenant, "cross-1")]},
                    headers=tenant.headers(),
                )
                assert response.status_code == 200, response.text
                assert response.json()["results"][0]["outcome"] == "billed"

            pushed = dict([await _next(ws), await _next(ws)])
            assert pushed["balance"]["balanceChanged"]["reason"] == "usage"
            assert pushed["balance"]["balanceChanged"]["balance"]["credits"] == str(
                10_000_000 - COST
            )
            version = pushed["balance"]["balanceChanged"]["version"]
            assert version > current["balanceChanged"]["version"]
            assert pushed["usage"]["usageRecorded"] == {
                "requestId": "cross-1",
                "cost": {"credits": str(COST)},
            }

    asyncio.run(scenario())
    _verified(env)


def test_300_concurrent_holds_across_two_instances_admit_exactly_100(
    env: dict[str, str], pair: tuple[Instance, Instance]
) -> None:
    tenant = servers.create_tenant(env, "acme", grant_usd="1.00")

    async def race() -> Counter[int]:
        limits = httpx.Limits(max_connections=150)
        clients = [
            httpx.AsyncClient(base_url=i.url, limits=limits, timeout=WAIT * 2, trust_env=False)
            for i in pair
        ]
        try:
            responses = await asyncio.gather(
                *(
                    clients[n % 2].post(
                        "/api/v1/authorize",
                        json={
                            "api_key": tenant.key_secret,
                            "model": "gpt-5-5",
                            "request_id": f"r{n}",
                            "hold_usd": "0.01",
                        },
                    )
                    for n in range(300)
                )
            )
        finally:
            for client in clients:
                await client.aclose()
        # Which instance admits how many depends on timing; the total may not.
        return Counter(r.status_code for r in responses)

    assert asyncio.run(race()) == {200: 100, 402: 200}
    _verified(env)


def test_sigkill_mid_batch_loses_no_acknowledged_event(
    env: dict[str, str], pair: tuple[Instance, Instance]
) -> None:
    tenant = servers.create_tenant(env, "acme", grant_usd="1000")
    victim, survivor = pair
    posts, per_post = 60, 50

    async def post(client: httpx.AsyncClient, n: int) -> list[str] | None:
        """The request ids acknowledged, or None when the post got no answer."""
        events = [_event(tenant, f"k{n}-{i}") for i in range(per_post)]
        try:
            response = await client.post("/api/v1/usage", json={"events": events})
        except httpx.TransportError:
            return None
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert {r["outcome"] for r in results} <= {"billed", "duplicate"}, results
        return [r["request_id"] for r in results]

    async def load() -> tuple[list[str], list[int]]:
        headers = tenant.headers()
        limits = httpx.Limits(max_connections=posts)
        kwargs: dict[str, Any] = {"headers": headers, "limits": limits, "timeout": WAIT * 2}
        async with (
            httpx.AsyncClient(base_url=victim.url, trust_env=False, **kwargs) as to_victim,
            httpx.AsyncClient(base_url=survivor.url, trust_env=False, **kwargs) as to_survivor,
        ):
            tasks = {
                n: asyncio.create_task(post(to_victim if n % 2 == 0 else to_survivor, n))
                for n in range(posts)
            }
            victims = [tasks[n] for n in range(0, posts, 2)]
            await asyncio.wait(victims, return_when=asyncio.FIRST_COMPLETED)
            victim.process.send_signal(signal.SIGKILL)  # mid-load: no shutdown runs
            results = {n: await task for n, task in tasks.items()}
            acknowledged = [rid for ids in results.values() if ids for rid in ids]
            lost = [n for n, ids in results.items() if ids is None]
            # The gateway retries what got no answer, on the instance left.
            for n in lost:
                retried = await post(to_survivor, n)
                assert retried is not None
            return acknowledged, lost

    acknowledged, unanswered = asyncio.run(load())
    assert victim.process.wait(timeout=WAIT) == -signal.SIGKILL
    assert unanswered  # the kill cut some posts short
    assert all(n % 2 == 0 for n in unanswered)  # only the victim's

    async def stored() -> tuple[list[str], int]:
        conn = await asyncpg.connect(asyncpg_dsn(env["CREDITGRAPH_DATABASE_URL"]))
        try:
            ids = [
                r["request_id"] for r in await conn.fetch("SELECT request_id FROM usage_records")
            ]
            balance = await conn.fetchval("SELECT balance FROM wallets")
        finally:
            await conn.close()
        return ids, int(balance)

    ids, balance = asyncio.run(stored())
    assert set(acknowledged) <= set(ids)
    # Every event billed exactly once, whether acknowledged, lost or retried.
    assert len(ids) == len(set(ids)) == posts * per_post
    assert balance == 1_000_000_000 - posts * per_post * COST
    _verified(env)

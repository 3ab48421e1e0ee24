"""A real server process over TCP: concurrent gateways, then ``creditgraph verify``.

SQLite only (the embedded setup); several server processes on PostgreSQL are the
multi-instance tests'."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return servers.environment(f"sqlite+aiosqlite:///{tmp_path / 'server.db'}", tmp_path / "state")


@pytest.fixture
def secret(env: dict[str, str]) -> str:
    return servers.create_tenant(env, "acme", grant_usd="1").key_secret


@pytest.fixture
def server(env: dict[str, str], secret: str, tmp_path: Path) -> Iterator[str]:
    instance = servers.start(env, tmp_path / "server.log")
    yield instance.url
    # uvicorn shuts down gracefully on SIGTERM (running the lifespan's shutdown, which
    # drains the writer), then re-raises the signal as its exit status.
    instance.stop()
    assert "Application shutdown complete" in instance.log.read_text()


def test_300_concurrent_holds_over_tcp_admit_exactly_100(
    server: str, secret: str, env: dict[str, str]
) -> None:
    async def race() -> Counter[int]:
        limits = httpx.Limits(max_connections=300)
        async with httpx.AsyncClient(base_url=server, limits=limits, timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/authorize",
                        json={
                            "api_key": secret,
                            "model": "gpt-5-5",
                            "request_id": f"r{n}",
                            "hold_usd": "0.01",
                        },
                    )
                    for n in range(300)
                )
            )
        return Counter(response.status_code for response in responses)

    assert asyncio.run(race()) == {200: 100, 402: 200}
    result = servers.verify(env)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ok")

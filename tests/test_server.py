"""A real server process over TCP: concurrent gateways, then ``creditgraph verify``.

SQLite only (the embedded setup); several server processes on PostgreSQL are the
multi-instance tests'."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.money import parse_usd
from app.operations import create_api_key, create_organization
from app.runtime import Runtime
from app.settings import Settings

BIN = Path(sys.executable).parent / "creditgraph"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {
        "CREDITGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'server.db'}",
        "CREDITGRAPH_STATE_DIR": str(tmp_path / "state"),
        "CREDITGRAPH_JWT_SECRET": "server-test-secret-long-enough-for-hs256",
    }


@pytest.fixture
def secret(env: dict[str, str]) -> str:
    async def setup() -> str:
        runtime = await Runtime.start(
            Settings(
                database_url=env["CREDITGRAPH_DATABASE_URL"],
                state_dir=Path(env["CREDITGRAPH_STATE_DIR"]),
                jwt_secret=env["CREDITGRAPH_JWT_SECRET"],
                run_jobs=False,
            )
        )
        try:
            org = await create_organization(runtime, slug="acme", grant=parse_usd("1"))
            return (await create_api_key(runtime, org.id, "gateway")).secret
        finally:
            await runtime.stop()

    return asyncio.run(setup())


@pytest.fixture
def server(env: dict[str, str], secret: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"server did not start: {log.read_text()}") from None
            time.sleep(0.1)
    yield url
    process.terminate()
    # uvicorn shuts down gracefully on SIGTERM (running the lifespan's shutdown, which
    # drains the writer), then re-raises the signal as its exit status.
    process.wait(timeout=30)
    assert "Application shutdown complete" in log.read_text()


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
    result = subprocess.run(
        [str(BIN), "verify"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ok")

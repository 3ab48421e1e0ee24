"""A real uvicorn server, for what only a socket shows: WebSockets, other processes' clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from app.clock import Clock
from app.main import create_app
from app.settings import Settings
from tests.conftest import Harness

# Only to notice a hang; never a bound on how fast the server starts.
STARTUP_WAIT = 10


def _listening_socket() -> socket.socket:
    # Bound here and handed to uvicorn, so no other process can take the port between.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def server(settings: Settings, clock: Clock) -> AsyncIterator[Harness]:
    """A uvicorn server in this process; the harness's client speaks HTTP to it over TCP."""
    app = create_app(settings, clock)
    config = uvicorn.Config(app, lifespan="on", log_level="warning")
    uvicorn_server = uvicorn.Server(config)
    sock = _listening_socket()
    port = sock.getsockname()[1]
    task = asyncio.create_task(uvicorn_server.serve(sockets=[sock]))
    async with asyncio.timeout(STARTUP_WAIT):
        while not uvicorn_server.started:
            if task.done():
                task.result()  # raises the startup failure
            await asyncio.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
            yield Harness(app.state.runtime, http)
    finally:
        uvicorn_server.should_exit = True
        await task
        sock.close()

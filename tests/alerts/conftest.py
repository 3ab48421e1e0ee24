"""Alerts tests: webhooks may go to this host, retried quickly; a receiver to send them to."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.settings import Settings

STARTUP_WAIT = 10


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "alert_webhook_allow_private": True,
            "alert_webhook_backoff_seconds": 0.05,
            "alert_webhook_max_attempts": 3,
        }
    )


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    status: int = 200
    requests: list[Received] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (uvicorn in this process) that records requests and
    answers with ``status``."""
    state = Receiver(url="")

    async def hook(request: Request) -> Response:
        state.requests.append(Received(dict(request.headers), await request.body()))
        return Response(status_code=state.status)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(STARTUP_WAIT):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield state
    finally:
        server.should_exit = True
        await task
        sock.close()

"""Real ``creditgraph serve`` processes for tests, one or several on one database: free
ports, logs, readiness, stopping."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from app.auth import Role, issue_token
from app.ids import to_global_id
from app.money import parse_usd
from app.operations import create_api_key, create_organization
from app.runtime import Runtime
from app.settings import Settings

BIN = Path(sys.executable).parent / "creditgraph"
JWT_SECRET = "instances-test-secret-long-enough-for-hs256"
# Only to notice a hang; never a bound on how fast anything is.
STARTUP_WAIT = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(database_url: str, state_dir: Path, **extra: str) -> dict[str, str]:
    return os.environ | {
        "CREDITGRAPH_DATABASE_URL": database_url,
        "CREDITGRAPH_STATE_DIR": str(state_dir),
        "CREDITGRAPH_JWT_SECRET": JWT_SECRET,
        "CREDITGRAPH_RUN_JOBS": "false",
        "CREDITGRAPH_GRAPHQL_RATE_PER_SECOND": "100000",
        "CREDITGRAPH_GRAPHQL_BURST": "100000",
        **extra,
    }


@dataclass(frozen=True)
class Tenant:
    """An organization with a wallet and one API key, and its service token."""

    slug: str
    key_secret: str
    key_global_id: str

    def headers(self, role: Role = Role.SERVICE) -> dict[str, str]:
        token = issue_token(
            JWT_SECRET, org=self.slug, role=role, subject=f"{role}@test", ttl=timedelta(hours=1)
        )
        return {"Authorization": f"Bearer {token}"}


def create_tenant(env: dict[str, str], slug: str, grant_usd: str) -> Tenant:
    """Migrate the database if needed and create the organization and its key."""

    async def setup() -> Tenant:
        settings = Settings(
            database_url=env["CREDITGRAPH_DATABASE_URL"],
            state_dir=Path(env["CREDITGRAPH_STATE_DIR"]),
            jwt_secret=JWT_SECRET,
            run_jobs=False,
        )
        runtime = await Runtime.start(settings)
        try:
            org = await create_organization(runtime, slug=slug, grant=parse_usd(grant_usd))
            key = await create_api_key(runtime, org.id, "gateway")
            return Tenant(slug, key.secret, to_global_id("ApiKey", key.id))
        finally:
            await runtime.stop()

    return asyncio.run(setup())


@dataclass
class Instance:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=STARTUP_WAIT)


def start(
    env: dict[str, str], log: Path, *args: str, command: tuple[str, ...] = (str(BIN), "serve")
) -> Instance:
    """A ``creditgraph serve [ARGS]`` process (or ``command`` taking serve's options, such
    as ./scripts/demo) on a free port, once its /readyz answers 200; its standard error
    goes to ``log``."""
    port = free_port()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--port", str(port), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_WAIT
    while True:
        try:
            if httpx.get(f"{url}/readyz", trust_env=False).status_code == 200:
                return Instance(process, url, log)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            process.wait()
            raise RuntimeError(f"the server did not start: {log.read_text()}")
        time.sleep(0.1)


def printout(log: Path) -> list[str]:
    """What ``creditgraph serve`` printed once it listened (the demo's links), without
    uvicorn's lines or the access log after it: complete once /readyz answers, as it is
    printed in the server's startup, before any request is handled."""
    lines = log.read_text().splitlines()
    after = next(i for i, line in enumerate(lines) if "Uvicorn running on" in line) + 1
    printed = []
    for line in lines[after:]:
        if line.startswith(("INFO:", "WARNING:")):  # the access log
            break
        printed.append(line)
    return printed


def verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``creditgraph verify``, the CLI."""
    return subprocess.run(
        [str(BIN), "verify"], env=env, capture_output=True, text=True, check=False
    )

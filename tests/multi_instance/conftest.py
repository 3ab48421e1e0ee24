"""Two real server processes on one fresh PostgreSQL database and one Redis.

Set CREDITGRAPH_TEST_DATABASE_URL (a PostgreSQL server, e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres; each test creates and drops a
database of its own there) and CREDITGRAPH_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0;
each test uses a channel prefix of its own) to run these.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests import servers

PG_URL = os.environ.get("CREDITGRAPH_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("CREDITGRAPH_TEST_REDIS_URL")
ENABLE = (
    "set CREDITGRAPH_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres "
    "and CREDITGRAPH_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run the multi-instance tests"
)


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy ``postgresql+asyncpg://`` URL as asyncpg's own DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    assert PG_URL is not None
    conn = await asyncpg.connect(asyncpg_dsn(PG_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _url(name: str) -> str:
    assert PG_URL is not None
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated once by ``creditgraph migrate`` (the deploy step), copied
    for each test."""
    if not PG_URL or not REDIS_URL:
        pytest.skip(ENABLE)
    name = f"cg_multi_template_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        env = servers.environment(_url(name), tmp_path_factory.mktemp("migrate"))
        migrate = subprocess.run(
            [str(servers.BIN), "migrate"], env=env, capture_output=True, text=True, check=False
        )
        assert migrate.returncode == 0, migrate.stderr
        yield name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def env(template: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment both instances share: a fresh, migrated database of this test's
    own and a Redis channel prefix of its own."""
    assert REDIS_URL is not None
    name = f"cg_multi_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield servers.environment(
            _url(name),
            tmp_path / "state",
            CREDITGRAPH_REDIS_URL=REDIS_URL,
            CREDITGRAPH_REDIS_CHANNEL_PREFIX=f"test-{uuid.uuid4().hex}:",
            # As in production: migrated by the deploy step, not by each instance.
            CREDITGRAPH_ENVIRONMENT="production",
        )
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pair(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[servers.Instance, ...]]:
    """Two instances on the shared database and Redis."""
    started: list[servers.Instance] = []
    try:
        for name in ("a", "b"):
            started.append(servers.start(env, tmp_path / f"{name}.log"))
        yield tuple(started)
    finally:
        for instance in started:
            instance.stop()

"""Two real server processes on one fresh PostgreSQL database and one Redis.

Set CREDITGRAPH_TEST_DATABASE_URL (a PostgreSQL server, e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres; each test gets a database of its
own there, copied from the run's migrated template as every PostgreSQL test's is) and
CREDITGRAPH_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0; each test uses a channel
prefix of its own) to run these.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests import servers
from tests.conftest import PG_URL_VARIABLE, REDIS_URL_VARIABLE

REDIS_URL = os.environ.get(REDIS_URL_VARIABLE)
ENABLE_REDIS = (
    f"set {REDIS_URL_VARIABLE}=redis://127.0.0.1:6379/0 (and {PG_URL_VARIABLE}) "
    "to run the multi-instance tests"
)


@pytest.fixture
def env(postgres_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment both instances share: a fresh, migrated database of this test's
    own (``postgres_url``) and a Redis channel prefix of its own."""
    if not REDIS_URL:
        pytest.skip(ENABLE_REDIS)
    return servers.environment(
        postgres_url,
        tmp_path / "state",
        CREDITGRAPH_REDIS_URL=REDIS_URL,
        CREDITGRAPH_REDIS_CHANNEL_PREFIX=f"test-{uuid.uuid4().hex}:",
        # As in production: migrated before the instances start, not by each of them.
        CREDITGRAPH_ENVIRONMENT="production",
        CREDITGRAPH_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )


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

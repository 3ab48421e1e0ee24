"""Shared fixtures: a real creditgraph app on a temporary database, driven over HTTP.

Every test taking ``settings`` runs twice: on a fresh SQLite file, and on a fresh
PostgreSQL database when ``CREDITGRAPH_TEST_DATABASE_URL`` names a server (skipped, with
how to enable it, otherwise). Each PostgreSQL test gets its own database, copied from a
template migrated once per run, so parallel runs and tests never share state.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.auth import Role, issue_token
from app.clock import Clock
from app.ids import to_global_id
from app.keys.service import NO_CAPS, Caps, CreatedKey, revoke_key
from app.ledger.state import wallets
from app.ledger.verify import verify
from app.main import create_app
from app.migrate import upgrade
from app.money import parse_usd
from app.operations import create_api_key, create_organization
from app.orgs.service import OrgRef
from app.runtime import Runtime
from app.settings import Settings

T = TypeVar("T")

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"


PG_URL_VARIABLE = "CREDITGRAPH_TEST_DATABASE_URL"
REDIS_URL_VARIABLE = "CREDITGRAPH_TEST_REDIS_URL"
ENABLE_POSTGRES = (
    f"set {PG_URL_VARIABLE}=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres "
    "to run against PostgreSQL"
)
# One name per pytest run, so runs in parallel never touch each other's databases.
RUN_ID = uuid.uuid4().hex[:12]


def asyncpg_dsn(url: str | URL) -> str:
    """A SQLAlchemy ``postgresql+asyncpg://`` URL as asyncpg's own DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end from synchronous code, on a loop of its own in another
    thread (the test's loop may be current in this one)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


class PostgresServer:
    """The server ``CREDITGRAPH_TEST_DATABASE_URL`` names, and this run's template database.

    Copying the template takes the server longer than most tests take to run, so the
    next test's copy is made in the background while a test runs, and databases are
    dropped in the background too."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        if self.url.get_backend_name() != "postgresql":
            raise pytest.UsageError(f"{PG_URL_VARIABLE} must be a postgresql+asyncpg:// URL")
        self.template = f"cg_template_{RUN_ID}"
        self._admin_threads = ThreadPoolExecutor(2, thread_name_prefix="cg-test-postgres")
        self._spare: tuple[str, Future[None]] | None = None

    def database(self, name: str) -> URL:
        return self.url.set(database=name)

    def url_of(self, name: str) -> str:
        return self.database(name).render_as_string(hide_password=False)

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def _submit(self, sql: str) -> Future[None]:
        return self._admin_threads.submit(asyncio.run, self._admin(sql))

    def create(self, name: str, template: str | None = None) -> None:
        copy = f' TEMPLATE "{template}"' if template else ""
        self._submit(f'CREATE DATABASE "{name}"{copy}').result()

    def drop(self, name: str) -> Future[None]:
        return self._submit(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _copy(self) -> tuple[str, Future[None]]:
        name = f"cg_{RUN_ID}_{uuid.uuid4().hex[:12]}"
        return name, self._submit(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')

    def fresh(self) -> str:
        """The name of a new copy of the template; the next one starts being made."""
        name, made = self._spare or self._copy()
        made.result()
        self._spare = self._copy()
        return name

    def start(self) -> None:
        self.create(self.template)
        _run(_migrate(self.database(self.template)))

    def close(self) -> None:
        if self._spare is not None:
            self._spare[1].result()
            self.drop(self._spare[0])
        self.drop(self.template)
        self._admin_threads.shutdown(wait=True)


async def _migrate(url: URL) -> None:
    engine = create_async_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The server, with this run's migrated template database."""
    url = os.environ.get(PG_URL_VARIABLE)
    if not url:
        pytest.skip(ENABLE_POSTGRES)
    server = PostgresServer(url)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of its own, dropped after the test."""
    name = postgres.fresh()
    yield postgres.url_of(name)
    postgres.drop(name)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's own empty database, on each engine."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'creditgraph.db'}"
    return cast(str, request.getfixturevalue("postgres_url"))


def redis_settings() -> dict[str, Any]:
    """The Redis event bus for a PostgreSQL test, when ``CREDITGRAPH_TEST_REDIS_URL`` is set;
    channels carry a prefix of the test's own."""
    url = os.environ.get(REDIS_URL_VARIABLE)
    if not url:
        return {}
    return {"redis_url": url, "redis_channel_prefix": f"cg-test-{uuid.uuid4().hex[:12]}"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    engine = {} if database_url.startswith("sqlite") else redis_settings()
    return Settings(
        database_url=database_url,
        state_dir=tmp_path / "state",
        jwt_secret=JWT_SECRET,
        run_jobs=False,
        **engine,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def usage_event(key_id: int, request_id: str, **extra: Any) -> dict[str, Any]:
    """A usage event of the REST shape that costs 6,000 credits (0.006 USD), unless
    ``extra`` says otherwise."""
    return {
        "request_id": request_id,
        "api_key_id": to_global_id("ApiKey", key_id),
        "model": "claude-sonnet-4-6",
        "prompt_tokens": 1000,
        "completion_tokens": 200,
    } | extra


# A /metrics sample's value by its name and its labels, sorted.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metric_samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@dataclass
class Harness:
    """The app, an HTTP client on it, and shortcuts to set up organizations and keys."""

    runtime: Runtime
    http: httpx.AsyncClient

    async def org(self, slug: str = "acme", grant_usd: str = "0") -> OrgRef:
        return await create_organization(self.runtime, slug=slug, grant=parse_usd(grant_usd))

    async def key(
        self, org: OrgRef, *, caps: Caps = NO_CAPS, group: str = "default", **kwargs: Any
    ) -> CreatedKey:
        return await create_api_key(
            self.runtime, org.id, "test key", caps=caps, group=group, **kwargs
        )

    async def revoke(self, org: OrgRef, key: CreatedKey) -> None:
        """Revoke ``key`` as an owner would, behind the API's back."""
        async with self.runtime.db.write(org.id) as conn:
            await revoke_key(
                conn,
                organization_id=org.id,
                key_id=key.id,
                actor="test",
                now=self.runtime.clock.now(),
            )

    def token(self, org: OrgRef, role: Role = Role.SERVICE) -> dict[str, str]:
        token = issue_token(
            JWT_SECRET, org=org.slug, role=role, subject=f"{role}@test", ttl=timedelta(hours=1)
        )
        return {"Authorization": f"Bearer {token}"}

    async def authorize(self, key: CreatedKey, request_id: str, **body: Any) -> httpx.Response:
        payload = {"api_key": key.secret, "model": "claude-sonnet-4-6", "request_id": request_id}
        return await self.http.post("/api/v1/authorize", json=payload | body)

    async def books(self) -> list[str]:
        """Mismatches between stored counters and the ledger (``creditgraph verify``)."""
        async with self.runtime.db.reader.connect() as conn:
            return await verify(conn, self.runtime.clock.now())

    async def balance(self, org: OrgRef) -> tuple[int, int]:
        """The wallet's (balance, held) in credits."""
        async with self.runtime.db.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(wallets.c.balance, wallets.c.held).where(
                        wallets.c.organization_id == org.id
                    )
                )
            ).one()
        return row.balance, row.held

    @contextmanager
    def read_transactions(self) -> Iterator[list[object]]:
        """The transactions begun on the read engine meanwhile (on PostgreSQL it is the
        writer's engine too)."""
        begun: list[object] = []

        def on_begin(conn: object) -> None:
            begun.append(conn)

        engine = self.runtime.db.read_engine
        event.listen(engine, "begin", on_begin)
        try:
            yield begun
        finally:
            event.remove(engine, "begin", on_begin)

    async def metrics(self) -> Samples:
        """``/metrics``, parsed (``metric_samples``)."""
        return metric_samples((await self.http.get("/metrics")).text)

    async def graphql(
        self, query: str, headers: dict[str, str] | None = None, **variables: Any
    ) -> dict[str, Any]:
        """POST a GraphQL operation; the whole response body (``data`` and ``errors``)."""
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers or {}
        )
        assert response.status_code in (200, 400), response.text
        return cast(dict[str, Any], response.json())

    async def usage(self, org: OrgRef, *events: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.http.post(
            "/api/v1/usage", json={"events": list(events)}, headers=self.token(org)
        )
        assert response.status_code == 200, response.text
        return cast(list[dict[str, Any]], response.json()["results"])


async def _never_5xx(response: httpx.Response) -> None:
    """A 500 is a bug, whatever a test is about."""
    assert response.status_code < 500, f"{response.request.url}: {response.status_code}"


@asynccontextmanager
async def running_app(settings: Settings, clock: Clock, **options: Any) -> AsyncIterator[Harness]:
    """The app with ``settings``, ``clock`` and ``create_app``'s other ``options``, started,
    and a client on it."""
    app = create_app(settings, clock, **options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            event_hooks={"response": [_never_5xx]},
        ) as http:
            yield Harness(app.state.runtime, http)


@pytest.fixture
async def harness(settings: Settings, clock: Clock) -> AsyncIterator[Harness]:
    async with running_app(settings, clock) as running:
        yield running

"""Shared fixtures: a real creditgraph app on a temporary SQLite database, driven over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select

from app.auth import Role, issue_token
from app.clock import Clock
from app.ids import to_global_id
from app.keys.service import NO_CAPS, Caps, CreatedKey, revoke_key
from app.ledger.state import wallets
from app.ledger.verify import verify
from app.main import create_app
from app.money import parse_usd
from app.operations import create_api_key, create_organization
from app.orgs.service import OrgRef
from app.runtime import Runtime
from app.settings import Settings

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'creditgraph.db'}",
        state_dir=tmp_path / "state",
        jwt_secret=JWT_SECRET,
        run_jobs=False,
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
        async with self.runtime.db.writer.begin() as conn:
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
            return await verify(conn)

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
async def running_app(settings: Settings, clock: Clock) -> AsyncIterator[Harness]:
    """The app with ``settings`` and ``clock``, started, and a client on it."""
    app = create_app(settings, clock)
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

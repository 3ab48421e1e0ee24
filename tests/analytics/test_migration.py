"""Migration 0006: the migrated schema is the models' (no drift), and its backfill of the
breakdown rollups gives the rows the writer maintains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.clock import FrozenClock
from app.migrate import alembic_config
from app.tables import metadata
from app.usage.rollups import daily_by_t, hourly_by_t
from tests.analytics.test_summary import app_settings
from tests.conftest import running_app, usage_event


def _migrate(conn: Connection, direction: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    getattr(command, direction)(config, revision)


def _rows(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    return {t.name: {tuple(r) for r in conn.execute(select(t))} for t in (hourly_by_t, daily_by_t)}


async def test_the_backfill_equals_what_the_writer_wrote_and_nothing_drifts(
    tmp_path: Path,
) -> None:
    clock = FrozenClock(datetime(2026, 6, 1, 21, 0, tzinfo=UTC))
    settings = app_settings(tmp_path)
    async with running_app(settings, clock) as harness:
        org = await harness.org("acme", grant_usd="10")
        keys = [await harness.key(org) for _ in range(2)]
        for n in range(8):
            tags = {"agent": f"a{n % 2}"} | ({"conversation": f"c{n % 3}"} if n % 4 else {})
            await harness.usage(
                org,
                usage_event(keys[n % 2].id, f"r{n}", model=("gpt-5-5", "claude-sonnet-4-6")[n % 2])
                | {"tags": tags, "prompt_tokens": 100 * n},
            )
            clock.advance(timedelta(hours=2, minutes=30))
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            written = await conn.run_sync(_rows)
            assert all(written.values())
            await conn.run_sync(_migrate, "downgrade", "0005")
            await conn.run_sync(_migrate, "upgrade", "head")
            assert await conn.run_sync(_rows) == written
            drift = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
            assert drift == []
    finally:
        await engine.dispose()

"""Alembic migrations, run from code: at start-up (embedded SQLite) or ``creditgraph migrate``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(engine: AsyncEngine, settings: Settings | None = None) -> None:
    """Bring the database to the newest revision. Migrations that seal secrets take the
    key from ``settings`` (``migration_settings``)."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        config.attributes["settings"] = settings
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)


def migration_settings(config: Config) -> Settings:
    """The settings ``upgrade`` was given, else the environment's (the ``alembic`` CLI)."""
    settings = config.attributes.get("settings")
    return settings if isinstance(settings, Settings) else Settings()


async def pending(engine: AsyncEngine) -> bool:
    """Whether the database is behind the newest revision (or was never migrated)."""

    def behind(connection: Connection) -> bool:
        heads = ScriptDirectory.from_config(alembic_config()).get_heads()
        current = MigrationContext.configure(connection).get_current_heads()
        return set(current) != set(heads)

    async with engine.connect() as connection:
        return await connection.run_sync(behind)

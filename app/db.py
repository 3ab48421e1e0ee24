"""Engines, sessions and the database conventions shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import BigInteger, DateTime, Table, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from app.settings import Settings


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every engine.

    SQLite has no time zones; storing naive UTC everywhere and tagging it on the way
    out keeps comparisons and ordering right on both engines.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def credits_field(**kwargs: Any) -> Any:
    """A 64-bit integer column of credits."""
    return Field(sa_type=BigInteger, **kwargs)


def time_field(**kwargs: Any) -> Any:
    """A UTC timestamp column."""
    return Field(sa_type=UTCDateTime, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers run beside the one writer; the busy timeout makes a second
    # process (the CLI while a server runs) wait instead of failing.
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _create_engine(settings: Settings, *, for_writes: bool) -> AsyncEngine:
    engine = create_async_engine(settings.database_url)
    if settings.is_sqlite:
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "connect", _sqlite_pragmas)
        # Writers take the lock up front (BEGIN IMMEDIATE): a transaction that reads and
        # then writes can otherwise fail on lock upgrade, which busy_timeout cannot retry.
        begin = "BEGIN IMMEDIATE" if for_writes else "BEGIN"

        @event.listens_for(sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    return engine


class Database:
    """The engines of one process: on SQLite a writer and a reader, elsewhere one engine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.writer = _create_engine(settings, for_writes=True)
        self.reader = (
            _create_engine(settings, for_writes=False) if settings.is_sqlite else self.writer
        )

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def table(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel class, for bulk statements on the hot path."""
    return cast(Table, getattr(model, "__table__"))  # noqa: B009 (SQLModel leaves it untyped)


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"

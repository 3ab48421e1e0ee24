"""Engines, sessions and the database conventions shared by every table."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    DateTime,
    Select,
    Table,
    any_,
    bindparam,
    event,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.engine import Connection, Dialect, Engine, create_engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, SingletonThreadPool
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from app.settings import Settings

T = TypeVar("T")


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


def _sqlite_setup(engine: Engine, *, for_writes: bool) -> None:
    event.listen(engine, "connect", _sqlite_pragmas)
    # Writers take the lock up front (BEGIN IMMEDIATE): a transaction that reads and
    # then writes can otherwise fail on lock upgrade, which busy_timeout cannot retry.
    begin = "BEGIN IMMEDIATE" if for_writes else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


def _create_engine(settings: Settings, *, for_writes: bool) -> AsyncEngine:
    engine = create_async_engine(settings.database_url)
    if settings.is_sqlite:
        _sqlite_setup(engine.sync_engine, for_writes=for_writes)
    return engine


class Database:
    """The engines of one process: on SQLite a writer and a reader, elsewhere one engine.

    ``transaction`` runs the ledger writer's work. On SQLite the whole transaction runs
    in one thread with its own synchronous connection: through aiosqlite every
    statement is several hops between the event loop and the driver's thread, which
    costs more than SQLite takes to do the work; here a batch is one hop. Elsewhere it
    runs on the async engine (``run_sync``), so the work is written once, synchronously.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.writer = _create_engine(settings, for_writes=True)
        self.reader = (
            _create_engine(settings, for_writes=False) if settings.is_sqlite else self.writer
        )
        self._sync_writer: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if settings.is_sqlite:
            url = make_url(settings.database_url).set(drivername="sqlite")
            self._sync_writer = create_engine(url, poolclass=SingletonThreadPool)
            _sqlite_setup(self._sync_writer, for_writes=True)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="creditgraph-sqlite-writer")

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """``work`` within one write transaction, committed when it returns."""
        if self._thread is None:
            async with self.writer.begin() as conn:
                return await conn.run_sync(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._run_sync, work)

    def _run_sync(self, work: Callable[[Connection], T]) -> T:
        assert self._sync_writer is not None
        with self._sync_writer.begin() as conn:
            return work(conn)

    async def dispose(self) -> None:
        if self._thread is not None and self._sync_writer is not None:
            # The thread's connection can only be closed from that thread.
            await asyncio.get_running_loop().run_in_executor(
                self._thread, self._sync_writer.dispose
            )
            self._thread.shutdown()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def table(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel class, for bulk statements on the hot path."""
    return cast(Table, getattr(model, "__table__"))  # noqa: B009 (SQLModel leaves it untyped)


def is_postgres(conn: Connection | AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


# -- the hot path, at the driver ------------------------------------------------------
#
# Core's executemany processes every parameter of every row in Python, which costs
# as much as SQLite takes to store the row. The writer's bulk inserts hand the driver
# rows that are ready as they are: plain tuples, times through ``driver_time``.


def driver_time(conn: Connection) -> Callable[[datetime], Any]:
    """What ``UTCDateTime`` would send the driver: naive UTC, as text on SQLite."""
    if is_postgres(conn):
        return lambda at: at.astimezone(UTC).replace(tzinfo=None)
    # SQLAlchemy's SQLite DATETIME format: always six digits of microseconds.
    return lambda at: at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def driver_json(value: Any) -> str:
    """A JSON column's value as the driver takes it, on both engines."""
    return json.dumps(value) if value else "{}"


class BulkInsert:
    """An INSERT of ``columns``, compiled once per dialect, run with tuples in that order."""

    def __init__(self, t: Table, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._statement = insert(t).values({name: bindparam(name) for name in self.columns})
        self._sql: dict[str, str] = {}

    def execute(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        sql = self._sql.get(conn.dialect.name)
        if sql is None:
            compiled = self._statement.compile(dialect=conn.dialect)
            assert tuple(compiled.positiontup or ()) == self.columns
            sql = self._sql[conn.dialect.name] = str(compiled)
        conn.exec_driver_sql(sql, list(rows))


def any_of(
    conn: Connection | AsyncConnection, column: ColumnClause[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """``column IN values`` with a single bound parameter however many values there are.

    The statement then compiles once and stays cached, and binding costs the same for
    one value as for a thousand: an array on PostgreSQL, a JSON array read by
    ``json_each`` on SQLite (which still searches the column's index).
    """
    values = list(values)
    if is_postgres(conn):
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    listed: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam(None, json.dumps(values)))
    )
    return column.in_(listed)

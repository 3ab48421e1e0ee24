"""Engines, sessions and the database conventions shared by every table."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Insert,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, SingletonThreadPool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from app.changes import Changed, Changes
from app.settings import Settings

T = TypeVar("T")
S = TypeVar("S")

log = logging.getLogger(__name__)

# PostgreSQL errors after which a write transaction is run again from the start: a
# deadlock (40P01) or serialization failure (40001) aborts one of the transactions
# involved, and a unique violation (23505) means another instance inserted the same row
# (a request id) first, which the rerun loads and sees.
RETRY_SQLSTATES = frozenset({"40001", "40P01", "23505"})
RETRY_ATTEMPTS = 6
RETRY_BACKOFF_SECONDS = 0.005


def is_retryable(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in RETRY_SQLSTATES


def retry_delay(attempt: int) -> float:
    """Seconds before rerun ``attempt`` (1, 2, ...): doubling, jittered so that the
    transactions that collided do not collide again."""
    return RETRY_BACKOFF_SECONDS * (1 << (attempt - 1)) * random.uniform(0.5, 1.5)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every engine.

    SQLite has no time zones; storing naive UTC everywhere and tagging it on the way
    out keeps comparisons and ordering right on both engines.
    """

    impl = DateTime
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

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


class _SyncSQLite:
    """Synchronous SQLite connections, each used by one thread of a small pool.

    Through aiosqlite every statement is several hops between the event loop and the
    driver's thread, which cost more than SQLite takes to do the work. Work given here
    runs whole in a pool thread on that thread's own connection: one hop per call.
    """

    def __init__(self, settings: Settings, *, for_writes: bool, threads: int) -> None:
        url = make_url(settings.database_url).set(drivername="sqlite")
        # One connection per thread; closed from the event loop's thread at shutdown.
        self.engine = create_engine(
            url,
            poolclass=SingletonThreadPool,
            pool_size=threads + 1,  # and the event loop's, for ``_SQLiteWriter``
            connect_args={"check_same_thread": False},
        )
        _sqlite_setup(self.engine, for_writes=for_writes)
        role = "writer" if for_writes else "reader"
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix=f"creditgraph-{role}")

    async def run(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.threads, self._run, work)

    def _run(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return work(conn)

    def close(self) -> None:
        self.threads.shutdown()
        self.engine.dispose()


class _SQLiteWriter(_SyncSQLite):
    """The ledger writer's transactions, run on the event loop's thread itself.

    The writer's work is mostly Python, and Python runs one thread at a time: in a
    thread of its own it waited for the event loop to let go of the interpreter after
    every statement (up to its 5 ms switch interval), and the loop for it, so a batch
    took several times its work and the gateway's calls waited on both
    (docs/performance.md). On the loop there is no hand-over: requests arriving
    meanwhile queue in the socket buffers and join the next batch.

    The loop never waits on a lock: its connection has no busy timeout, so when another
    process holds SQLite's write lock (the CLI, a second server) BEGIN IMMEDIATE fails
    at once and the transaction runs in the thread, which waits for the lock. Nor does
    it checkpoint: its connection's automatic checkpoints are off, and every
    ``CHECKPOINT_EVERY`` commits a passive checkpoint runs in the thread (it copies the
    WAL into the database beside new writes, never blocking them).
    """

    CHECKPOINT_EVERY = 200

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, for_writes=True, threads=1)
        self._commits = 0
        self._checkpointing: asyncio.Future[None] | None = None

    async def run(self, work: Callable[[Connection], T]) -> T:
        conn = self.engine.connect()
        try:
            if not conn.info.get("on_loop"):  # the loop's connection, first used
                driver = conn.connection.dbapi_connection
                assert driver is not None
                driver.execute("PRAGMA busy_timeout=0")
                driver.execute("PRAGMA wal_autocheckpoint=0")
                conn.info["on_loop"] = True
            try:
                transaction = conn.begin()  # BEGIN IMMEDIATE (``_sqlite_setup``)
            except DBAPIError as error:
                if getattr(error.orig, "sqlite_errorcode", None) != _SQLITE_BUSY:
                    raise
                conn.close()
                return await super().run(work)  # another process writes: wait in the thread
            with transaction:
                result = work(conn)
        finally:
            conn.close()
        self._commits += 1
        if self._commits % self.CHECKPOINT_EVERY == 0 and self._checkpointing is None:
            self._checkpointing = asyncio.get_running_loop().run_in_executor(
                self.threads, self._checkpoint
            )
            self._checkpointing.add_done_callback(self._checkpointed)
        return result

    def _checkpoint(self) -> None:
        # On the driver's connection: through SQLAlchemy it would run in a transaction
        # (BEGIN IMMEDIATE, ``_sqlite_setup``), where SQLite cannot checkpoint.
        driver = self.engine.raw_connection()
        try:
            driver.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
        finally:
            driver.close()

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not done.cancelled() and done.exception() is not None:
            log.warning("WAL checkpoint failed: %s", done.exception())


_SQLITE_BUSY = 5


class Database:
    """The engines of one process.

    ``transaction`` runs the ledger writer's work, ``read`` the APIs' reads: each a
    synchronous function given a connection, run in one transaction. On SQLite they run
    on synchronous connections: the writer's on the event loop (``_SQLiteWriter``), the
    reads in a few threads (``_SyncSQLite``); elsewhere on the async engine through
    ``run_sync``, so the work is written once, synchronously. Other writes go through
    ``write``; ``writer`` and ``reader`` stay for migrations and reads. ``transaction``
    and ``write`` count what they commit in ``changes``, which the GraphQL response
    cache checks.
    """

    READER_THREADS = 4

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.changes = Changes()
        self.writer = _create_engine(settings, for_writes=True)
        self.reader = (
            _create_engine(settings, for_writes=False) if settings.is_sqlite else self.writer
        )
        self._sync_writer: _SQLiteWriter | None = None
        self._sync_readers: _SyncSQLite | None = None
        if settings.is_sqlite:
            self._sync_writer = _SQLiteWriter(settings)
            self._sync_readers = _SyncSQLite(
                settings, for_writes=False, threads=self.READER_THREADS
            )

    async def transaction(
        self, work: Callable[[Connection], T], changed: Callable[[], Changed]
    ) -> T:
        """``work`` within one write transaction, committed when it returns; then the
        organizations ``changed()`` names (asked after ``work`` ran) are counted as
        changed here. Announcing them to other instances is the caller's part: the
        ledger writer's events do it.

        On PostgreSQL, where other instances write too, a transaction that collided with
        one of theirs (``RETRY_SQLSTATES``) is rolled back and ``work`` run again, up to
        ``RETRY_ATTEMPTS`` times in all: ``work`` must load what it decides on itself."""
        try:
            if self._sync_writer is not None:
                return await self._sync_writer.run(work)
            return await self._retried(work)
        finally:  # also after a failure: whether a commit landed is not always known
            self.changes.count(changed())

    async def _retried(self, work: Callable[[Connection], T]) -> T:
        attempt = 1
        while True:
            try:
                async with self.writer.begin() as conn:
                    return await conn.run_sync(work)
            except DBAPIError as error:
                if attempt >= RETRY_ATTEMPTS or not is_retryable(error):
                    raise
                log.info("write transaction collided (%s); retrying", error.orig)
            await asyncio.sleep(retry_delay(attempt))
            attempt += 1

    @asynccontextmanager
    async def write(self, organization_id: int | None) -> AsyncIterator[AsyncConnection]:
        """A write transaction outside the ledger writer (settings, keys, payments' rows),
        committed when the block ends; the change is counted and announced under
        ``organization_id`` (None: it may touch any organization)."""
        try:
            async with self.writer.begin() as conn:
                yield conn
        finally:  # as in ``transaction``
            await self.changes.committed(None if organization_id is None else (organization_id,))

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work`` within one read transaction: its queries see one snapshot."""
        if self._sync_readers is not None:
            return await self._sync_readers.run(work)
        async with self.reader.begin() as conn:
            return await conn.run_sync(work)

    async def reachable(self) -> bool:
        """The database answers a trivial query within a few seconds (``/readyz``)."""
        try:
            await asyncio.wait_for(self.read(lambda conn: conn.exec_driver_sql("SELECT 1")), 5)
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    @property
    def read_engine(self) -> Engine:
        """The engine ``read`` runs on (for instrumentation: metrics, statement counts)."""
        if self._sync_readers is not None:
            return self._sync_readers.engine
        return self.reader.sync_engine

    @property
    def write_engine(self) -> Engine:
        """The engine ``transaction`` runs on (for instrumentation, as ``read_engine``)."""
        if self._sync_writer is not None:
            return self._sync_writer.engine
        return self.writer.sync_engine

    @property
    def write_engines(self) -> tuple[Engine, ...]:
        """Every engine writes commit on: ``transaction``'s and ``write``'s (on PostgreSQL
        one engine serves both)."""
        engines = (self.write_engine, self.writer.sync_engine)
        return engines[:1] if engines[0] is engines[1] else engines

    async def dispose(self) -> None:
        for pool in (self._sync_writer, self._sync_readers):
            if pool is not None:
                pool.close()
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
    return orjson.dumps(value).decode() if value else "{}"


class BulkInsert:
    """An INSERT of ``columns``, compiled once per dialect, run with tuples in that order.

    With ``conflict`` (a unique key among ``columns``), a row whose key exists instead
    adds its ``add`` columns to the stored row's: counters upserted in bulk.
    """

    def __init__(
        self,
        t: Table,
        columns: Sequence[str],
        *,
        conflict: Sequence[str] = (),
        add: Sequence[str] = (),
    ) -> None:
        self.columns = tuple(columns)
        self._table, self._conflict, self._add = t, tuple(conflict), tuple(add)
        self._sql: dict[str, str] = {}

    def _statement(self, dialect: str) -> Insert:
        t = self._table
        values: dict[str, Any] = {name: bindparam(name) for name in self.columns}
        if not self._conflict:
            return insert(t).values(values)
        statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t).values(
            values
        )
        return statement.on_conflict_do_update(
            index_elements=[t.c[name] for name in self._conflict],
            set_={name: t.c[name] + statement.excluded[name] for name in self._add},
        )

    def execute(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        sql = self._sql.get(conn.dialect.name)
        if sql is None:
            compiled = self._statement(conn.dialect.name).compile(dialect=conn.dialect)
            assert tuple(compiled.positiontup or ()) == self.columns
            sql = self._sql[conn.dialect.name] = str(compiled)
        at_driver(conn, sql, list(rows), many=True).close()


class JSONList(TypeDecorator[list[Any]]):
    """A list bound as one JSON text parameter, whatever its length."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else orjson.dumps(value).decode()


def _json_rows(name: str, dialect: str, *, as_text: bool = False) -> TableValuedAlias:
    """The elements of the JSON array bound to ``name``, as rows with a ``value`` column
    (on PostgreSQL json, or text with ``as_text``; on SQLite the element itself)."""
    param = bindparam(name, type_=JSONList())
    if dialect == "postgresql":
        elements = func.json_array_elements_text if as_text else func.json_array_elements
        return elements(sql_cast(param, JSON)).table_valued("value")
    return func.json_each(param).table_valued("value")


def in_list(column: ColumnClause[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """``column IN`` the list bound to ``name``: one parameter for any number of values, so
    the statement is built once and binding a thousand values costs what one does. The
    column's index is still searched."""
    rows = _json_rows(name, dialect, as_text=True)
    if dialect == "postgresql":
        return column.in_(select(sql_cast(rows.c.value, column.type)))
    return column.in_(select(rows.c.value))


def request_pairs(
    name: str, dialect: str
) -> tuple[TableValuedAlias, ColumnElement[Any], ColumnElement[Any]]:
    """The ``[organization id, request id]`` pairs bound to ``name`` as rows, and their two
    columns: join a table on both to search its (organization_id, request_id) index
    (SQLite answers a row-value ``IN`` with a scan)."""
    rows = _json_rows(name, dialect)
    if dialect == "postgresql":
        first = rows.c.value.op("->>")(literal(0))
        return rows, sql_cast(first, BigInteger), rows.c.value.op("->>")(literal(1))
    return rows, func.json_extract(rows.c.value, "$[0]"), func.json_extract(rows.c.value, "$[1]")


class Prebuilt(Generic[S]):
    """A statement built once per dialect and lock mode, then reused.

    Building a Core statement (and its cache key) costs several times what SQLite
    takes to run a small one; the writer runs a dozen per transaction. ``rows`` and
    ``execute_many`` go further and run it at the driver (``AtDriver``).
    """

    def __init__(self, build: Callable[[str, bool], S]) -> None:
        self._build = build
        self._built: dict[tuple[str, bool], S] = {}
        self._compiled: dict[tuple[str, bool], AtDriver] = {}

    def __call__(self, conn: Connection | AsyncConnection, lock: bool = False) -> S:
        key = (conn.dialect.name, lock)
        statement = self._built.get(key)
        if statement is None:
            statement = self._built[key] = self._build(*key)
        return statement

    def _at_driver(self, conn: Connection, lock: bool) -> AtDriver:
        key = (conn.dialect.name, lock)
        compiled = self._compiled.get(key)
        if compiled is None:
            statement = cast(ClauseElement, self(conn, lock))
            compiled = self._compiled[key] = AtDriver(statement, conn.dialect)
        return compiled

    def rows(self, conn: Connection, params: dict[str, Any], lock: bool = False) -> list[Any]:
        """Its rows for ``params``, run at the driver."""
        return self._at_driver(conn, lock).rows(conn, params)

    def first(self, conn: Connection, params: dict[str, Any]) -> Any:
        """Its first row for ``params`` (None: there is none), run at the driver."""
        rows = self.rows(conn, params)
        return rows[0] if rows else None

    def execute_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Run once per parameter set of ``rows``, at the driver in one call."""
        self._at_driver(conn, False).execute_many(conn, rows)


class AtDriver:
    """A Core statement compiled for one dialect and run on the driver's cursor.

    SQLAlchemy spends some 50 us of Python around each statement it executes (an
    execution context, parameter and result processing set up each time); SQLite runs
    the writer's in 5 to 20. Here the SQL and what each parameter and column needs are
    worked out once: parameters are bound by name in their compiled order through
    their types' bind processing, and rows come back as named tuples through their
    types' result processing (times, booleans, JSON), as ``Connection.execute`` gives
    them. The engine's cursor events still fire, for whoever listens (tests, tracing).
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = str(compiled)
        binds: list[tuple[str, Callable[[Any], Any] | None, bool, Any]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            assert not bind.expanding, "expanding IN lists are compiled per call"
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((name, process, bind.required, bind.value))
        self._binds = binds
        columns = list(getattr(statement, "selected_columns", ()))
        self._columns = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self._processed = [i for i, process in enumerate(self._columns) if process is not None]
        names = [column.key or f"c{i}" for i, column in enumerate(columns)]
        # Named at run time, so through ``Any`` (mypy wants the field names written out).
        row = cast(Any, namedtuple)("Row", names, rename=True)
        self._make: Callable[[Iterable[Any]], Any] = row._make

    def _args(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            (process(value) if process is not None else value)
            for name, process, required, default in self._binds
            for value in (params[name] if required or name in params else default,)
        )

    def rows(self, conn: Connection, params: dict[str, Any]) -> list[Any]:
        cursor = at_driver(conn, self.sql, self._args(params), many=False)
        raw = cursor.fetchall()
        cursor.close()
        make, columns, processed = self._make, self._columns, self._processed
        if not processed:
            return [make(row) for row in raw]
        rows = []
        for values in raw:
            values = list(values)
            for i in processed:
                values[i] = columns[i](values[i])
            rows.append(make(values))
        return rows

    def execute_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            at_driver(conn, self.sql, [self._args(row) for row in rows], many=True).close()


def at_driver(conn: Connection, sql: str, args: Any, *, many: bool) -> Any:
    """Run ``sql`` on the driver's cursor (``executemany`` with ``many``); the cursor. The
    engine's cursor events fire, and the driver's errors are raised as SQLAlchemy's
    (``DBAPIError`` and its subclasses, the original as ``orig``), as they would be
    through SQLAlchemy: the writer's retries on PostgreSQL read them."""
    driver = conn.connection.dbapi_connection
    assert driver is not None
    cursor = driver.cursor()
    dispatch = conn.dispatch
    if dispatch.before_cursor_execute:
        dispatch.before_cursor_execute(conn, cursor, sql, args, None, many)
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        if many:
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
    except dbapi_error as error:
        cursor.close()
        raise DBAPIError.instance(sql, args, error, dbapi_error, dialect=conn.dialect) from error
    if dispatch.after_cursor_execute:
        dispatch.after_cursor_execute(conn, cursor, sql, args, None, many)
    return cursor

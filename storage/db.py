"""Engine and transactions for SQLite (embedded default) and PostgreSQL (production).

``Database.write()`` is the only way to change data: one transaction, committed on exit. On
SQLite it starts with ``BEGIN IMMEDIATE`` (so a read-then-write transaction never fails to upgrade
its lock) and writers of one process queue on an ``asyncio.Lock`` instead of spinning in SQLite's
busy handler; ``busy_timeout`` still covers writers from other processes. On PostgreSQL the
transaction runs at READ COMMITTED and the badge code locks rows explicitly (``storage.badges``).

``Database.read()`` gives a consistent snapshot for several statements: SQLite's WAL read
transaction, PostgreSQL's REPEATABLE READ.

A write that waits for another writer's lock longer than ``busy_timeout_ms`` (SQLite's busy
timeout, PostgreSQL's ``lock_timeout``), or past PostgreSQL's statement timeout, raises
``DatabaseBusy`` instead of the driver's error: nothing of it was written, and the caller may
try again (issue 11 item 9: such calls were reported as internal errors).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

BUSY_TIMEOUT_MS = 30_000
# PostgreSQL's SQLSTATEs for a wait cut short: lock_not_available (lock_timeout) and
# query_canceled (statement_timeout).
_PG_BUSY_STATES = frozenset({"55P03", "57014"})


class DatabaseBusy(Exception):
    """A write waited for another writer's lock (or ran) past its timeout; nothing of it was
    written. ``str()`` is the message for clients."""

    def __init__(self) -> None:
        super().__init__("database busy: another write held the lock too long; try again")


def _is_busy(error: DBAPIError) -> bool:
    original = error.orig
    # sqlite3: SQLITE_BUSY / SQLITE_LOCKED, "database is locked"
    if getattr(original, "sqlite_errorname", None) in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return True
    if "database is locked" in str(original):
        return True
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return state in _PG_BUSY_STATES


def _sqlite_connect(busy_timeout_ms: int, dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is turned off so that BEGIN is ours (SQLAlchemy docs,
    # "Serializable isolation / Savepoints / Transactional DDL").
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """One database: the engine, and transactions to read or write through it.

    ``url`` is a SQLAlchemy async URL (``sqlite+aiosqlite:///path`` or
    ``postgresql+asyncpg://...``); the pool and statement timeout options apply to PostgreSQL
    (issue 5 item 2), ``busy_timeout_ms`` (milliseconds a write waits for another writer's
    lock) to both. Call ``dispose()`` when done.
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = 10,
        max_overflow: int = 20,
        statement_timeout_ms: int = 30_000,
        pool_timeout_s: float = 30.0,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            # PostgreSQL: a bounded pool per process, and no statement may run longer than
            # statement_timeout_ms (0: no limit), so one stuck query cannot hold a connection.
            kwargs.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout_s,
                pool_pre_ping=True,
                connect_args={
                    "server_settings": {
                        "statement_timeout": str(statement_timeout_ms),
                        "lock_timeout": str(busy_timeout_ms),
                    }
                },
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:

            def connect(dbapi_connection: Any, record: Any) -> None:
                _sqlite_connect(busy_timeout_ms, dbapi_connection, record)

            event.listen(self.engine.sync_engine, "connect", connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
            writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
            reader = self.engine
        else:
            writer = self.engine
            reader = self.engine.execution_options(isolation_level="REPEATABLE READ")
        self._writer = async_sessionmaker(writer, expire_on_commit=False, autoflush=False)
        self._reader = async_sessionmaker(reader, expire_on_commit=False, autoflush=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A read-write transaction, committed when the block ends, rolled back on error.
        Raises ``DatabaseBusy`` when it waited for a lock past its timeout (module docstring)."""
        try:
            if self._write_lock is None:
                async with self._writer.begin() as session:
                    yield session
                return
            async with self._write_lock, self._writer.begin() as session:
                yield session
        except DBAPIError as error:
            if _is_busy(error):
                raise DatabaseBusy() from error
            raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction with one consistent snapshot for all its statements."""
        async with self._reader.begin() as session:
            yield session

    async def ping(self) -> None:
        """Run ``SELECT 1`` in a read transaction: returns when the database answers, raises the
        driver's or the pool's error (``OSError``, ``sqlalchemy.exc.DBAPIError``,
        ``sqlalchemy.exc.TimeoutError``, ...) when it does not (the readiness probe)."""
        async with self.read() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

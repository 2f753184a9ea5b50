"""``Database.ping()``: the readiness probe's question to the database."""

from __future__ import annotations

import pytest

from storage.db import Database


async def test_ping_returns_when_the_database_answers(database_url: str):
    """ping() returns on the test database (SQLite file or PostgreSQL)."""
    db = Database(database_url)
    try:
        await db.ping()
    finally:
        await db.dispose()


async def test_ping_raises_when_postgresql_is_unreachable():
    """ping() raises OSError when nothing listens at the PostgreSQL address."""
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/none", pool_timeout_s=1.0)
    try:
        with pytest.raises(OSError, match="Connect call failed"):
            await db.ping()
    finally:
        await db.dispose()

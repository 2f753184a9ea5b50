"""The database layer's operational limits on PostgreSQL (issue 5 item 2): a bounded pool and
a statement timeout. Runs against the test PostgreSQL in every pass (``.ci/run`` starts it)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from storage.db import Database
from tests.factories import POSTGRES_ADMIN_URL


async def test_a_statement_past_the_timeout_is_cancelled():
    """No statement runs longer than statement_timeout_ms; the connection stays usable."""
    db = Database(POSTGRES_ADMIN_URL, statement_timeout_ms=200, pool_size=1, max_overflow=0)
    try:
        with pytest.raises(DBAPIError, match="statement timeout"):
            async with db.read() as session:
                await session.execute(text("SELECT pg_sleep(2)"))
        async with db.read() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await db.dispose()


async def test_the_pool_is_bounded():
    """pool_size + max_overflow connections at most; the next waits, then times out."""
    db = Database(POSTGRES_ADMIN_URL, pool_size=1, max_overflow=0, pool_timeout_s=0.2)
    try:
        async with db.read() as first:
            await first.execute(text("SELECT 1"))
            with pytest.raises(PoolTimeout, match="QueuePool limit of size 1 overflow 0"):
                async with db.read() as second:
                    await second.execute(text("SELECT 1"))
    finally:
        await db.dispose()

"""What differs between SQLite and PostgreSQL in the statements ``storage`` builds.

Both dialects spell ``INSERT ... ON CONFLICT DO NOTHING / DO UPDATE ... RETURNING`` with the same
SQLAlchemy API (``on_conflict_do_nothing``, ``on_conflict_do_update``, ``excluded``), but each in
its own ``Insert`` class; the core ``insert()`` has neither. Row locks (``FOR UPDATE``) are
PostgreSQL's alone: SQLite ignores them, its writers holding the database's write lock
(``storage.db``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.functions import Function

UpsertInsert = postgresql.Insert | sqlite.Insert


def is_postgresql(session: AsyncSession) -> bool:
    """Whether ``session`` talks to PostgreSQL (else SQLite, the only other dialect)."""
    return session.get_bind().dialect.name == "postgresql"


def upsert_insert(session: AsyncSession, table: Table) -> UpsertInsert:
    """An ``INSERT`` into ``table`` for ``session``'s dialect, which accepts
    ``on_conflict_do_nothing`` / ``on_conflict_do_update`` and ``RETURNING``."""
    if is_postgresql(session):
        return postgresql.insert(table)
    return sqlite.insert(table)


def least(session: AsyncSession, *values: Any) -> Function[Any]:
    """SQL for the smallest of ``values`` (columns, expressions or Python values): PostgreSQL's
    ``least``, SQLite's scalar ``min`` of several arguments."""
    if is_postgresql(session):
        return func.least(*values)
    return func.min(*values)

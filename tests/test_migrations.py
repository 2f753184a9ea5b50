"""Migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command

from storage.db import Database
from storage.migrate import DatabaseNotMigrated, alembic_config, require_current, upgrade


def test_models_and_migrations_do_not_drift(database_url: str):
    """`alembic check` finds nothing to generate against a freshly migrated database."""
    command.check(alembic_config(database_url))


def test_upgrade_is_idempotent(database_url: str):
    """Upgrading a database already at head changes nothing and raises nothing."""
    upgrade(database_url)
    upgrade(database_url)


def test_default_group_and_category_exist(database_url: str):
    """Migration 0001 creates the built-in default group and category (id 1)."""

    async def read() -> list[tuple[int, int, str]]:
        from sqlalchemy import text

        db = Database(database_url)
        try:
            async with db.read() as session:
                rows = await session.execute(text("SELECT id, group_id, name FROM app_category"))
                return [tuple(row) for row in rows.all()]
        finally:
            await db.dispose()

    assert asyncio.run(read()) == [(1, 1, "默认分类")]


def test_empty_database_is_reported(tmp_path):
    """require_current refuses a database that was never migrated."""

    async def check() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        try:
            await require_current(db)
        finally:
            await db.dispose()

    with pytest.raises(DatabaseNotMigrated, match="workbench migrate"):
        asyncio.run(check())

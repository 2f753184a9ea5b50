"""Migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.db import Database
from storage.migrate import DatabaseNotMigrated, alembic_config, require_current, upgrade


def test_models_and_migrations_do_not_drift(database_url: str):
    """`alembic check` finds nothing to generate against a freshly migrated database."""
    command.check(alembic_config(database_url))


def _snapshot(database_url: str) -> dict[str, Any]:
    """The revision, every table's columns, indexes and foreign keys, and the built-in rows."""

    def inspect_schema(connection: Connection) -> dict[str, Any]:
        inspector = inspect(connection)
        return {
            table: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
                ],
                "indexes": sorted(
                    (i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(table)
                ),
                "foreign_keys": sorted(
                    (tuple(fk["constrained_columns"]), fk["referred_table"])
                    for fk in inspector.get_foreign_keys(table)
                ),
            }
            for table in sorted(inspector.get_table_names())
        }

    async def read() -> dict[str, Any]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                schema = await connection.run_sync(inspect_schema)
                revision = (
                    await connection.execute(text("SELECT version_num FROM alembic_version"))
                ).all()
                groups = (
                    await connection.execute(text("SELECT id, name FROM app_group ORDER BY id"))
                ).all()
                categories = (
                    await connection.execute(
                        text("SELECT id, group_id, name FROM app_category ORDER BY id")
                    )
                ).all()
        finally:
            await engine.dispose()
        return {
            "revision": [tuple(row) for row in revision],
            "schema": schema,
            "groups": [tuple(row) for row in groups],
            "categories": [tuple(row) for row in categories],
        }

    return asyncio.run(read())


def test_upgrade_is_idempotent(database_url: str):
    """Upgrading a database already at head twice leaves its revision, every table, column,
    index and foreign key, and the built-in rows exactly as they were."""
    # given
    before = _snapshot(database_url)
    # when
    upgrade(database_url)
    upgrade(database_url)
    # then
    after = _snapshot(database_url)
    assert after == before
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert before["revision"] == [(head,)]
    assert before["groups"] == [(1, "默认分组")]
    assert before["categories"] == [(1, 1, "默认分类")]
    assert set(before["schema"]) == {*SQLModel.metadata.tables, "alembic_version"}


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


def test_app_ids_are_never_reused_after_migrations(database_url: str):
    """Every migration keeps the app table's AUTOINCREMENT (SQLite) or sequence: a deleted
    app's id is not given again."""

    async def run() -> tuple[int, int]:
        from sqlalchemy import text

        db = Database(database_url)
        try:
            ids = []
            for name in ("first", "second"):
                async with db.write() as session:
                    row = await session.execute(
                        text(
                            "INSERT INTO app (app_key, name, identifier, identifier_key, kind, "
                            "icon, category_id, position, user_removable, enabled, "
                            "audience_mode, legacy_signed, created_at, updated_at) VALUES "
                            f"('k{name}', 'n', '{name}', '{name}', 'CUSTOM', 'app', 1, 0, "
                            "true, true, 'ALL', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) "
                            "RETURNING id"
                        )
                    )
                    ids.append(row.scalar_one())
                    await session.execute(text(f"DELETE FROM app WHERE id = {ids[-1]}"))
            return ids[0], ids[1]
        finally:
            await db.dispose()

    first, second = asyncio.run(run())
    assert second > first


def test_a_database_newer_than_the_code_is_named_as_such(database_url: str):
    """A process older than its database says so, instead of advising a migration that
    cannot run."""

    async def check() -> None:
        from sqlalchemy import text

        db = Database(database_url)
        async with db.read() as session:
            head = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        try:
            async with db.write() as session:
                await session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
            await require_current(db)
        finally:
            # The PostgreSQL test database is shared by later tests: put the revision back.
            async with db.write() as session:
                await session.execute(
                    text("UPDATE alembic_version SET version_num = :v"), {"v": head}
                )
            await db.dispose()

    with pytest.raises(DatabaseNotMigrated, match="newer than this code"):
        asyncio.run(check())

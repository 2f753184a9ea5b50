"""Alembic migrations, applied programmatically (``workbench migrate``, tests, start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from storage.db import Database

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic ``Config`` for this project's migrations against database ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: the newest). Idempotent.

    Runs its own event loop: call it outside a running loop (CLI, test set-up).
    """
    command.upgrade(alembic_config(url), revision)


class DatabaseNotMigrated(RuntimeError):
    """The database is not at the newest migration; run ``workbench migrate``."""


async def require_current(db: Database) -> None:
    """Raise ``DatabaseNotMigrated`` unless ``db`` is at the newest revision."""
    head = ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as connection:
        revision = await connection.run_sync(current)
    if revision != head:
        script = ScriptDirectory.from_config(alembic_config(db.url))
        known = revision is None or any(r.revision == revision for r in script.walk_revisions())
        if not known:
            raise DatabaseNotMigrated(
                f"database is at revision {revision}, newer than this code ({head}): "
                "run the version of workbench that migrated it"
            )
        raise DatabaseNotMigrated(
            f"database is at revision {revision or 'none'}, code needs {head}: "
            "run `.venv/bin/workbench migrate` with this WORKBENCH_DATABASE_URL"
        )

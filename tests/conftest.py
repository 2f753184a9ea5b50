"""Shared fixtures: a migrated database (SQLite file or PostgreSQL), settings, a real uvicorn
server on a free loopback port, HTTP and WebSocket clients, and tokens.

The database is chosen by ``WORKBENCH_TEST_DATABASE``: ``sqlite`` (default) or ``postgresql``.
PostgreSQL uses ``WORKBENCH_TEST_POSTGRES_URL`` (default ``postgresql+asyncpg://postgres@
127.0.0.1:5432/test``) to create a fresh database for the session; if it cannot, the run fails
(it never skips silently).
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from imworkbench.settings import Settings
from resolvers.tokens import TokenCodec
from storage.migrate import upgrade
from tests.factories import (
    BACKEND,
    BROKER,
    JWT_SECRET,
    POSTGRES_ADMIN_URL,
    TIMEOUT,
    RunningServer,
    Tokens,
    admin_execute,
    broker_url,
    running,
)

TABLES = (
    "app_removal, app_badge, user_badge_state, app_platform, app_audience, app, "
    "app_category, app_group, icon_image, audit_entry, sso_ticket, legacy_signature, "
    "idempotency_record, vendor_badge_version, device, push_outbox"
)

if BACKEND not in ("sqlite", "postgresql"):
    raise pytest.UsageError(
        f"WORKBENCH_TEST_DATABASE must be sqlite or postgresql, not {BACKEND!r}"
    )


if BROKER not in ("memory", "redis"):
    raise pytest.UsageError(f"WORKBENCH_TEST_BROKER must be memory or redis, not {BROKER!r}")


def pytest_report_header() -> str:
    """Say which database and broker this run tests."""
    return f"workbench test database: {BACKEND}, broker: {BROKER}"


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database at the newest migration, made once per session: a SQLite template file, or
    a fresh PostgreSQL database (dropped at the end)."""
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("template") / "template.db"
        upgrade(f"sqlite+aiosqlite:///{path}")
        yield str(path)
        return
    name = f"workbench_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(admin_execute(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # pragma: no cover - environment problem, reported loudly
        pytest.exit(f"PostgreSQL requested but unreachable at {POSTGRES_ADMIN_URL}: {error}", 3)
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    asyncio.run(admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
            await connection.execute(
                text(
                    "INSERT INTO app_group (id, name, position, created_at) "
                    "VALUES (1, '默认分组', 0, now())"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO app_category (id, group_id, name, position, created_at) "
                    "VALUES (1, 1, '默认分类', 0, now())"
                )
            )
            for table in ("app_group", "app_category"):
                await connection.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1)")
                )
    finally:
        await engine.dispose()


@pytest.fixture
async def database_url(migrated_database: str, tmp_path: Path) -> str:
    """A migrated, empty database for one test (a copied SQLite file, or truncated tables)."""
    if BACKEND == "sqlite":
        path = tmp_path / "workbench.db"
        shutil.copyfile(migrated_database, path)
        return f"sqlite+aiosqlite:///{path}"
    await _reset_postgres(migrated_database)
    return migrated_database


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own database, a fixed JWT secret, a ``connection_init`` wait of
    ``TIMEOUT`` (a loaded 2-core machine can take over a second to read an init frame; the tests
    of the timeout itself shorten it)."""
    return Settings(
        database_url=database_url,
        broker_url=broker_url(),
        jwt_secret=JWT_SECRET,
        jwt_secret_file=tmp_path / "unused-secret",
        ws_connection_init_timeout=TIMEOUT,
        max_subscriptions_per_connection=3,
    )


@pytest.fixture
def codec() -> TokenCodec:
    """Signs tokens the test server accepts."""
    return TokenCodec(JWT_SECRET)


@pytest.fixture
def tokens(codec: TokenCodec) -> Tokens:
    """Token factory."""
    return Tokens(codec)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    """The app served by a real uvicorn server (same event loop) on a free port."""
    async with running(settings) as started:
        yield started


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the running server."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT) as client:
        yield client

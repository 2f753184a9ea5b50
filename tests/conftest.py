"""Shared fixtures: a migrated database (SQLite file or PostgreSQL), settings, a real uvicorn
server on a free loopback port, HTTP and WebSocket clients, and tokens.

The database is chosen by ``WORKBENCH_TEST_DATABASE``: ``sqlite`` (default) or ``postgresql``.
PostgreSQL uses ``WORKBENCH_TEST_POSTGRES_URL`` (default ``postgresql+asyncpg://postgres@
127.0.0.1:5432/test``) to create a fresh database for the session; if it cannot, the run fails
(it never skips silently).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from imworkbench.app import create_app
from imworkbench.serving import uvicorn_options
from imworkbench.settings import Settings
from resolvers.identity import Role
from resolvers.tokens import TokenCodec
from storage.migrate import upgrade

# Every wait in the suite is a multiple of this (slow CI machines: raise it, don't edit tests).
TIMEOUT = float(os.environ.get("WORKBENCH_TEST_TIMEOUT", "5"))
JWT_SECRET = "test-secret-0123456789-0123456789-abcdef"
BACKEND = os.environ.get("WORKBENCH_TEST_DATABASE", "sqlite").strip().lower()
# The broker the test servers use: memory (default) or redis (.ci/run's PostgreSQL pass).
BROKER = os.environ.get("WORKBENCH_TEST_BROKER", "memory").strip().lower()
REDIS_URL = os.environ.get("WORKBENCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_ADMIN_URL = os.environ.get(
    "WORKBENCH_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
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


async def _admin_execute(statement: str) -> None:
    engine = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


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
        asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # pragma: no cover - environment problem, reported loudly
        pytest.exit(f"PostgreSQL requested but unreachable at {POSTGRES_ADMIN_URL}: {error}", 3)
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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


def broker_url() -> str:
    """The broker URL for one test: memory, or Redis in a namespace of its own."""
    if BROKER == "redis":
        return f"{REDIS_URL}?namespace=test-{uuid.uuid4().hex[:12]}"
    return "memory://"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own database, a fixed JWT secret, short WebSocket timeouts."""
    return Settings(
        database_url=database_url,
        broker_url=broker_url(),
        jwt_secret=JWT_SECRET,
        jwt_secret_file=tmp_path / "unused-secret",
        ws_connection_init_timeout=1.0,
        max_subscriptions_per_connection=3,
    )


@pytest.fixture
def codec() -> TokenCodec:
    """Signs tokens the test server accepts."""
    return TokenCodec(JWT_SECRET)


@dataclass
class Tokens:
    """Token factory bound to the test secret."""

    codec: TokenCodec

    def user(self, cid: int = 1001, uid: int = 1034, **kw: Any) -> str:
        """A ``user`` token."""
        return self.codec.issue(cid=cid, uid=uid, role=Role.USER, **kw)

    def admin(self, cid: int = 1, uid: int = 1) -> str:
        """A ``platform_admin`` token."""
        return self.codec.issue(cid=cid, uid=uid, role=Role.PLATFORM_ADMIN)

    def enterprise_admin(self, cid: int = 1001, uid: int = 9) -> str:
        """An ``enterprise_admin`` token of enterprise ``cid``."""
        return self.codec.issue(cid=cid, uid=uid, role=Role.ENTERPRISE_ADMIN)


@pytest.fixture
def tokens(codec: TokenCodec) -> Tokens:
    """Token factory."""
    return Tokens(codec)


def free_socket() -> socket.socket:
    """A bound loopback TCP socket on a free port, for uvicorn to serve on."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for sockets
    # that say they are TCP; without it every keep-alive request waits ~40 ms for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class RunningServer:
    """A uvicorn server running the app on loopback."""

    http_url: str
    ws_url: str
    app: Any


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    """The app served by a real uvicorn server (same event loop) on a free port."""
    async with running(settings) as started:
        yield started


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[RunningServer]:
    """Serve the app for ``settings`` with a real uvicorn server on a free port while the
    block runs, then shut it down through its lifespan (tests that restart the service)."""
    application = create_app(settings)
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application, lifespan="on", log_level="warning", **uvicorn_options(settings)
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    for _ in range(int(TIMEOUT * 100)):
        if uv.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not uv.started:
        task.result() if task.done() else task.cancel()
        raise RuntimeError("test server did not start")
    try:
        yield RunningServer(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/graphql", application
        )
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, TIMEOUT * 2)
        sock.close()


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the running server."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT) as client:
        yield client

"""The legacy endpoints' gate (resolvers/legacy_access.py): open apps pass on the process's
cached rules, an announced change reaches that cache at once, and every other app is checked
against its row and its signature."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from imworkbench.brokers import MemoryBroker
from resolvers.apps import (
    AppDraft,
    AppPatch,
    PlatformDraft,
    create_app,
    set_app_enabled,
    update_app,
)
from resolvers.errors import AppNotFound
from resolvers.identity import Principal, Role
from resolvers.legacy_access import admit_legacy_call
from resolvers.streams.catalogue import CatalogueWatch
from resolvers.streams.hub import Hub
from resolvers.vendor import AccessRefused
from storage.db import Database
from storage.models import LaunchMode, Platform

ADMIN = Principal(cid=1, uid=1, account="admin", role=Role.PLATFORM_ADMIN)
NOTICE = [("fromcid", "1001"), ("fromuid", "1"), ("users", '["1001,1034"]')]


class Service:
    """A database, a broker, the hub and a started catalogue watch: one process's worth."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.broker = MemoryBroker()
        self.watch = CatalogueWatch(db, Hub(self.broker))

    async def new_app(self) -> int:
        """An open WEB app on every platform; its id."""
        web = PlatformDraft(launch_mode=LaunchMode.WEB, web_url="https://example.com/")
        draft = AppDraft(name="门禁", identifier="Gate", platforms=dict.fromkeys(Platform, web))
        created = await create_app(db=self.db, principal=ADMIN, draft=draft)
        assert created.app.id is not None
        return created.app.id

    async def admit(self, app_id: int, params: list[tuple[str, str]] = NOTICE) -> None:
        """The gate, for a call from 127.0.0.1."""
        async with admit_legacy_call(
            db=self.db,
            watch=self.watch,
            sealer=None,
            app_id=app_id,
            params=[("appid", str(app_id)), *params],
            client_ip="127.0.0.1",
        ):
            pass


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[Service]:
    """One process's worth of the service over the test database."""
    db = Database(database_url)
    running = Service(db)
    await running.watch.start()
    yield running
    await running.watch.close()
    await db.dispose()


async def test_an_open_app_passes_and_an_unknown_one_does_not(service):
    """An open app passes whatever it sends; an app id that names no app is not found."""
    app_id = await service.new_app()
    await service.admit(app_id)
    await service.admit(app_id, [*NOTICE, ("timestamp", "1"), ("sign", "zz")])
    with pytest.raises(AppNotFound):
        await service.admit(app_id + 1000)


async def test_an_announced_change_reaches_the_cached_rules(service):
    """An announced switch to signed mode, then a disable, apply at once despite the cache."""
    app_id = await service.new_app()
    await service.admit(app_id)  # cached as open
    await update_app(
        db=service.db,
        broker=service.broker,
        principal=ADMIN,
        app_id=app_id,
        patch=AppPatch(legacy_signed=True),
    )
    # the in-process broker delivers on publish: the watch has dropped the cached rules
    with pytest.raises(AccessRefused, match="requires timestamp and sign"):
        await service.admit(app_id)
    await set_app_enabled(
        db=service.db, broker=service.broker, principal=ADMIN, app_id=app_id, enabled=False
    )
    with pytest.raises(AppNotFound):
        await service.admit(app_id)

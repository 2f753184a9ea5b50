"""BadgeStream: ordering by version, merging for slow clients, resync (resolvers/streams/)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from imworkbench.brokers import MemoryBroker
from resolvers.apps import AppDraft, PlatformDraft, create_app
from resolvers.badges import BadgeEventData
from resolvers.identity import Principal, Role
from resolvers.messages import BadgeCause, BadgeChange, user_channel
from resolvers.notices import push_notice
from resolvers.streams.badges import BadgeStream
from resolvers.streams.hub import Hub
from storage.badges import read_state
from storage.db import Database
from storage.models import LaunchMode, Platform
from tests.factories import TIMEOUT

ADMIN = Principal(cid=1, uid=1, account="admin", role=Role.PLATFORM_ADMIN)
CHANNEL = user_channel(1001, 1034)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The test database, opened directly."""
    database = Database(database_url)
    yield database
    await database.dispose()


async def apps(db: Database, *identifiers: str, platforms=tuple(Platform)) -> list[int]:
    """Create WEB apps; returns their ids."""
    web = PlatformDraft(launch_mode=LaunchMode.WEB, web_url="https://example.com/")
    ids = []
    for identifier in identifiers:
        draft = AppDraft(
            name="流应用", identifier=identifier, platforms=dict.fromkeys(platforms, web)
        )
        created = await create_app(db=db, principal=ADMIN, draft=draft)
        assert created.app.id is not None
        ids.append(created.app.id)
    return ids


def change(cause: BadgeCause, version: int, unseen: int, *badges: tuple[int, int]) -> BadgeChange:
    """A change of user (1001, 1034), as the hub hands it to streams."""
    return BadgeChange(cause, version, unseen, badges)


def message(cause: BadgeCause, version: int, unseen: int, *badges: tuple[int, int]) -> bytes:
    """A broker message as the resolvers publish it."""
    return change(cause, version, unseen, *badges).encode()


async def next_event(events: AsyncIterator[BadgeEventData]) -> BadgeEventData:
    """The stream's next event, within the test timeout."""
    return await asyncio.wait_for(anext(events), TIMEOUT)


async def test_older_message_after_newer_is_ignored_per_app(db):
    """A late message with a lower version changes only the apps the newer ones did not set."""
    # given
    first, second = await apps(db, "StreamA", "StreamB")
    broker = MemoryBroker()
    events = BadgeStream(db=db, hub=Hub(broker), cid=1001, uid=1034, platform=None).events()
    assert (await next_event(events)).version == 0
    # when: version 3 (app B) arrives, then version 2 (A and B), then version 1 (A)
    await broker.publish([(CHANNEL, message(BadgeCause.NOTICE, 3, 3, (second, 2)))])
    newest = await next_event(events)
    await broker.publish([(CHANNEL, message(BadgeCause.NOTICE, 2, 2, (first, 1), (second, 1)))])
    late = await next_event(events)
    await broker.publish([(CHANNEL, message(BadgeCause.NOTICE, 1, 1, (first, 9)))])
    # then
    assert newest == BadgeEventData(BadgeCause.NOTICE, [(second, 2)], 2, 2, 3)
    assert late == BadgeEventData(BadgeCause.NOTICE, [(first, 1)], 3, 3, 3)
    await broker.publish([(CHANNEL, message(BadgeCause.NOTICE, 4, 4, (first, 2)))])
    assert (await next_event(events)).badges == [(first, 2)]
    await events.aclose()


async def test_slow_client_gets_one_merged_event(db):
    """Changes a client has not taken yet merge into one event with every app's latest count."""
    # given
    first, second = await apps(db, "MergeA", "MergeB")
    broker = MemoryBroker()
    events = BadgeStream(db=db, hub=Hub(broker), cid=1001, uid=1034, platform=None).events()
    await next_event(events)
    # when: five changes arrive before the client asks for the next event
    await broker.publish(
        [
            (CHANNEL, message(BadgeCause.NOTICE, 1, 1, (first, 1))),
            (CHANNEL, message(BadgeCause.NOTICE, 2, 2, (second, 1))),
            (CHANNEL, message(BadgeCause.NOTICE, 3, 3, (first, 2))),
            (CHANNEL, message(BadgeCause.OPEN_WORKBENCH, 4, 0)),
            (CHANNEL, message(BadgeCause.READ, 5, 0, (second, 0))),
        ]
    )
    merged = await next_event(events)
    # then
    assert merged == BadgeEventData(BadgeCause.READ, [(first, 2), (second, 0)], 0, 2, 5)
    await events.aclose()


async def test_resync_sends_a_fresh_snapshot(db):
    """After resync (messages may have been lost) the stream reloads and sends a SNAPSHOT."""
    # given
    (app_id,) = await apps(db, "ResyncApp")
    broker = MemoryBroker()
    stream = BadgeStream(db=db, hub=Hub(broker), cid=1001, uid=1034, platform=Platform.PC)
    events = stream.events()
    await next_event(events)
    # a change whose message never reached this stream
    await push_notice(db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1034)])
    # when
    stream.resync()
    # then
    assert await next_event(events) == BadgeEventData(BadgeCause.SNAPSHOT, [(app_id, 1)], 1, 1, 1)
    await events.aclose()


class FloodingDatabase:
    """A Database whose next read delivers ``count`` changes to a stream first, as if they were
    published while the stream was loading its snapshot."""

    def __init__(self, db: Database, count: int, make: Any) -> None:
        self._db = db
        self.count = count
        self.make = make
        self.stream: BadgeStream | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """Flood once, then read through the real database."""
        if self.stream is not None and self.count:
            for index in range(self.count):
                self.stream.deliver(self.make(index))
            self.count = 0
        async with self._db.read() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """Write through the real database."""
        async with self._db.write() as session:
            yield session


async def test_messages_during_load_are_applied(db):
    """Messages arriving while the snapshot loads are applied after it when newer."""
    # given
    (app_id,) = await apps(db, "DuringLoad")
    flooding = FloodingDatabase(
        db, 3, lambda i: change(BadgeCause.NOTICE, i + 1, i + 1, (app_id, i + 1))
    )
    stream = BadgeStream(db=flooding, hub=Hub(MemoryBroker()), cid=1001, uid=1034, platform=None)  # type: ignore[arg-type]
    flooding.stream = stream
    # when
    events = stream.events()
    snapshot = await next_event(events)
    # then
    assert snapshot == BadgeEventData(BadgeCause.SNAPSHOT, [(app_id, 3)], 3, 3, 3)
    await events.aclose()


async def test_too_many_messages_during_load_trigger_a_reload(db):
    """Past the pending bound the stream stops buffering and reloads from the database."""
    # given: the database holds one real notice
    (app_id,) = await apps(db, "FloodApp")
    await push_notice(db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1034)])
    flooding = FloodingDatabase(
        db, 300, lambda i: change(BadgeCause.NOTICE, 1000 + i, 1, (app_id, 1))
    )
    stream = BadgeStream(db=flooding, hub=Hub(MemoryBroker()), cid=1001, uid=1034, platform=None)  # type: ignore[arg-type]
    flooding.stream = stream
    events = stream.events()
    # when
    first = await next_event(events)
    second = await next_event(events)
    # then: the second snapshot is the database's truth, not the flood, at the version
    # stored for it (renumbered: it would otherwise repeat the version the database read)
    assert first.cause is second.cause is BadgeCause.SNAPSHOT
    async with db.read() as session:
        stored = await read_state(session, cid=1001, uid=1034)
    assert second == BadgeEventData(BadgeCause.SNAPSHOT, [(app_id, 1)], 1, 1, stored.version)
    await events.aclose()


async def test_platform_view_ignores_other_platforms_apps(db):
    """An IOS stream counts only IOS apps; a PC-only app's change yields nothing for it."""
    # given
    (everywhere,) = await apps(db, "AllPlaces")
    (pc_only,) = await apps(db, "PcPlace", platforms=(Platform.PC,))
    broker = MemoryBroker()
    events = BadgeStream(db=db, hub=Hub(broker), cid=1001, uid=1034, platform=Platform.IOS).events()
    assert (await next_event(events)).badges == [(everywhere, 0)]
    # when
    await broker.publish([(CHANNEL, message(BadgeCause.NOTICE, 1, 1, (pc_only, 1)))])
    await broker.publish([(CHANNEL, message(BadgeCause.NOTICE, 2, 2, (everywhere, 1)))])
    # then: the first change showed nothing on IOS, so the next event is the second
    assert await next_event(events) == BadgeEventData(BadgeCause.NOTICE, [(everywhere, 1)], 1, 1, 2)
    await events.aclose()


async def test_notice_of_an_app_newer_than_the_snapshot_reloads(db):
    """Without news from the catalogue (another process's change not yet arrived), a notice
    for an app created after the snapshot makes the stream reload: a SNAPSHOT including it."""
    broker = MemoryBroker()
    stream = BadgeStream(db=db, hub=Hub(broker), cid=1001, uid=1034, platform=Platform.PC)
    events = stream.events()
    try:
        assert (await next_event(events)).badges == []
        (app_id,) = await apps(db, "LateComer")
        # when
        await push_notice(db=db, broker=broker, app_id=app_id, recipients=[(1001, 1034)])
        # then
        event = await next_event(events)
        assert (event.cause, event.badges, event.unread_total) == (
            BadgeCause.SNAPSHOT,
            [(app_id, 1)],
            1,
        )
    finally:
        await events.aclose()

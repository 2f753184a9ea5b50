"""The push dispatcher against a real database (issue 4 item 5): several dispatchers send each
row once, a broken gateway loses nothing, and housekeeping bounds the tables. The gateway is
the edge of the world, so here it is a recording stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from imworkbench.brokers import MemoryBroker
from resolvers.apps import AppDraft, PlatformDraft, create_app
from resolvers.identity import Principal, Role
from resolvers.notices import push_notice
from resolvers.push import Dispatcher, PushFailed, PushMessage
from storage import push as store
from storage.db import Database
from storage.models import (
    IdempotencyRecord,
    LaunchMode,
    LegacySignature,
    Platform,
    PushOutbox,
    PushState,
    SsoTicket,
    utcnow,
)

ADMIN = Principal(cid=1, uid=1, account="admin", role=Role.PLATFORM_ADMIN)


class RecordingGateway:
    """Records what it is asked to send; fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0, error: type[Exception] = PushFailed) -> None:
        self.sent: list[PushMessage] = []
        self.calls = 0
        self.failures = failures
        self.error = error

    async def send(self, message: PushMessage) -> None:
        """Record, or fail while failures remain."""
        self.calls += 1
        await asyncio.sleep(0.001)
        if self.failures:
            self.failures -= 1
            raise self.error("refused")
        self.sent.append(message)

    async def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The test database."""
    database = Database(database_url)
    yield database
    await database.dispose()


async def app_with_devices(db: Database, users: int) -> int:
    """An ANDROID app and one device per user (cid 1001, uid 1..users); returns the app id."""
    web = PlatformDraft(launch_mode=LaunchMode.WEB, web_url="https://example.com/")
    created = await create_app(
        db=db,
        principal=ADMIN,
        draft=AppDraft(name="派发应用", identifier="Dispatch", platforms={Platform.ANDROID: web}),
    )
    async with db.write() as session:
        for uid in range(1, users + 1):
            await store.register_device(
                session, push_token=f"token-{uid}", platform=Platform.ANDROID, cid=1001, uid=uid
            )
    assert created.app.id is not None
    return created.app.id


async def states(db: Database) -> dict[PushState, int]:
    """Outbox rows by state."""
    async with db.read() as session:
        return await store.outbox_counts(session)


async def test_two_dispatchers_send_each_row_once(db):
    """Two dispatchers on one database (two processes' worth) share 60 rows without overlap."""
    app_id = await app_with_devices(db, 60)
    await push_notice(
        db=db,
        broker=MemoryBroker(),
        app_id=app_id,
        recipients=[(1001, uid) for uid in range(1, 61)],
        coalesce_s=0,
    )
    first, second = RecordingGateway(), RecordingGateway()
    one, two = Dispatcher(db, first), Dispatcher(db, second)
    while (await states(db))[PushState.PENDING]:
        await asyncio.gather(one.run_once(), two.run_once())
    tokens = [m.push_token for m in first.sent + second.sent]
    assert sorted(tokens) == sorted(f"token-{uid}" for uid in range(1, 61))
    assert (await states(db))[PushState.SENT] == 60


async def test_a_crashing_gateway_loses_nothing(db):
    """An unexpected gateway exception counts as a failed attempt: the row is retried."""
    app_id = await app_with_devices(db, 1)
    await push_notice(
        db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1)], coalesce_s=0
    )
    gateway = RecordingGateway(failures=1, error=RuntimeError)
    dispatcher = Dispatcher(db, gateway, retry_base_s=0.01)
    for _ in range(100):
        await dispatcher.run_once()
        if gateway.sent:
            break
        await asyncio.sleep(0.01)
    assert [m.text for m in gateway.sent] == ["您收到一条来自 “派发应用” 的消息。"]
    assert gateway.calls == 2


async def test_a_lease_left_by_a_dead_process_expires(db):
    """A row claimed by a dispatcher that died is sent once its lease has passed."""
    app_id = await app_with_devices(db, 1)
    await push_notice(
        db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1)], coalesce_s=0
    )
    now = utcnow()
    async with db.write() as session:  # a dispatcher claims, then "dies"
        claimed = await store.claim_due(session, now=now, lease_until=now, limit=10)
    assert len(claimed) == 1
    gateway = RecordingGateway()
    await asyncio.sleep(0.01)
    assert await Dispatcher(db, gateway).run_once() == 1
    assert len(gateway.sent) == 1


async def test_housekeeping_deletes_only_what_expired(db):
    """Expired tickets, signatures, stale idempotency records and old finished pushes go;
    fresh ones stay."""
    app_id = await app_with_devices(db, 1)
    now = utcnow()
    old, fresh = now - timedelta(days=40), now + timedelta(minutes=5)
    async with db.write() as session:
        session.add_all(
            [
                SsoTicket(
                    ticket_hash="a" * 64, app_id=app_id, cid=1, uid=1, account="a", expires_at=old
                ),
                SsoTicket(
                    ticket_hash="b" * 64, app_id=app_id, cid=1, uid=1, account="b", expires_at=fresh
                ),
                LegacySignature(app_id=app_id, sign="c" * 64, expires_at=old),
                LegacySignature(app_id=app_id, sign="d" * 64, expires_at=fresh),
                IdempotencyRecord(app_id=app_id, key="old", result="[]", created_at=old),
                IdempotencyRecord(app_id=app_id, key="new", result="[]", created_at=now),
            ]
        )
        for state, finished in (
            (PushState.SENT, old),
            (PushState.SENT, now),
            (PushState.DEAD, old),
            (PushState.DEAD, now - timedelta(days=8)),
            (PushState.PENDING, None),
        ):
            session.add(
                PushOutbox(
                    cid=1001,
                    uid=1,
                    app_id=app_id,
                    platform="ANDROID",
                    push_token="token-1",
                    text="t",
                    state=state.value,
                    next_attempt_at=fresh,
                    finished_at=finished,
                )
            )
    swept = await Dispatcher(db, RecordingGateway()).sweep()
    assert (swept.tickets, swept.signatures, swept.idempotency, swept.outbox) == (1, 1, 1, 2)
    async with db.read() as session:
        left = (await session.execute(select(func.count()).select_from(PushOutbox))).scalar_one()
    assert left == 3


class SlowGateway(RecordingGateway):
    """Answers after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def send(self, message: PushMessage) -> None:
        """Take ``delay`` seconds, then record."""
        await asyncio.sleep(self.delay)
        await super().send(message)


async def test_a_send_past_its_deadline_is_retried_not_waited_for(db):
    """A gateway slower than the send deadline fails that attempt (to be retried) instead of
    holding the row past its lease."""
    app_id = await app_with_devices(db, 1)
    await push_notice(
        db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1)], coalesce_s=0
    )
    dispatcher = Dispatcher(db, SlowGateway(1.0), send_deadline_s=0.1, retry_base_s=60)
    assert await dispatcher.run_once() == 1
    async with db.read() as session:
        row = (await session.execute(select(PushOutbox))).scalars().one()
    assert (row.state, row.attempts, row.lease_until) == ("PENDING", 1, None)
    assert row.last_error == "no answer within 0.1 s"


async def test_only_the_lease_holder_settles_a_row(db):
    """finish and retry_later change nothing for a dispatcher whose lease was taken over."""
    app_id = await app_with_devices(db, 1)
    await push_notice(
        db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1)], coalesce_s=0
    )
    now = utcnow()
    async with db.write() as session:
        (row,) = await store.claim_due(session, now=now, lease_until=now, limit=10)
    later = now + timedelta(seconds=30)
    async with db.write() as session:  # the lease expired; another dispatcher took the row
        await store.claim_due(session, now=later, lease_until=later, limit=10)
    assert row.id is not None
    async with db.write() as session:
        lost = await store.finish(session, row_id=row.id, lease_until=now, state=PushState.SENT)
        retried = await store.retry_later(
            session, row_id=row.id, lease_until=now, attempts=1, at=later, error="x"
        )
        kept = await store.finish(session, row_id=row.id, lease_until=later, state=PushState.SENT)
    assert (lost, retried, kept) == (False, False, True)


async def test_dead_letters_count_every_attempt(db):
    """A dead row's attempts equal the sends tried."""
    app_id = await app_with_devices(db, 1)
    await push_notice(
        db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1)], coalesce_s=0
    )
    gateway = RecordingGateway(failures=10)
    dispatcher = Dispatcher(db, gateway, max_attempts=3, retry_base_s=0.01)
    for _ in range(200):
        await dispatcher.run_once()
        if (await states(db))[PushState.DEAD]:
            break
        await asyncio.sleep(0.01)
    async with db.read() as session:
        row = (await session.execute(select(PushOutbox))).scalars().one()
    assert (row.state, row.attempts, gateway.calls) == ("DEAD", 3, 3)

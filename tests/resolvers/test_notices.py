"""Group commit of notices (``resolvers.notices.NoticeBatcher``, issue 6): concurrent vendor
calls share transactions without changing what each call means, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from resolvers.errors import AppNotFound, TooManyRecipients
from resolvers.notices import NoticeBatcher
from storage.db import Database
from storage.models import AudienceMode
from tests.factories import RecordingBroker, new_app, unread_of


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The test database, opened directly."""
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def batcher(db: Database) -> AsyncIterator[NoticeBatcher]:
    """A started batcher over the test database and a recording broker."""
    notices = NoticeBatcher(db, RecordingBroker(), coalesce_s=0.5)
    await notices.start()
    yield notices
    await notices.close()


def published(batcher: NoticeBatcher) -> list[tuple[str, dict]]:
    """What the batcher's broker was given."""
    broker = batcher._broker
    assert isinstance(broker, RecordingBroker)
    return broker.messages


async def test_concurrent_calls_share_one_transaction_and_lose_nothing(db, batcher):
    """50 calls made together commit as one batch; every notice counts and each user gets
    one message with the final state."""
    # given
    app_id = await new_app(db, "BatchApp")
    # when
    outcomes = await asyncio.gather(
        *(batcher.push(app_id=app_id, recipients=[(1001, 7), (1001, 8)]) for _ in range(50))
    )
    # then
    assert all(o.applied == [(1001, 7), (1001, 8)] for o in outcomes)
    assert (batcher.batches, batcher.notices) == (1, 50)
    for uid in (7, 8):
        unread, state = await unread_of(db, 1001, uid)
        assert unread == {app_id: 50}
        assert (state.unseen, state.version) == (50, 50)
    assert published(batcher) == [
        ("wb:user:1001:7", {"c": "NOTICE", "v": 50, "s": 50, "b": [[app_id, 50]]}),
        ("wb:user:1001:8", {"c": "NOTICE", "v": 50, "s": 50, "b": [[app_id, 50]]}),
    ]


async def test_an_unknown_or_disabled_app_fails_only_its_own_call(db, batcher):
    """In one batch: an unknown app and a disabled app raise AppNotFound for their calls; the
    other calls are applied, audience skips included."""
    # given
    good = await new_app(db, "GoodApp", audience_mode=AudienceMode.SELECTED, audience_ids=["1001"])
    disabled = await new_app(db, "OffApp")
    async with db.write() as session:
        await session.execute(
            text("UPDATE app SET enabled = false WHERE id = :id"), {"id": disabled}
        )
    # when
    results = await asyncio.gather(
        batcher.push(app_id=good, recipients=[(1001, 1), (2002, 2)]),
        batcher.push(app_id=999_999, recipients=[(1001, 1)]),
        batcher.push(app_id=disabled, recipients=[(1001, 1)]),
        batcher.push(app_id=good, recipients=[(1001, 1)]),
        return_exceptions=True,
    )
    # then
    first, unknown, off, last = results
    assert isinstance(unknown, AppNotFound)
    assert isinstance(off, AppNotFound)
    assert first.applied == [(1001, 1)]
    assert first.skipped == [((2002, 2), "enterprise outside the app's audience")]
    assert last.applied == [(1001, 1)]
    unread, state = await unread_of(db, 1001, 1)
    assert unread == {good: 2}
    assert state.version == 2
    assert (await unread_of(db, 2002, 2))[0] == {}


async def test_notices_of_two_apps_for_one_user_merge_into_one_message(db, batcher):
    """A user's notices of two apps in one batch: one message carrying both badges."""
    # given
    one, two = await new_app(db, "AppOne"), await new_app(db, "AppTwo")
    # when
    await asyncio.gather(
        batcher.push(app_id=one, recipients=[(1001, 5)]),
        batcher.push(app_id=two, recipients=[(1001, 5)]),
        batcher.push(app_id=two, recipients=[(1001, 5)]),
    )
    # then
    assert published(batcher) == [
        ("wb:user:1001:5", {"c": "NOTICE", "v": 3, "s": 3, "b": [[one, 1], [two, 2]]})
    ]


async def test_a_failed_transaction_fails_its_whole_batch_and_writes_nothing(db, batcher):
    """A batch whose transaction fails (a trigger refuses one row) fails every call in it and
    writes none of them; the next batch is applied normally."""
    # given
    app_id = await new_app(db, "FailApp")
    if db.is_sqlite:
        create = (
            "CREATE TRIGGER refuse BEFORE INSERT ON app_badge WHEN NEW.uid = 666 "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
        )
        drops = ["DROP TRIGGER IF EXISTS refuse"]
    else:
        async with db.write() as session:
            await session.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.uid = 666 THEN RAISE EXCEPTION 'refused by test'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
        create = (
            "CREATE TRIGGER refuse BEFORE INSERT ON app_badge "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        drops = ["DROP TRIGGER IF EXISTS refuse ON app_badge", "DROP FUNCTION IF EXISTS refuse()"]
    async with db.write() as session:
        await session.execute(text(create))
    try:
        # when
        results = await asyncio.gather(
            batcher.push(app_id=app_id, recipients=[(1001, 1)]),
            batcher.push(app_id=app_id, recipients=[(1001, 666)]),
            return_exceptions=True,
        )
        after = await batcher.push(app_id=app_id, recipients=[(1001, 1)])
    finally:
        async with db.write() as session:
            for drop in drops:
                await session.execute(text(drop))
    # then
    assert all(isinstance(r, Exception) and "refused by test" in str(r) for r in results)
    assert after.applied == [(1001, 1)]
    unread, state = await unread_of(db, 1001, 1)
    assert unread == {app_id: 1}
    assert state.version == 1
    assert (await unread_of(db, 1001, 666))[0] == {}


async def test_close_applies_what_was_accepted_and_later_calls_still_apply(db):
    """close() finishes queued notices; a call after close() is applied on its own."""
    # given
    app_id = await new_app(db, "CloseApp")
    notices = NoticeBatcher(db, RecordingBroker(), coalesce_s=0.5)
    await notices.start()
    calls = [
        asyncio.ensure_future(notices.push(app_id=app_id, recipients=[(1001, 3)])) for _ in range(5)
    ]
    await asyncio.sleep(0)
    # when
    await notices.close()
    late = await notices.push(app_id=app_id, recipients=[(1001, 3)])
    # then
    assert all(call.done() and call.result().applied == [(1001, 3)] for call in calls)
    assert late.applied == [(1001, 3)]
    assert (await unread_of(db, 1001, 3))[0] == {app_id: 6}


async def test_too_many_recipients_is_refused_before_queueing(db, batcher):
    """Over 10,000 distinct recipients raises TooManyRecipients and queues nothing."""
    # given
    app_id = await new_app(db, "BigApp")
    # when / then
    with pytest.raises(TooManyRecipients):
        await batcher.push(app_id=app_id, recipients=[(1001, uid) for uid in range(1, 10_002)])
    assert (batcher.batches, batcher.notices) == (0, 0)


async def test_batches_stop_at_max_recipients(db):
    """Waiting calls are split into batches of at most max_recipients recipients (a single
    larger call still goes alone)."""
    # given
    app_id = await new_app(db, "SplitApp")
    notices = NoticeBatcher(db, RecordingBroker(), coalesce_s=0.5, max_recipients=4)
    await notices.start()
    try:
        # when
        await asyncio.gather(
            notices.push(app_id=app_id, recipients=[(1001, 1), (1001, 2)]),
            notices.push(app_id=app_id, recipients=[(1001, 3), (1001, 4)]),
            notices.push(app_id=app_id, recipients=[(1001, 5), (1001, 6)]),
            notices.push(app_id=app_id, recipients=[(1001, u) for u in range(10, 16)]),
        )
    finally:
        await notices.close()
    # then
    assert (notices.batches, notices.notices) == (3, 4)

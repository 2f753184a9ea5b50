"""Badge counters are exact under concurrency, on SQLite and on PostgreSQL (SPEC §4)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from imworkbench.brokers import MemoryBroker
from resolvers.badges import open_workbench, read_app
from resolvers.errors import AppNotFound, InvalidInput, TooManyRecipients
from resolvers.identity import Principal, Role
from resolvers.messages import BadgeCause
from resolvers.notices import push_notice
from storage.db import Database
from tests.factories import PUSH, TIMEOUT, RecordingBroker, new_app, unread_of
from tests.factories import create_app as create_app_http

USER = Principal(cid=1001, uid=1034, account="zhang.san", role=Role.USER)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The test database, opened directly."""
    database = Database(database_url)
    yield database
    await database.dispose()


async def test_200_concurrent_notices_count_200(db):
    """200 notices for one user racing each other leave unread and unseen at exactly 200."""
    # given
    app_id = await new_app(db, "RaceApp")
    broker = RecordingBroker()
    # when
    await asyncio.gather(
        *(
            push_notice(db=db, broker=broker, app_id=app_id, recipients=[(1001, 1034)])
            for _ in range(200)
        )
    )
    # then
    unread, state = await unread_of(db, 1001, 1034)
    assert unread == {app_id: 200}
    assert (state.unseen, state.version) == (200, 200)
    assert sorted(m["v"] for _, m in broker.messages) == list(range(1, 201))


async def test_200_concurrent_pushappnotice_calls(http, tokens):
    """200 concurrent legacy pushappnotice calls for one user leave unread at exactly 200."""
    # given
    app = await create_app_http(http, tokens.admin(), identifier="LegacyRace")
    data = {"fromcid": "1001", "fromuid": "1", "appid": app["id"], "users": '["1001,1034"]'}
    # when: 200 writes queue on SQLite's one writer; the last may wait several seconds
    responses = await asyncio.gather(
        *(http.post(PUSH, data=data, timeout=TIMEOUT * 6) for _ in range(200))
    )
    # then
    assert [r.content for r in responses] == [b'{"Result":true}'] * 200
    body = (
        await http.post(
            "/graphql",
            json={"query": "{ workbench(platform: PC) { unreadTotal unseenCount version } }"},
            headers={"Authorization": f"Bearer {tokens.user()}"},
        )
    ).json()
    assert body == {"data": {"workbench": {"unreadTotal": 200, "unseenCount": 200, "version": 200}}}


async def test_mixed_race_loses_no_update(db):
    """Notices, reads and opens racing on one user: every published state follows from the last."""
    # given
    first, second = await new_app(db, "MixA"), await new_app(db, "MixB")
    broker = RecordingBroker()
    rng = random.Random(7)
    operations = []
    for _ in range(120):
        app_id = rng.choice((first, second))
        kind = rng.choice(("notice", "notice", "read", "open_app", "open_workbench"))
        if kind == "notice":
            operations.append(
                push_notice(db=db, broker=broker, app_id=app_id, recipients=[(1001, 1034)])
            )
        elif kind == "read":
            operations.append(
                read_app(db=db, broker=broker, cid=1001, uid=1034, app_id=app_id, count=1)
            )
        elif kind == "open_app":
            operations.append(
                read_app(
                    db=db,
                    broker=broker,
                    cid=1001,
                    uid=1034,
                    app_id=app_id,
                    count=None,
                    cause=BadgeCause.OPEN_APP,
                )
            )
        else:
            operations.append(open_workbench(db=db, broker=broker, principal=USER))
    # when
    await asyncio.gather(*operations)
    # then: replaying the published messages in version order reproduces each step exactly
    messages = sorted((m for _, m in broker.messages), key=lambda m: m["v"])
    assert [m["v"] for m in messages] == list(range(1, len(messages) + 1))
    unread = {first: 0, second: 0}
    unseen = 0
    for message in messages:
        cause = message["c"]
        if cause == "NOTICE":
            ((app_id, count),) = message["b"]
            assert count == unread[app_id] + 1
            assert message["s"] == unseen + 1
        elif cause == "READ":
            ((app_id, count),) = message["b"]
            assert count == unread[app_id] - 1
            assert message["s"] == min(unseen, sum(unread.values()) - 1)
        elif cause == "OPEN_APP":
            ((app_id, count),) = message["b"]
            assert count == 0
            assert message["s"] == min(unseen, sum(unread.values()) - unread[app_id])
        else:
            assert message["s"] == 0
        for app_id, count in message["b"]:
            unread[app_id] = count
        unseen = message["s"]
        assert 0 <= unseen <= sum(unread.values())
    stored, state = await unread_of(db, 1001, 1034)
    assert {k: v for k, v in unread.items() if v} == stored
    assert (state.unseen, state.version) == (unseen, len(messages))


async def test_overlapping_multi_recipient_notices_do_not_deadlock(db):
    """Concurrent notices to overlapping recipient lists in shuffled order all apply exactly."""
    # given
    app_id = await new_app(db, "FanApp")
    broker = RecordingBroker()
    pool = [(1001, uid) for uid in range(1, 301)]
    rng = random.Random(11)
    batches = [rng.sample(pool, 200) for _ in range(12)]
    # when
    await asyncio.gather(
        *(push_notice(db=db, broker=broker, app_id=app_id, recipients=batch) for batch in batches)
    )
    # then
    expected = {user: sum(user in batch for batch in batches) for user in pool}
    for user in rng.sample(pool, 25):
        unread, state = await unread_of(db, *user)
        assert unread.get(app_id, 0) == expected[user]
        assert state.unseen == expected[user] == state.version


async def test_duplicates_in_one_notice_count_once(db):
    """A recipient named three times in one notice gets one unread."""
    app_id = await new_app(db, "DupApp")
    outcome = await push_notice(
        db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1034)] * 3 + [(1001, 1078)]
    )
    assert outcome.applied == [(1001, 1034), (1001, 1078)]
    assert (await unread_of(db, 1001, 1034))[0] == {app_id: 1}


async def test_audience_outsiders_are_skipped_with_reason(db):
    """Recipients outside a SELECTED audience are skipped and reported; the others count."""
    from storage.models import AudienceMode

    app_id = await new_app(db, "OnlyA", audience_mode=AudienceMode.SELECTED, audience_ids=["1001"])
    outcome = await push_notice(
        db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1), (1002, 1)]
    )
    assert outcome.applied == [(1001, 1)]
    assert outcome.skipped == [((1002, 1), "enterprise outside the app's audience")]
    assert (await unread_of(db, 1002, 1))[0] == {}


async def test_more_than_10000_recipients_is_refused_before_writing(db):
    """10,001 distinct recipients raise TooManyRecipients and write nothing."""
    app_id = await new_app(db, "BigApp")
    with pytest.raises(TooManyRecipients):
        await push_notice(
            db=db,
            broker=MemoryBroker(),
            app_id=app_id,
            recipients=[(1001, u) for u in range(10_001)],
        )
    assert (await unread_of(db, 1001, 1))[1].version == 0


async def test_10000_recipients_apply_in_one_transaction(db):
    """Exactly 10,000 recipients (ten statement chunks) all get their notice."""
    app_id = await new_app(db, "TenK")
    outcome = await push_notice(
        db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, u) for u in range(10_000)]
    )
    assert len(outcome.applied) == 10_000
    assert (await unread_of(db, 1001, 9_999))[0] == {app_id: 1}


async def test_unknown_app_is_refused(db):
    """A notice or read for an app that does not exist raises AppNotFound."""
    with pytest.raises(AppNotFound):
        await push_notice(db=db, broker=MemoryBroker(), app_id=999, recipients=[(1, 1)])
    with pytest.raises(AppNotFound):
        await read_app(db=db, broker=MemoryBroker(), cid=1, uid=1, app_id=999, count=1)


async def test_negative_read_count_is_refused(db):
    """A negative count raises InvalidInput and changes nothing."""
    app_id = await new_app(db, "NegApp")
    with pytest.raises(InvalidInput):
        await read_app(db=db, broker=MemoryBroker(), cid=1, uid=1, app_id=app_id, count=-1)


async def test_no_change_publishes_nothing_and_keeps_version(db):
    """Reading an app with no unread, or opening a clear workbench, publishes nothing."""
    app_id = await new_app(db, "QuietApp")
    broker = RecordingBroker()
    event = await read_app(db=db, broker=broker, cid=1001, uid=1034, app_id=app_id, count=3)
    opened = await open_workbench(db=db, broker=broker, principal=USER)
    assert broker.messages == []
    assert (event.version, opened.version, opened.unseen_count) == (0, 0, 0)


async def test_read_count_beyond_32_bits_clears(db):
    """A read count of 3,000,000,000 clears the badge on both databases (no int32 overflow)."""
    app_id = await new_app(db, "HugeRead")
    await push_notice(db=db, broker=MemoryBroker(), app_id=app_id, recipients=[(1001, 1034)])
    event = await read_app(
        db=db, broker=MemoryBroker(), cid=1001, uid=1034, app_id=app_id, count=3_000_000_000
    )
    assert (event.badges, event.unread_total) == ([(app_id, 0)], 0)


async def test_a_first_read_racing_a_first_notice_answers_a_state_that_existed(db):
    """Each user's first markAppRead / workbench open racing that user's first notice answers
    one of the states the user's committed sequence holds (issue 11 item 7: on PostgreSQL the
    lock found no row and {version 0, unread 1} was answered, a state that never existed)."""
    # given
    app_id = await new_app(db, "FirstRace")
    broker = MemoryBroker()
    users = range(1, 301)

    async def race(uid: int) -> tuple[tuple[int, int, int, tuple], ...]:
        principal = Principal(cid=1001, uid=uid, account=f"u{uid}", role=Role.USER)
        reader = (
            read_app(db=db, broker=broker, cid=1001, uid=uid, app_id=app_id, count=1)
            if uid % 2
            else open_workbench(db=db, broker=broker, principal=principal)
        )
        _, event = await asyncio.gather(
            push_notice(db=db, broker=broker, app_id=app_id, recipients=[(1001, uid)]), reader
        )
        return (event.version, event.unseen_count, event.unread_total, tuple(event.badges))

    # when
    answers = await asyncio.gather(*(race(uid) for uid in users))
    # then: the read came first (nothing yet) or second (after the notice, then its own change)
    for uid, answer in zip(users, answers, strict=True):
        if uid % 2:
            assert answer in ((0, 0, 0, ((app_id, 0),)), (2, 0, 0, ((app_id, 0),))), (uid, answer)
        else:
            assert answer in ((0, 0, 0, ()), (2, 0, 1, ())), (uid, answer)

"""Badges: reads and opens of a user's badges, and the shapes notices share (SPEC §4).

Changes run in one ``Database.write()`` transaction each; their absolute results are published
per user after commit, as a ``resolvers.messages.BadgeChange`` on the user's channel. The live
stream that turns those messages into events is ``resolvers.streams.badges``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.broker import Broker
from resolvers.errors import AppNotFound, InvalidInput, TooManyRecipients
from resolvers.identity import Principal
from resolvers.messages import BadgeCause, BadgeChange, user_channel
from resolvers.workbench import not_on_workbench
from storage import badges as store
from storage import catalogue
from storage.db import Database

MAX_RECIPIENTS = 10_000


@dataclass(frozen=True, slots=True)
class BadgeEventData:
    """A user's badge state after an event, as absolute values.

    ``badges``: ``(app_id, unread)`` pairs this event sets (every visible app for SNAPSHOT);
    ``unseen_count``: the workbench badge shown, already capped at ``unread_total``;
    ``version``: per user, strictly increasing with every change.
    """

    cause: BadgeCause
    badges: list[tuple[int, int]]
    unseen_count: int
    unread_total: int
    version: int


@dataclass(frozen=True, slots=True)
class NoticeOutcome:
    """Result of one notice: recipients counted, and those skipped with the reason."""

    app_id: int
    applied: list[tuple[int, int]]
    skipped: list[tuple[tuple[int, int], str]] = field(default_factory=list)


def distinct_recipients(recipients: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The distinct recipients in ``(cid, uid)`` order; raises ``TooManyRecipients`` past
    ``MAX_RECIPIENTS`` (SPEC §6)."""
    users = sorted(set(recipients))
    if len(users) > MAX_RECIPIENTS:
        raise TooManyRecipients(len(users), MAX_RECIPIENTS)
    return users


async def _event(
    session: AsyncSession,
    *,
    cause: BadgeCause,
    state: store.UserState | None,
    cid: int,
    uid: int,
    app_ids: tuple[int, ...],
) -> BadgeEventData:
    # The user's state as every device shows it: the apps' counts, over all visible apps.
    # ``state`` is the user's locked state row; ``None`` when the user had none when it was
    # looked for, which means no badges at all (every badge write creates the row first).
    # Nothing is read for such a user: on PostgreSQL, whose statements each see the latest
    # commits, the badges of a first notice committed meanwhile would be read with the state
    # from before it, a state that never existed (issue 11 item 7).
    visible = await catalogue.visible_app_ids(session, cid=cid, uid=uid, platform=None)
    if state is None:
        state = store.UserState(cid, uid, 0, 0)
        unread: dict[int, int] = {}
    else:
        unread = await store.read_unread(session, cid=cid, uid=uid)
    total = sum(count for app_id, count in unread.items() if app_id in visible)
    return BadgeEventData(
        cause=cause,
        badges=[(a, unread.get(a, 0)) for a in app_ids if a in visible],
        unseen_count=min(state.unseen, total),
        unread_total=total,
        version=state.version,
    )


async def read_app(
    *,
    db: Database,
    broker: Broker,
    cid: int,
    uid: int,
    app_id: int,
    count: int | None,
    cause: BadgeCause = BadgeCause.READ,
    require_visible: bool = False,
) -> BadgeEventData:
    """Lower user ``(cid, uid)``'s unread count of app ``app_id`` (SPEC §4).

    ``count=None`` clears it (OPEN_APP); otherwise ``unread = max(0, unread - count)``, and
    ``unseen = min(unseen, total unread)``. ``count`` must be >= 0; 0 changes nothing. Raises
    ``AppNotFound`` for an unknown or disabled app, or, with ``require_visible``, one not on the
    user's workbench (``AppRemoved`` when the user removed it); ``InvalidInput`` for a negative
    count. Publishes only a real change, and
    returns the user's resulting state.
    """
    event = await _read(
        db=db,
        broker=broker,
        cid=cid,
        uid=uid,
        app_id=app_id,
        count=count,
        cause=cause,
        require_visible=require_visible,
        describe=True,
    )
    assert event is not None
    return event


async def record_read(
    *, db: Database, broker: Broker, cid: int, uid: int, app_id: int, count: int | None
) -> None:
    """``read_app`` for callers that answer without the resulting state (the legacy setnum):
    the same change and errors, without the two reads that describe the state."""
    await _read(
        db=db,
        broker=broker,
        cid=cid,
        uid=uid,
        app_id=app_id,
        count=count,
        cause=BadgeCause.READ,
        require_visible=False,
        describe=False,
    )


async def _read(
    *,
    db: Database,
    broker: Broker,
    cid: int,
    uid: int,
    app_id: int,
    count: int | None,
    cause: BadgeCause,
    require_visible: bool,
    describe: bool,
) -> BadgeEventData | None:
    if count is not None and count < 0:
        raise InvalidInput.single("count", "must not be negative", "NEGATIVE_COUNT")
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None or not app.enabled:
            raise AppNotFound(app_id)
        if require_visible and not await catalogue.is_visible(
            session, app_id=app_id, cid=cid, uid=uid, platform=None
        ):
            raise await not_on_workbench(session, app_id=app_id, cid=cid, uid=uid, platform=None)
        # Locked first: while held, no other change of the user commits (storage.badges).
        state = await store.lock_state(session, cid=cid, uid=uid)
        changed = None
        if state is not None:
            changed = await store.decrease_unread(
                session, cid=cid, uid=uid, app_id=app_id, by=count
            )
        event = None
        if describe:
            after = changed[0] if changed else state
            event = await _event(
                session, cause=cause, state=after, cid=cid, uid=uid, app_ids=(app_id,)
            )
    if changed is not None:
        after, unread = changed
        message = BadgeChange(cause, after.version, after.unseen, ((app_id, unread),))
        await broker.publish(((user_channel(cid, uid), message.encode()),))
    return event


async def open_workbench(*, db: Database, broker: Broker, principal: Principal) -> BadgeEventData:
    """The user opened the workbench: ``unseenCount = 0``, app badges unchanged (SPEC §4)."""
    cid, uid = principal.cid, principal.uid
    async with db.write() as session:
        state = await store.lock_state(session, cid=cid, uid=uid)  # as in ``_read``
        changed = None if state is None else await store.clear_unseen(session, cid=cid, uid=uid)
        event = await _event(
            session,
            cause=BadgeCause.OPEN_WORKBENCH,
            state=changed or state,
            cid=cid,
            uid=uid,
            app_ids=(),
        )
    if changed is not None:
        message = BadgeChange(BadgeCause.OPEN_WORKBENCH, changed.version, changed.unseen, ())
        await broker.publish(((user_channel(cid, uid), message.encode()),))
    return event

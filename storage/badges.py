"""Badge counters: single atomic statements, exact under concurrency (SPEC §4).

Every function runs inside a ``Database.write()`` transaction and returns the absolute values it
wrote, for publishing after commit. Rules:

- A change for user U first writes or locks U's ``user_badge_state`` row (``INSERT ... ON
  CONFLICT DO UPDATE`` or ``SELECT ... FOR UPDATE``); every later statement of the transaction
  therefore sees U's latest committed badges, and ``version`` orders U's changes. On SQLite the
  whole transaction already holds the database's write lock (``BEGIN IMMEDIATE``).
- Multi-user statements take users in ascending ``(cid, uid)`` order, so two notices never wait
  on each other in a cycle (PostgreSQL deadlock avoidance).
- Increments are ``x = x + 1`` in SQL, never read-modify-write in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, case, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.dialect import least, upsert_insert

# Unread counts are 32-bit columns.
MAX_COUNT = 2**31 - 1
# Rows per multi-row statement: 4 bind parameters each stays far below the 32,766 limit of
# SQLite and asyncpg.


@dataclass(frozen=True, slots=True)
class UserState:
    """A user's workbench badge state after a change: ``unseen`` count and ``version``."""

    cid: int
    uid: int
    unseen: int
    version: int


async def add_notices(
    session: AsyncSession, counts: Mapping[tuple[int, int, int], int]
) -> tuple[dict[tuple[int, int], UserState], dict[tuple[int, int, int], int]]:
    """Count ``n`` notices of app ``app_id`` for user ``(cid, uid)``, for every
    ``(cid, uid, app_id): n`` of ``counts`` (``n >= 1``; SPEC §4 row 1, once per notice).

    Per user: ``unseen += `` the user's notices, ``version += `` as many (one version per
    notice, as if they had been applied one by one); per app badge ``unread += n``. Rows are
    created when absent. Counts stop at ``MAX_COUNT`` (a 32-bit column, and GraphQL's ``Int``)
    instead of overflowing. Rows are written in ``(cid, uid[, app_id])`` order, so concurrent
    writers on PostgreSQL lock them in one order. Returns the users' new states and the
    badges' new counts.
    """
    per_user: dict[tuple[int, int], int] = {}
    for (cid, uid, _app_id), n in counts.items():
        per_user[(cid, uid)] = per_user.get((cid, uid), 0) + n
    # One statement each, executed with a list of rows: SQLAlchemy's "insertmanyvalues" sends
    # them as multi-row VALUES pages from one cached compilation, instead of compiling a new
    # statement for every row count.
    state_insert = upsert_insert(session, t.user_badge_state)
    added = state_insert.excluded.unseen_count
    state_stmt = state_insert.on_conflict_do_update(
        index_elements=["cid", "uid"],
        set_={
            # unseen + added, capped; compared as unseen >= MAX - added so that the sum is
            # never computed when it would overflow PostgreSQL's integer.
            "unseen_count": case(
                (t.user_badge_state.c.unseen_count >= MAX_COUNT - added, MAX_COUNT),
                else_=t.user_badge_state.c.unseen_count + added,
            ),
            "version": t.user_badge_state.c.version + state_insert.excluded.version,
        },
    ).returning(
        t.user_badge_state.c.cid,
        t.user_badge_state.c.uid,
        t.user_badge_state.c.unseen_count,
        t.user_badge_state.c.version,
    )
    state_rows = [
        {"cid": c, "uid": u, "unseen_count": n, "version": n}
        for (c, u), n in sorted(per_user.items())
    ]
    states = {
        (cid, uid): UserState(cid, uid, unseen, version)
        for cid, uid, unseen, version in (await session.execute(state_stmt, state_rows)).all()
    }
    badge_insert = upsert_insert(session, t.app_badge)
    added = badge_insert.excluded.unread
    badge_stmt = badge_insert.on_conflict_do_update(
        index_elements=["cid", "uid", "app_id"],
        set_={
            "unread": case(
                (t.app_badge.c.unread >= MAX_COUNT - added, MAX_COUNT),
                else_=t.app_badge.c.unread + added,
            )
        },
    ).returning(t.app_badge.c.cid, t.app_badge.c.uid, t.app_badge.c.app_id, t.app_badge.c.unread)
    badge_rows = [
        {"cid": c, "uid": u, "app_id": a, "unread": n} for (c, u, a), n in sorted(counts.items())
    ]
    unread = {
        (cid, uid, app_id): count
        for cid, uid, app_id, count in (await session.execute(badge_stmt, badge_rows)).all()
    }
    return states, unread


async def lock_state(session: AsyncSession, *, cid: int, uid: int) -> UserState | None:
    """Lock and return the user's state row; ``None`` when the user has never had a badge."""
    stmt = (
        select(t.user_badge_state.c.unseen_count, t.user_badge_state.c.version)
        .where(t.user_badge_state.c.cid == cid, t.user_badge_state.c.uid == uid)
        .with_for_update()
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    return UserState(cid, uid, row.unseen_count, row.version)


async def decrease_unread(
    session: AsyncSession, *, cid: int, uid: int, app_id: int, by: int | None
) -> tuple[UserState, int] | None:
    """Lower one app's ``unread`` by ``by`` (``None``: to zero), never below zero (SPEC §4).

    Then ``unseen = min(unseen, total unread)`` and ``version += 1``. Returns the new state and
    the app's new unread count, or ``None`` when nothing changed (no badge, already zero, or
    ``by == 0``); an unchanged state keeps its version.
    """
    if by == 0:
        return None
    if by is not None and by >= MAX_COUNT:
        by = None  # at least any stored count: clears it (and stays a valid 32-bit parameter)
    state = await lock_state(session, cid=cid, uid=uid)
    if state is None:
        return None
    new_unread = (
        0 if by is None else case((t.app_badge.c.unread > by, t.app_badge.c.unread - by), else_=0)
    )
    stmt = (
        update(t.app_badge)
        .where(
            t.app_badge.c.cid == cid,
            t.app_badge.c.uid == uid,
            t.app_badge.c.app_id == app_id,
            t.app_badge.c.unread > 0,
        )
        .values(unread=new_unread)
        .returning(t.app_badge.c.unread)
    )
    unread = (await session.execute(stmt)).scalar_one_or_none()
    if unread is None:
        return None
    total = (
        select(func.coalesce(func.sum(t.app_badge.c.unread), 0))
        .where(t.app_badge.c.cid == cid, t.app_badge.c.uid == uid)
        .scalar_subquery()
    )
    state_stmt = (
        update(t.user_badge_state)
        .where(t.user_badge_state.c.cid == cid, t.user_badge_state.c.uid == uid)
        .values(
            unseen_count=case(
                (t.user_badge_state.c.unseen_count > total, total),
                else_=t.user_badge_state.c.unseen_count,
            ),
            version=t.user_badge_state.c.version + 1,
        )
        .returning(t.user_badge_state.c.unseen_count, t.user_badge_state.c.version)
    )
    row = (await session.execute(state_stmt)).one()
    return UserState(cid, uid, row.unseen_count, row.version), unread


async def clear_unseen(session: AsyncSession, *, cid: int, uid: int) -> UserState | None:
    """Set the workbench badge to zero (SPEC §4 "opens the workbench"); ``None`` if already 0."""
    state = await lock_state(session, cid=cid, uid=uid)
    if state is None or state.unseen == 0:
        return None
    stmt = (
        update(t.user_badge_state)
        .where(t.user_badge_state.c.cid == cid, t.user_badge_state.c.uid == uid)
        .values(unseen_count=0, version=t.user_badge_state.c.version + 1)
        .returning(t.user_badge_state.c.version)
    )
    version = (await session.execute(stmt)).scalar_one()
    return UserState(cid, uid, 0, version)


async def read_state(session: AsyncSession, *, cid: int, uid: int) -> UserState:
    """The user's current state without locking; zeros at version 0 for a user with none."""
    stmt = select(t.user_badge_state.c.unseen_count, t.user_badge_state.c.version).where(
        t.user_badge_state.c.cid == cid, t.user_badge_state.c.uid == uid
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return UserState(cid, uid, 0, 0)
    return UserState(cid, uid, row.unseen_count, row.version)


async def read_unread(session: AsyncSession, *, cid: int, uid: int) -> dict[int, int]:
    """Every non-zero app badge of the user, as ``{app_id: unread}``."""
    stmt = select(t.app_badge.c.app_id, t.app_badge.c.unread).where(
        t.app_badge.c.cid == cid, t.app_badge.c.uid == uid, t.app_badge.c.unread > 0
    )
    return {app_id: count for app_id, count in (await session.execute(stmt)).all()}


async def set_unread(
    session: AsyncSession, *, cid: int, uid: int, app_id: int, unread: int
) -> tuple[UserState, int, int] | None:
    """Set one app's ``unread`` to an absolute count (SPEC §8 ``setAppBadge``, cause SET).

    A rise counts as that many new messages (``unseen += rise``, capped at ``MAX_COUNT``); a
    fall applies the rule of every decrease (``unseen = min(unseen, total unread)``); then
    ``version += 1``. Returns the new state, the app's new count and its count before, or
    ``None`` when the count already was ``unread`` (nothing written, version kept).
    """
    await session.execute(
        upsert_insert(session, t.user_badge_state)
        .values(cid=cid, uid=uid, unseen_count=0, version=0)
        .on_conflict_do_nothing(index_elements=["cid", "uid"])
    )
    state = await lock_state(session, cid=cid, uid=uid)
    assert state is not None  # just ensured
    before = (
        await session.execute(
            select(t.app_badge.c.unread).where(
                t.app_badge.c.cid == cid,
                t.app_badge.c.uid == uid,
                t.app_badge.c.app_id == app_id,
            )
        )
    ).scalar_one_or_none() or 0
    if before == unread:
        return None
    await session.execute(
        upsert_insert(session, t.app_badge)
        .values(cid=cid, uid=uid, app_id=app_id, unread=unread)
        .on_conflict_do_update(index_elements=["cid", "uid", "app_id"], set_={"unread": unread})
    )
    if unread > before:
        # In 64 bits, then capped: the sum of two 32-bit counts may not fit 32 bits.
        raised = cast(t.user_badge_state.c.unseen_count, BigInteger) + (unread - before)
        unseen: Any = least(session, raised, MAX_COUNT)
    else:
        total = (
            select(func.coalesce(func.sum(t.app_badge.c.unread), 0))
            .where(t.app_badge.c.cid == cid, t.app_badge.c.uid == uid)
            .scalar_subquery()
        )
        unseen = case(
            (t.user_badge_state.c.unseen_count > total, total),
            else_=t.user_badge_state.c.unseen_count,
        )
    row = (
        await session.execute(
            update(t.user_badge_state)
            .where(t.user_badge_state.c.cid == cid, t.user_badge_state.c.uid == uid)
            .values(unseen_count=unseen, version=t.user_badge_state.c.version + 1)
            .returning(t.user_badge_state.c.unseen_count, t.user_badge_state.c.version)
        )
    ).one()
    return UserState(cid, uid, row.unseen_count, row.version), unread, before

"""Statements over the versions of vendors' absolute badges (``vendor_badge_version``; SPEC §8
``setAppBadge``): per app and user, the last version applied. A version is read locked, so
concurrent calls for one app and user compare and set it one after the other."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.dialect import upsert_insert

NO_VERSION = -1


async def lock_version(session: AsyncSession, *, app_id: int, cid: int, uid: int) -> int:
    """The last version applied for app ``app_id`` and user ``(cid, uid)`` (``NO_VERSION``
    when none was), its row created when absent and locked until the transaction ends
    (``FOR UPDATE`` on PostgreSQL)."""
    await session.execute(
        upsert_insert(session, t.vendor_badge_version)
        .values(app_id=app_id, cid=cid, uid=uid, version=NO_VERSION)
        .on_conflict_do_nothing(index_elements=["app_id", "cid", "uid"])
    )
    stmt = (
        select(t.vendor_badge_version.c.version)
        .where(
            t.vendor_badge_version.c.app_id == app_id,
            t.vendor_badge_version.c.cid == cid,
            t.vendor_badge_version.c.uid == uid,
        )
        .with_for_update()
    )
    return int((await session.execute(stmt)).scalar_one())


async def set_version(
    session: AsyncSession, *, app_id: int, cid: int, uid: int, version: int
) -> None:
    """Record ``version`` as the last applied for app ``app_id`` and user ``(cid, uid)`` (the
    row ``lock_version`` made sure of)."""
    await session.execute(
        update(t.vendor_badge_version)
        .where(
            t.vendor_badge_version.c.app_id == app_id,
            t.vendor_badge_version.c.cid == cid,
            t.vendor_badge_version.c.uid == uid,
        )
        .values(version=version)
    )

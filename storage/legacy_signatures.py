"""Statements over the signatures already accepted in signed legacy mode (``legacy_signature``;
SPEC §8): a ``sign`` is kept until its timestamp has left the window, so a replay is refused.
A call with a ``nonce`` is recorded by a hash of its nonce instead (``resolvers.vendor``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.dialect import upsert_insert


async def record_signature(
    session: AsyncSession, *, app_id: int, sign: str, now: datetime, expires_at: datetime
) -> bool:
    """Record ``sign`` for app ``app_id`` until ``expires_at``: ``True`` when it is new,
    ``False`` when it is already recorded (a replay). Signatures of any app that expired before
    ``now`` are deleted first."""
    await session.execute(delete(t.legacy_signature).where(t.legacy_signature.c.expires_at < now))
    stmt = (
        upsert_insert(session, t.legacy_signature)
        .values(app_id=app_id, sign=sign, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["app_id", "sign"])
        .returning(t.legacy_signature.c.sign)
    )
    return (await session.execute(stmt)).first() is not None


async def forget_signature(session: AsyncSession, *, app_id: int, sign: str) -> None:
    """Delete the record of ``sign`` for app ``app_id`` (none is fine): its call changed
    nothing, so the same ``sign`` or nonce may be accepted again."""
    await session.execute(
        delete(t.legacy_signature).where(
            t.legacy_signature.c.app_id == app_id, t.legacy_signature.c.sign == sign
        )
    )

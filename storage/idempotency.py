"""Statements over idempotency keys of vendor calls (``idempotency_record``; SPEC §8): the first
result of a call with a key is stored and replayed while the key is fresh.

A key is claimed by inserting its row (``ON CONFLICT DO NOTHING``) in the transaction that does
the call's work, so two concurrent calls with one key cannot both do it: on PostgreSQL the second
waits on the first's row lock and then reads its committed result; on SQLite writers are
serialised (``storage.db``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.dialect import is_postgresql, upsert_insert

UNANSWERED = "[]"


async def claim_key(
    session: AsyncSession, *, app_id: int, key: str, now: datetime, fresh_after: datetime
) -> str | None:
    """Claim ``key`` for app ``app_id`` at ``now``: ``None`` when this call is the first (its
    row is inserted with the result ``UNANSWERED``; store the real one with ``store_result`` in
    the same transaction), else the stored result of the call that claimed it. A row created
    before ``fresh_after`` is stale: deleted first, so the key can be claimed again."""
    await session.execute(
        delete(t.idempotency_record).where(
            t.idempotency_record.c.app_id == app_id,
            t.idempotency_record.c.key == key,
            t.idempotency_record.c.created_at < fresh_after,
        )
    )
    inserted = (
        await session.execute(
            upsert_insert(session, t.idempotency_record)
            .values(app_id=app_id, key=key, result=UNANSWERED, created_at=now)
            .on_conflict_do_nothing(index_elements=["app_id", "key"])
            .returning(t.idempotency_record.c.key)
        )
    ).first()
    if inserted is not None:
        return None
    stmt = select(t.idempotency_record.c.result).where(
        t.idempotency_record.c.app_id == app_id, t.idempotency_record.c.key == key
    )
    if is_postgresql(session):
        stmt = stmt.with_for_update()  # waits for a concurrent first call to commit
    return str((await session.execute(stmt)).scalar_one())


async def store_result(session: AsyncSession, *, app_id: int, key: str, result: str) -> None:
    """Record ``result`` (text, JSON by convention) as the answer of the call that claimed
    ``key``."""
    await session.execute(
        update(t.idempotency_record)
        .where(t.idempotency_record.c.app_id == app_id, t.idempotency_record.c.key == key)
        .values(result=result)
    )

"""Devices and the push outbox (SPEC §9): statements for registering devices, enqueuing pushes
in a notice's transaction, and claiming due rows with a lease.

Claiming is one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING``: on PostgreSQL the
inner select takes ``FOR UPDATE SKIP LOCKED``, so dispatchers in several processes never claim
the same row; on SQLite the whole transaction holds the write lock. A claimed row carries
``lease_until``; if its dispatcher dies, the row is due again once the lease has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.dialect import upsert_insert
from storage.models import Platform, PushOutbox, PushState, utcnow

MOBILE_VALUES = (Platform.ANDROID.value, Platform.IOS.value)
CHUNK_USERS = 500


async def register_device(
    session: AsyncSession, *, push_token: str, platform: Platform, cid: int, uid: int
) -> None:
    """Register (or move to this user and platform) the device with ``push_token``. A token
    that moves to another user (a phone changing hands) takes none of the previous owner's
    unsent pushes with it: they are deleted."""
    now = utcnow()
    await session.execute(
        delete(t.push_outbox).where(
            t.push_outbox.c.push_token == push_token,
            t.push_outbox.c.state == PushState.PENDING.value,
            (t.push_outbox.c.cid != cid) | (t.push_outbox.c.uid != uid),
        )
    )
    stmt = upsert_insert(session, t.device).values(
        push_token=push_token,
        platform=platform.value,
        cid=cid,
        uid=uid,
        created_at=now,
        updated_at=now,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["push_token"],
            set_={"platform": platform.value, "cid": cid, "uid": uid, "updated_at": now},
        )
    )


async def unregister_device(session: AsyncSession, *, push_token: str, cid: int, uid: int) -> bool:
    """Forget the user's device with ``push_token`` and its unsent pushes; ``False`` when the
    user has no such device (another user's token is left alone)."""
    stmt = (
        delete(t.device)
        .where(t.device.c.push_token == push_token, t.device.c.cid == cid, t.device.c.uid == uid)
        .returning(t.device.c.push_token)
    )
    if (await session.execute(stmt)).first() is None:
        return False
    await session.execute(
        delete(t.push_outbox).where(
            t.push_outbox.c.push_token == push_token,
            t.push_outbox.c.state == PushState.PENDING.value,
        )
    )
    return True


async def devices_of(
    session: AsyncSession, users: Sequence[tuple[int, int]], *, app_id: int
) -> list[tuple[str, Platform, int, int]]:
    """``(push_token, platform, cid, uid)`` of the given users' mobile devices on the
    platforms app ``app_id`` has settings for (one query per ``CHUNK_USERS`` users)."""
    found: list[tuple[str, Platform, int, int]] = []
    on_app = select(t.app_platform.c.platform).where(t.app_platform.c.app_id == app_id)
    columns = (t.device.c.push_token, t.device.c.platform, t.device.c.cid, t.device.c.uid)
    for start in range(0, len(users), CHUNK_USERS):
        chunk = list(users[start : start + CHUNK_USERS])
        stmt = select(*columns).where(
            tuple_(t.device.c.cid, t.device.c.uid).in_(chunk),
            t.device.c.platform.in_(MOBILE_VALUES),
            t.device.c.platform.in_(on_app),
        )
        found += [(k, Platform(p), c, u) for k, p, c, u in (await session.execute(stmt)).all()]
    return found


async def enqueue(
    session: AsyncSession,
    *,
    app_id: int,
    text: str,
    devices: Sequence[tuple[str, Platform, int, int]],
    not_before: datetime,
) -> int:
    """Add one pending push per device for app ``app_id``, due at ``not_before``, except for
    devices that already have one waiting for this app and not yet claimed: that one will
    carry the latest badge when it leaves (bursts coalesce). Returns how many rows were added.
    """
    if not devices:
        return 0
    waiting: set[str] = set()
    tokens = [d[0] for d in devices]
    for start in range(0, len(tokens), CHUNK_USERS):
        stmt = select(t.push_outbox.c.push_token).where(
            t.push_outbox.c.push_token.in_(tokens[start : start + CHUNK_USERS]),
            t.push_outbox.c.app_id == app_id,
            t.push_outbox.c.state == PushState.PENDING.value,
            t.push_outbox.c.lease_until.is_(None),
        )
        waiting.update((await session.execute(stmt)).scalars().all())
    rows = [
        {
            "cid": cid,
            "uid": uid,
            "app_id": app_id,
            "platform": platform.value,
            "push_token": token,
            "text": text,
            "state": PushState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": not_before,
            "created_at": utcnow(),
        }
        for token, platform, cid, uid in devices
        if token not in waiting
    ]
    for start in range(0, len(rows), CHUNK_USERS):
        await session.execute(t.push_outbox.insert(), rows[start : start + CHUNK_USERS])
    return len(rows)


async def has_due(session: AsyncSession, now: datetime) -> bool:
    """Whether any pending row is due and not leased (a cheap read before claiming)."""
    stmt = (
        select(t.push_outbox.c.id)
        .where(
            t.push_outbox.c.state == PushState.PENDING.value,
            t.push_outbox.c.next_attempt_at <= now,
            (t.push_outbox.c.lease_until.is_(None)) | (t.push_outbox.c.lease_until < now),
        )
        .limit(1)
    )
    return (await session.execute(stmt)).first() is not None


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[PushOutbox]:
    """Lease up to ``limit`` due pending rows (oldest first) until ``lease_until``."""
    due = (
        select(t.push_outbox.c.id)
        .where(
            t.push_outbox.c.state == PushState.PENDING.value,
            t.push_outbox.c.next_attempt_at <= now,
            (t.push_outbox.c.lease_until.is_(None)) | (t.push_outbox.c.lease_until < now),
        )
        .order_by(t.push_outbox.c.next_attempt_at, t.push_outbox.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(t.push_outbox)
        .where(t.push_outbox.c.id.in_(due.scalar_subquery()))
        .values(lease_until=lease_until)
        .returning(*t.push_outbox.c)
    )
    rows = (await session.execute(stmt)).all()
    claimed = [PushOutbox.model_validate(dict(row._mapping)) for row in rows]
    claimed.sort(key=lambda r: (r.next_attempt_at, r.id or 0))
    return claimed


def _leased(row_id: int, lease_until: datetime) -> Any:
    # Only the dispatcher still holding its lease may settle the row.
    return (
        (t.push_outbox.c.id == row_id)
        & (t.push_outbox.c.state == PushState.PENDING.value)
        & (t.push_outbox.c.lease_until == lease_until)
    )


async def finish(
    session: AsyncSession,
    *,
    row_id: int,
    lease_until: datetime,
    state: PushState,
    attempts: int | None = None,
    error: str | None = None,
) -> bool:
    """Mark a claimed row SENT, DROPPED or DEAD; ``False`` when the caller's lease was lost
    (it expired and another dispatcher took the row), in which case nothing changes."""
    values: dict[str, Any] = {
        "state": state.value,
        "lease_until": None,
        "finished_at": utcnow(),
        "last_error": error,
    }
    if attempts is not None:
        values["attempts"] = attempts
    stmt = (
        update(t.push_outbox)
        .where(_leased(row_id, lease_until))
        .values(**values)
        .returning(t.push_outbox.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def retry_later(
    session: AsyncSession,
    *,
    row_id: int,
    lease_until: datetime,
    attempts: int,
    at: datetime,
    error: str,
) -> bool:
    """Record a failed attempt; the row is due again at ``at``. ``False`` when the lease was
    lost (nothing changes)."""
    stmt = (
        update(t.push_outbox)
        .where(_leased(row_id, lease_until))
        .values(attempts=attempts, next_attempt_at=at, lease_until=None, last_error=error)
        .returning(t.push_outbox.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def device_owner(session: AsyncSession, push_token: str) -> tuple[int, int] | None:
    """``(cid, uid)`` of the user the device is registered to now, or ``None``."""
    stmt = select(t.device.c.cid, t.device.c.uid).where(t.device.c.push_token == push_token)
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def unread_of(session: AsyncSession, *, cid: int, uid: int, app_id: int) -> tuple[int, int]:
    """The user's unread count of ``app_id`` and their total unread over all apps."""
    stmt = select(
        func.coalesce(func.sum(t.app_badge.c.unread).filter(t.app_badge.c.app_id == app_id), 0),
        func.coalesce(func.sum(t.app_badge.c.unread), 0),
    ).where(t.app_badge.c.cid == cid, t.app_badge.c.uid == uid)
    app_unread, total = (await session.execute(stmt)).one()
    return int(app_unread), int(total)


async def outbox_counts(session: AsyncSession) -> dict[PushState, int]:
    """How many rows are in each state (metrics, tests)."""
    stmt = select(t.push_outbox.c.state, func.count()).group_by(t.push_outbox.c.state)
    found = {PushState(state): count for state, count in (await session.execute(stmt)).all()}
    return {state: found.get(state, 0) for state in PushState}

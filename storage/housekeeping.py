"""Deleting rows whose purpose has passed, so that no table grows without bound: expired SSO
tickets and legacy signatures, idempotency records past their 24 h, and push outbox rows
finished long ago (issue 4; SPEC §8, §9)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.models import PushState

IDEMPOTENCY_KEPT = timedelta(hours=24)
SENT_KEPT = timedelta(days=7)  # SENT and DROPPED rows: recent history for operators
DEAD_KEPT = timedelta(days=30)  # dead letters: long enough to notice and investigate


@dataclass(frozen=True, slots=True)
class Swept:
    """How many rows one sweep deleted, per kind."""

    tickets: int
    signatures: int
    idempotency: int
    outbox: int


async def sweep(session: AsyncSession, now: datetime) -> Swept:
    """Delete what has expired as of ``now``; returns the counts."""
    tickets = await session.execute(delete(t.sso_ticket).where(t.sso_ticket.c.expires_at < now))
    signatures = await session.execute(
        delete(t.legacy_signature).where(t.legacy_signature.c.expires_at < now)
    )
    idempotency = await session.execute(
        delete(t.idempotency_record).where(
            t.idempotency_record.c.created_at < now - IDEMPOTENCY_KEPT
        )
    )
    finished = (PushState.SENT.value, PushState.DROPPED.value)
    outbox = await session.execute(
        delete(t.push_outbox).where(
            (t.push_outbox.c.state.in_(finished) & (t.push_outbox.c.finished_at < now - SENT_KEPT))
            | (
                (t.push_outbox.c.state == PushState.DEAD.value)
                & (t.push_outbox.c.finished_at < now - DEAD_KEPT)
            )
        )
    )
    return Swept(
        tickets=tickets.rowcount or 0,  # type: ignore[attr-defined]
        signatures=signatures.rowcount or 0,  # type: ignore[attr-defined]
        idempotency=idempotency.rowcount or 0,  # type: ignore[attr-defined]
        outbox=outbox.rowcount or 0,  # type: ignore[attr-defined]
    )

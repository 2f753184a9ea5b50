"""Statements over single sign-on tickets (``sso_ticket``; SPEC §5, §8). Only a ticket's
SHA-256 is stored; using one deletes its row in the statement that finds it, so two concurrent
checks of one ticket cannot both succeed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.models import SsoTicket


@dataclass(frozen=True, slots=True)
class UsedTicket:
    """Whom a ticket row was issued for, and until when (naive on SQLite: stored UTC)."""

    cid: int
    uid: int
    account: str
    expires_at: datetime


def add_ticket(
    session: AsyncSession,
    *,
    ticket_hash: str,
    app_id: int,
    cid: int,
    uid: int,
    account: str,
    expires_at: datetime,
) -> None:
    """Add a ticket row to ``session``'s transaction (written at its flush or commit)."""
    session.add(
        SsoTicket(
            ticket_hash=ticket_hash,
            app_id=app_id,
            cid=cid,
            uid=uid,
            account=account,
            expires_at=expires_at,
        )
    )


async def use_ticket(session: AsyncSession, *, ticket_hash: str, app_id: int) -> UsedTicket | None:
    """Delete the ticket ``ticket_hash`` of app ``app_id`` and return what it held, or ``None``
    when there is no such row (unknown, used, or another app's: that app's row stays). Expiry
    is the caller's to check: an expired row is deleted all the same."""
    stmt = (
        delete(t.sso_ticket)
        .where(t.sso_ticket.c.ticket_hash == ticket_hash, t.sso_ticket.c.app_id == app_id)
        .returning(
            t.sso_ticket.c.cid,
            t.sso_ticket.c.uid,
            t.sso_ticket.c.account,
            t.sso_ticket.c.expires_at,
        )
    )
    found = (await session.execute(stmt)).first()
    return None if found is None else UsedTicket(*found)


async def delete_expired_tickets(session: AsyncSession, *, now: datetime) -> None:
    """Delete every ticket that expired before ``now``."""
    await session.execute(delete(t.sso_ticket).where(t.sso_ticket.c.expires_at < now))

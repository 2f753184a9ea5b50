"""Single sign-on tickets (SPEC §5, §8; issue 4 item 2).

A ticket is 32 random bytes (256 bits) in URL-safe base64 (43 characters). Only its SHA-256 is
stored, with the app and the user it was issued for and its expiry (5 minutes by default). It
verifies once: verification deletes the row in the same statement that finds it, so two
concurrent checks of one ticket cannot both succeed. Replay, expiry, another app's ticket and a
garbled ticket all fail the same way (``InvalidTicket``), and each failure is logged with its
real reason (never the ticket itself).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.errors import WorkbenchError
from resolvers.identity import Principal
from storage import catalogue
from storage import sso_tickets as store
from storage.db import Database
from storage.models import MAX_ROW_ID, utcnow

logger = logging.getLogger("workbench.sso")

DEFAULT_TICKET_TTL_S = 300
TICKET_BYTES = 32
_TICKET = re.compile(r"[A-Za-z0-9_-]{43}")


class InvalidTicket(WorkbenchError):
    """The ticket is unknown, used, expired, garbled or another app's: one answer for all."""

    code = "INVALID_TICKET"

    def __init__(self) -> None:
        super().__init__("the ticket is not valid for this app")


@dataclass(frozen=True, slots=True)
class TicketUser:
    """Whom a verified ticket was issued for (SPEC §8 ``verifyTicket``)."""

    cid: int
    uid: int
    account: str


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue_ticket(
    session: AsyncSession, *, app_id: int, principal: Principal, ttl_seconds: int
) -> str:
    """Add a fresh ticket for ``principal`` and app ``app_id`` to ``session``'s transaction;
    returns the ticket in clear (it exists nowhere else)."""
    ticket = secrets.token_urlsafe(TICKET_BYTES)
    store.add_ticket(
        session,
        ticket_hash=_hash(ticket),
        app_id=app_id,
        cid=principal.cid,
        uid=principal.uid,
        account=principal.account,
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
    )
    return ticket


async def verify_ticket(*, db: Database, app_id: int, ticket: str) -> TicketUser:
    """Use ``ticket`` for app ``app_id``: the user it names, once (SPEC §8).

    Raises ``InvalidTicket`` for a ticket that is garbled, unknown, already used, expired, or
    issued for another app (a wrong app's check does not use the ticket up), and for a
    disabled app's tickets. Expired tickets
    are deleted as they are found, and with every successful check a batch of others.
    """
    if not _TICKET.fullmatch(ticket) or not 0 < app_id <= MAX_ROW_ID:
        logger.info("ticket refused for app %s: garbled", app_id)
        raise InvalidTicket()
    digest = _hash(ticket)
    now = utcnow()
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None or not app.enabled:
            logger.info("ticket refused for app %s: no such enabled app", app_id)
            raise InvalidTicket()
        found = await store.use_ticket(session, ticket_hash=digest, app_id=app_id)
        if found is not None:
            await store.delete_expired_tickets(session, now=now)
    if found is None:
        logger.info("ticket refused for app %s: unknown, used, or another app's", app_id)
        raise InvalidTicket()
    cid, uid, account, expires_at = found.cid, found.uid, found.account, found.expires_at
    if expires_at.tzinfo is None:  # SQLite keeps no zone; stored values are UTC
        expires_at = expires_at.replace(tzinfo=now.tzinfo)
    if expires_at <= now:
        logger.info("ticket refused for app %s: expired", app_id)
        raise InvalidTicket()
    logger.info("ticket verified for app %s: user %s,%s", app_id, cid, uid)
    return TicketUser(cid=cid, uid=uid, account=account)

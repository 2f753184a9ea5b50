"""Mobile push notifications (SPEC §4, §9; issue 4 item 5): devices, the outbox a notice
writes in its own transaction, and the dispatcher that sends it through a gateway.

Delivery is at least once and, in practice, exactly once: a row is claimed with a lease, sent,
then marked ``SENT``; a failure schedules a retry with exponential backoff (``retry_base_s``
doubled per failure, capped at ``MAX_RETRY_DELAY_S``, with jitter) and after ``max_attempts``
the row is ``DEAD`` (kept, with its last error, for operators). A restart loses nothing: rows
live in the database, and a lease left by a dead process expires. Before sending, the row is
checked against the user's current state: if the app is read (unread 0) or no longer on the
device's workbench, it is ``DROPPED`` (read on PC, not prompted on the phone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.errors import InvalidInput
from resolvers.identity import Principal
from storage import catalogue, housekeeping
from storage import push as store
from storage.db import Database
from storage.models import Platform, PushOutbox, PushState, utcnow

STOP_TIMEOUT_S = 5.0
logger = logging.getLogger("workbench.push")

MOBILE = (Platform.ANDROID, Platform.IOS)
MAX_PUSH_TOKEN_LENGTH = 512
MAX_RETRY_DELAY_S = 300.0
LEASE_S = 60.0
BATCH = 50
CONCURRENT_SENDS = 10
# A send that takes longer fails (and is retried): well inside the lease, so no other process
# takes a row while a send of it may still succeed.
SEND_DEADLINE_S = 15.0
MAX_BADGE = 2**31 - 1
SWEEP_INTERVAL_S = 60.0


def push_text(app_name: str) -> str:
    """The notification text of SPEC §4: it names the app."""
    return f"您收到一条来自 “{app_name}” 的消息。"


@dataclass(frozen=True, slots=True)
class PushMessage:
    """One push as the gateway sends it (SPEC §9 webhook body): ``badge`` is the user's total
    unread when it leaves."""

    platform: Platform
    push_token: str
    cid: int
    uid: int
    app_id: int
    text: str
    badge: int


class PushFailed(Exception):
    """The gateway did not take the push; it will be retried (the message says why)."""


class PushGateway(Protocol):
    """Sends pushes (``log``, ``webhook``: see ``imworkbench.push_gateways``)."""

    async def send(self, message: PushMessage) -> None:
        """Deliver ``message``; raise ``PushFailed`` when it was not accepted."""

    async def close(self) -> None:
        """Release connections."""


def _check_token(push_token: str) -> str:
    token = push_token.strip()
    if not token or len(token) > MAX_PUSH_TOKEN_LENGTH or not token.isprintable():
        raise InvalidInput.single(
            "pushToken",
            f"must be 1 to {MAX_PUSH_TOKEN_LENGTH} printable characters",
            "INVALID_PUSH_TOKEN",
        )
    return token


async def register_device(
    *, db: Database, principal: Principal, platform: Platform, push_token: str
) -> str:
    """Register the caller's mobile device (SPEC §9 ``registerDevice``); a token registered by
    another user moves to the caller. Returns the token as stored. Raises ``InvalidInput`` for
    a PC platform or a malformed token."""
    token = _check_token(push_token)
    if platform not in MOBILE:
        raise InvalidInput.single("platform", "push is for ANDROID and IOS devices", "NOT_MOBILE")
    async with db.write() as session:
        await store.register_device(
            session, push_token=token, platform=platform, cid=principal.cid, uid=principal.uid
        )
    return token


async def unregister_device(*, db: Database, principal: Principal, push_token: str) -> bool:
    """Forget the caller's device and its unsent pushes; ``False`` if it was not theirs."""
    token = _check_token(push_token)
    async with db.write() as session:
        return await store.unregister_device(
            session, push_token=token, cid=principal.cid, uid=principal.uid
        )


async def enqueue_notice(
    session: AsyncSession,
    *,
    app_id: int,
    app_name: str,
    users: Sequence[tuple[int, int]],
    coalesce_s: float,
) -> int:
    """In a notice's transaction: one pending push per mobile device of ``users`` on a
    platform the app is on, due after ``coalesce_s`` (module docstring). Returns rows added."""
    if not users:
        return 0
    devices = await store.devices_of(session, users, app_id=app_id)
    return await store.enqueue(
        session,
        app_id=app_id,
        text=push_text(app_name),
        devices=devices,
        not_before=utcnow() + timedelta(seconds=coalesce_s),
    )


class Dispatcher:
    """Sends due outbox rows through ``gateway`` (module docstring); one task per process,
    several processes safe. ``start()`` from the application lifespan, ``close()`` at exit."""

    def __init__(
        self,
        db: Database,
        gateway: PushGateway,
        *,
        max_attempts: int = 8,
        retry_base_s: float = 2.0,
        poll_interval_s: float = 0.25,
        send_deadline_s: float = SEND_DEADLINE_S,
    ) -> None:
        self._db = db
        self._gateway = gateway
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._poll_interval_s = poll_interval_s
        self._send_deadline_s = send_deadline_s
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failures = 0

    async def start(self) -> None:
        """Start the sending loop."""
        self._task = asyncio.create_task(self._run(), name="push-dispatcher")

    async def close(self) -> None:
        """Stop the loop (a row being sent keeps its lease and is retried later) and close the
        gateway."""
        if self._task is not None:
            self._task.cancel()
            # Bounded: a cancellation swallowed by a driver must not hang shutdown.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
            self._task = None
        await self._gateway.close()

    async def _run(self) -> None:
        next_sweep = 0.0
        while True:
            try:
                sent = await self.run_once()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_INTERVAL_S
                    await self.sweep()
            except Exception:
                logger.exception("push dispatch failed; retrying")
                sent = 0
            if not sent:
                await asyncio.sleep(self._poll_interval_s)

    async def sweep(self) -> housekeeping.Swept:
        """Delete expired tickets, signatures, idempotency records and long-finished pushes
        (``storage.housekeeping``); run by the loop every ``SWEEP_INTERVAL_S``."""
        async with self._db.write() as session:
            swept = await housekeeping.sweep(session, utcnow())
        if any((swept.tickets, swept.signatures, swept.idempotency, swept.outbox)):
            logger.info("housekeeping: %s", swept)
        return swept

    async def run_once(self) -> int:
        """Claim and handle one batch of due rows; returns how many were handled. Each send
        has ``SEND_DEADLINE_S`` (shorter than the lease), so a slow gateway cannot hold a row
        past its lease, and a row is settled only while its lease is still ours."""
        now = utcnow()
        async with self._db.read() as session:
            if not await store.has_due(session, now):
                return 0
        lease = now + timedelta(seconds=LEASE_S)
        async with self._db.write() as session:
            rows = await store.claim_due(session, now=now, lease_until=lease, limit=BATCH)
        slots = asyncio.Semaphore(CONCURRENT_SENDS)

        async def handle(row: PushOutbox) -> None:
            async with slots:
                await self._handle(row, lease)

        await asyncio.gather(*(handle(row) for row in rows))
        return len(rows)

    async def _settle(self, row: PushOutbox, lease: datetime, state: PushState, **kw: Any) -> None:
        assert row.id is not None
        async with self._db.write() as session:
            kept = await store.finish(session, row_id=row.id, lease_until=lease, state=state, **kw)
        if not kept:
            logger.warning("push %s: lease lost before it was settled as %s", row.id, state)

    async def _handle(self, row: PushOutbox, lease: datetime) -> None:
        assert row.id is not None
        async with self._db.read() as session:
            app_unread, total = await store.unread_of(
                session, cid=row.cid, uid=row.uid, app_id=row.app_id
            )
            shown = await catalogue.is_visible(
                session,
                app_id=row.app_id,
                cid=row.cid,
                uid=row.uid,
                platform=Platform(row.platform),
            )
            owner = await store.device_owner(session, row.push_token)
        if app_unread == 0 or not shown or owner != (row.cid, row.uid):
            await self._settle(row, lease, PushState.DROPPED)
            logger.info("push %s dropped: read, no longer shown, or device gone", row.id)
            return
        message = PushMessage(
            platform=Platform(row.platform),
            push_token=row.push_token,
            cid=row.cid,
            uid=row.uid,
            app_id=row.app_id,
            text=row.text,
            badge=min(total, MAX_BADGE),
        )
        try:
            await asyncio.wait_for(self._gateway.send(message), self._send_deadline_s)
        except PushFailed as error:
            await self._failed(row, lease, str(error))
            return
        except TimeoutError:
            await self._failed(row, lease, f"no answer within {self._send_deadline_s:g} s")
            return
        except Exception as error:  # a gateway bug must not lose the row
            logger.exception("push %s: gateway error", row.id)
            await self._failed(row, lease, f"{type(error).__name__}: {error}")
            return
        await self._settle(row, lease, PushState.SENT)
        self.sent += 1

    async def _failed(self, row: PushOutbox, lease: datetime, error: str) -> None:
        assert row.id is not None
        self.failures += 1
        attempts = row.attempts + 1
        if attempts >= self._max_attempts:
            await self._settle(row, lease, PushState.DEAD, attempts=attempts, error=error[:500])
            logger.warning("push %s dead after %d attempts: %s", row.id, attempts, error)
            return
        delay = min(MAX_RETRY_DELAY_S, self._retry_base_s * 2 ** (attempts - 1))
        delay *= random.uniform(0.8, 1.2)
        at = utcnow() + timedelta(seconds=delay)
        async with self._db.write() as session:
            kept = await store.retry_later(
                session,
                row_id=row.id,
                lease_until=lease,
                attempts=attempts,
                at=at,
                error=error[:500],
            )
        if not kept:
            logger.warning("push %s: lease lost before its retry was recorded", row.id)
            return
        logger.info(
            "push %s failed (attempt %d), retry in %.1f s: %s", row.id, attempts, delay, error
        )

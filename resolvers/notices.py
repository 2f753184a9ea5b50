"""Notices (SPEC §4 row 1, §6, §9): count them, enqueue their mobile pushes, publish the new
badge states; and ``NoticeBatcher``, the group commit that lets one process take thousands of
vendor calls a second (issue 6).

Every notice is applied by ``apply_notices``, alone or with others in one transaction: per
batch, two reads check the apps and their audiences, two multi-row upserts count every notice
(a user's notices merge into one row change, as if applied one by one), the pushes are enqueued
per app, and one broker message per user carries the user's final state. Nothing is published
before the transaction commits, and a caller is answered only after both.

Why group commit: a SQLite write transaction is serialised, and through the async driver each
statement costs several thread hand-offs; applied one per vendor call, notices were capped at
about 300/s whatever the concurrency. Merged, many calls share one transaction's fixed cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.badges import MAX_RECIPIENTS, NoticeOutcome, distinct_recipients
from resolvers.broker import Broker
from resolvers.errors import AppNotFound
from resolvers.messages import BadgeCause, BadgeChange, user_channel
from resolvers.push import enqueue_notice
from storage import badges as store
from storage import catalogue
from storage.db import Database

logger = logging.getLogger("workbench.notices")

OUTSIDE_AUDIENCE = "enterprise outside the app's audience"
Messages = list[tuple[str, bytes]]


async def apply_notices(
    session: AsyncSession,
    notices: Sequence[tuple[int, Sequence[tuple[int, int]]]],
    *,
    coalesce_s: float,
) -> tuple[list[NoticeOutcome | AppNotFound], Messages]:
    """In the caller's transaction: apply each ``(app_id, users)`` notice (``users`` distinct)
    as one notice of that app for each user its audience admits, and enqueue their pushes due
    after ``coalesce_s`` seconds (SPEC §4, §9).

    Returns, in order, each notice's outcome, or ``AppNotFound`` (not raised) for an unknown or
    disabled app, which writes nothing for that notice; and the broker messages to publish
    after commit: one per user, the user's state after all of them.
    """
    targets = await catalogue.notice_targets(
        session,
        app_ids=(app_id for app_id, _ in notices),
        cids=(cid for _, users in notices for cid, _ in users),
    )
    counts: Counter[tuple[int, int, int]] = Counter()
    per_app: dict[int, set[tuple[int, int]]] = defaultdict(set)
    outcomes: list[NoticeOutcome | AppNotFound] = []
    for app_id, users in notices:
        target = targets.get(app_id)
        if target is None:
            outcomes.append(AppNotFound(app_id))
            continue
        applied = [user for user in users if user[0] in target.admitted]
        skipped = [(user, OUTSIDE_AUDIENCE) for user in users if user[0] not in target.admitted]
        for cid, uid in applied:
            counts[(cid, uid, app_id)] += 1
        per_app[app_id].update(applied)
        outcomes.append(NoticeOutcome(app_id=app_id, applied=applied, skipped=skipped))
    if not counts:
        return outcomes, []
    states, unread = await store.add_notices(session, counts)
    for app_id, admitted in sorted(per_app.items()):
        await enqueue_notice(
            session,
            app_id=app_id,
            app_name=targets[app_id].name,
            users=sorted(admitted),
            coalesce_s=coalesce_s,
        )
    changed: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for cid, uid, app_id in sorted(unread):
        changed[(cid, uid)].append((app_id, unread[(cid, uid, app_id)]))
    messages = []
    for (cid, uid), badges in changed.items():
        state = states[(cid, uid)]
        change = BadgeChange(BadgeCause.NOTICE, state.version, state.unseen, tuple(badges))
        messages.append((user_channel(cid, uid), change.encode()))
    return outcomes, messages


async def apply_notice(
    session: AsyncSession, *, app_id: int, users: Sequence[tuple[int, int]], coalesce_s: float
) -> tuple[NoticeOutcome, Messages]:
    """``apply_notices`` for one notice; raises ``AppNotFound`` for an unknown or disabled
    app. Returns its outcome and the messages to publish after commit."""
    (outcome,), messages = await apply_notices(session, [(app_id, users)], coalesce_s=coalesce_s)
    if isinstance(outcome, AppNotFound):
        raise outcome
    return outcome, messages


async def push_notice(
    *,
    db: Database,
    broker: Broker,
    app_id: int,
    recipients: Sequence[tuple[int, int]],
    coalesce_s: float = 0.5,
) -> NoticeOutcome:
    """One notice of app ``app_id`` for each recipient ``(cid, uid)`` in its own transaction
    (SPEC §4, §6, §9; bursts within ``coalesce_s`` seconds make one push per device).

    Duplicates count once; recipients whose enterprise is outside the app's audience are
    skipped. All or nothing: raises ``AppNotFound`` (unknown or disabled app) or
    ``TooManyRecipients`` (over 10,000 distinct users) before anything is written.
    """
    users = distinct_recipients(recipients)
    async with db.write() as session:
        outcome, messages = await apply_notice(
            session, app_id=app_id, users=users, coalesce_s=coalesce_s
        )
    await broker.publish(messages)
    return outcome


@dataclass(slots=True)
class _Pending:
    app_id: int
    users: list[tuple[int, int]]
    future: asyncio.Future[NoticeOutcome]


class NoticeBatcher:
    """Group commit of notices (module docstring): ``push`` as ``push_notice`` does, but
    concurrent calls share transactions.

    One task per process takes every waiting notice (up to ``max_recipients`` recipients a
    batch, and at least one notice) and applies them together; calls that arrive meanwhile
    form the next batch, so a lone call waits for no timer. A failed transaction fails exactly
    the calls of its batch (nothing of them was written); an unknown app fails only its own
    call. ``start()`` and ``close()`` from the application lifespan; ``close()`` finishes the
    notices already accepted.
    """

    def __init__(
        self,
        db: Database,
        broker: Broker,
        *,
        coalesce_s: float,
        max_recipients: int = MAX_RECIPIENTS,
    ) -> None:
        self._db = db
        self._broker = broker
        self._coalesce_s = coalesce_s
        self._max_recipients = max_recipients
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.notices = 0

    async def start(self) -> None:
        """Start the committing task."""
        self._task = asyncio.create_task(self._run(), name="notice-batcher")

    async def close(self) -> None:
        """Apply what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def push(self, *, app_id: int, recipients: Sequence[tuple[int, int]]) -> NoticeOutcome:
        """``push_notice``'s contract, applied in the next batch. Raises ``TooManyRecipients``
        and ``AppNotFound`` as it does, or whatever failed the batch's transaction."""
        users = distinct_recipients(recipients)
        if self._task is None or self._closing:
            # Not started, or shutting down: apply it alone rather than refuse it.
            return await push_notice(
                db=self._db,
                broker=self._broker,
                app_id=app_id,
                recipients=users,
                coalesce_s=self._coalesce_s,
            )
        future: asyncio.Future[NoticeOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(app_id, users, future))
        self._wake.set()
        return await future

    def _take(self) -> list[_Pending]:
        batch = [self._queue.popleft()]
        size = len(batch[0].users)
        while self._queue and size + len(self._queue[0].users) <= self._max_recipients:
            pending = self._queue.popleft()
            size += len(pending.users)
            batch.append(pending)
        return batch

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._commit(self._take())
            if self._closing:
                return

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            async with self._db.write() as session:
                outcomes, messages = await apply_notices(
                    session,
                    [(p.app_id, p.users) for p in batch],
                    coalesce_s=self._coalesce_s,
                )
        except Exception as error:  # the batch's calls fail; nothing of them was written
            logger.warning("a batch of %d notice(s) failed: %r", len(batch), error)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        self.batches += 1
        self.notices += len(batch)
        try:
            await self._broker.publish(messages)
        except Exception:  # a committed notice is accepted; streams resync from the database
            logger.exception("publishing a batch of %d notice(s) failed", len(batch))
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():
                continue
            if isinstance(outcome, AppNotFound):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

"""Badges: notices, reads, opens, and the live stream of a user's badge state (SPEC §4).

Changes run in one ``Database.write()`` transaction each; their absolute results are published
per user after commit (``resolvers.broker.user_channel``), encoded once as compact JSON::

    {"c": cause, "v": version, "s": unseenCount, "b": [[appId, unread], ...]}

``RELOAD_MESSAGE`` says the user's visible apps changed (a removal): streams reload.

``BadgeStream`` turns a user's channel into ``BadgeEventData``: a SNAPSHOT, then one event per
change. It keeps the user's per-app counts with the version that set each, so messages may
arrive in any order, and it merges changes a slow client has not yet taken (latest wins per app,
memory bounded by the user's app count).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections.abc import AsyncGenerator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.broker import Broker, user_channel
from resolvers.errors import AppNotFound, InvalidInput, TooManyRecipients
from resolvers.identity import Principal
from storage import badges as store
from storage import catalogue
from storage.catalogue import AppRule
from storage.db import Database
from storage.models import Platform

if TYPE_CHECKING:
    from resolvers.catalogue_events import CatalogueWatch

MAX_RECIPIENTS = 10_000
# Published on a user's channel when what the user sees changed without a badge changing (an
# app removed or restored): every stream of the user reloads and sends a SNAPSHOT.
RELOAD_MESSAGE = b'{"r":1}'
# Messages buffered while a stream loads its snapshot; past this it reloads instead.
MAX_PENDING = 256


class BadgeCause(enum.StrEnum):
    """Why a badge event happened (SPEC §7 ``BadgeCause``)."""

    SNAPSHOT = "SNAPSHOT"
    NOTICE = "NOTICE"
    OPEN_APP = "OPEN_APP"
    OPEN_WORKBENCH = "OPEN_WORKBENCH"
    READ = "READ"
    SET = "SET"


@dataclass(frozen=True, slots=True)
class BadgeEventData:
    """A user's badge state after an event, as absolute values.

    ``badges``: ``(app_id, unread)`` pairs this event sets (every visible app for SNAPSHOT);
    ``unseen_count``: the workbench badge shown, already capped at ``unread_total``;
    ``version``: per user, strictly increasing with every change.
    """

    cause: BadgeCause
    badges: list[tuple[int, int]]
    unseen_count: int
    unread_total: int
    version: int


@dataclass(frozen=True, slots=True)
class NoticeOutcome:
    """Result of one notice: recipients counted, and those skipped with the reason."""

    app_id: int
    applied: list[tuple[int, int]]
    skipped: list[tuple[tuple[int, int], str]] = field(default_factory=list)


def encode_message(
    cause: BadgeCause, state: store.UserState, badges: Iterable[tuple[int, int]]
) -> bytes:
    """The broker message for one user's change (format in the module docstring)."""
    payload = {
        "c": cause.value,
        "v": state.version,
        "s": state.unseen,
        "b": [list(b) for b in badges],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def distinct_recipients(recipients: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The distinct recipients in ``(cid, uid)`` order; raises ``TooManyRecipients`` past
    ``MAX_RECIPIENTS`` (SPEC §6)."""
    users = sorted(set(recipients))
    if len(users) > MAX_RECIPIENTS:
        raise TooManyRecipients(len(users), MAX_RECIPIENTS)
    return users


async def _event(
    session: AsyncSession,
    *,
    cause: BadgeCause,
    state: store.UserState,
    app_ids: tuple[int, ...],
) -> BadgeEventData:
    # The user's state as every device shows it: the apps' counts, over all visible apps.
    visible = await catalogue.visible_app_ids(session, cid=state.cid, uid=state.uid, platform=None)
    unread = await store.read_unread(session, cid=state.cid, uid=state.uid)
    total = sum(count for app_id, count in unread.items() if app_id in visible)
    return BadgeEventData(
        cause=cause,
        badges=[(a, unread.get(a, 0)) for a in app_ids if a in visible],
        unseen_count=min(state.unseen, total),
        unread_total=total,
        version=state.version,
    )


async def read_app(
    *,
    db: Database,
    broker: Broker,
    cid: int,
    uid: int,
    app_id: int,
    count: int | None,
    cause: BadgeCause = BadgeCause.READ,
    require_visible: bool = False,
) -> BadgeEventData:
    """Lower user ``(cid, uid)``'s unread count of app ``app_id`` (SPEC §4).

    ``count=None`` clears it (OPEN_APP); otherwise ``unread = max(0, unread - count)``, and
    ``unseen = min(unseen, total unread)``. ``count`` must be >= 0; 0 changes nothing. Raises
    ``AppNotFound`` for an unknown or disabled app, or, with ``require_visible``, one not on the
    user's workbench; ``InvalidInput`` for a negative count. Publishes only a real change, and
    returns the user's resulting state.
    """
    event = await _read(
        db=db,
        broker=broker,
        cid=cid,
        uid=uid,
        app_id=app_id,
        count=count,
        cause=cause,
        require_visible=require_visible,
        describe=True,
    )
    assert event is not None
    return event


async def record_read(
    *, db: Database, broker: Broker, cid: int, uid: int, app_id: int, count: int | None
) -> None:
    """``read_app`` for callers that answer without the resulting state (the legacy setnum):
    the same change and errors, without the two reads that describe the state."""
    await _read(
        db=db,
        broker=broker,
        cid=cid,
        uid=uid,
        app_id=app_id,
        count=count,
        cause=BadgeCause.READ,
        require_visible=False,
        describe=False,
    )


async def _read(
    *,
    db: Database,
    broker: Broker,
    cid: int,
    uid: int,
    app_id: int,
    count: int | None,
    cause: BadgeCause,
    require_visible: bool,
    describe: bool,
) -> BadgeEventData | None:
    if count is not None and count < 0:
        raise InvalidInput.single("count", "must not be negative", "NEGATIVE_COUNT")
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None or not app.enabled:
            raise AppNotFound(app_id)
        if require_visible and not await catalogue.is_visible(
            session, app_id=app_id, cid=cid, uid=uid, platform=None
        ):
            raise AppNotFound(app_id)
        changed = await store.decrease_unread(session, cid=cid, uid=uid, app_id=app_id, by=count)
        event = None
        if describe:
            state = changed[0] if changed else await store.read_state(session, cid=cid, uid=uid)
            event = await _event(session, cause=cause, state=state, app_ids=(app_id,))
    if changed is not None:
        message = encode_message(cause, changed[0], ((app_id, changed[1]),))
        await broker.publish(((user_channel(cid, uid), message),))
    return event


async def open_workbench(*, db: Database, broker: Broker, principal: Principal) -> BadgeEventData:
    """The user opened the workbench: ``unseenCount = 0``, app badges unchanged (SPEC §4)."""
    cid, uid = principal.cid, principal.uid
    async with db.write() as session:
        changed = await store.clear_unseen(session, cid=cid, uid=uid)
        state = changed or await store.read_state(session, cid=cid, uid=uid)
        event = await _event(session, cause=BadgeCause.OPEN_WORKBENCH, state=state, app_ids=())
    if changed is not None:
        message = encode_message(BadgeCause.OPEN_WORKBENCH, changed, ())
        await broker.publish(((user_channel(cid, uid), message),))
    return event


@dataclass(slots=True)
class _Snapshot:
    unseen: int
    version: int
    unread: dict[int, int]
    visible: set[int]
    max_app_id: int


class BadgeStream:
    """One subscriber's view of a user's badges on one platform (``None``: all platforms).

    Use ``events()``; the object is also the broker ``Listener`` of the user's channel and,
    with a ``watch``, a ``CatalogueListener``: when an administrator's change adds or hides an
    app for this user, the stream sends a SNAPSHOT computed in memory (no database read).
    """

    def __init__(
        self,
        *,
        db: Database,
        broker: Broker,
        cid: int,
        uid: int,
        platform: Platform | None,
        watch: CatalogueWatch | None = None,
    ) -> None:
        self._db = db
        self._broker = broker
        self._watch = watch
        self._removed: set[int] = set()
        self._layout_changed = False
        self._baseline = 0
        self._cid = cid
        self._uid = uid
        self._platform = platform
        self._wake = asyncio.Event()
        self._pending: list[bytes] | None = []
        self._reload = False
        self._base_version = 0
        self._version = 0
        self._unseen = 0
        self._unseen_version = 0
        self._unread: dict[int, int] = {}
        self._app_version: dict[int, int] = {}
        self._visible: set[int] = set()
        self._max_app_id = 0
        self._total = 0
        self._dirty: set[int] = set()
        self._cause = BadgeCause.SNAPSHOT
        self._shown: tuple[int, int] = (0, 0)

    def deliver(self, message: bytes) -> None:
        """Take one broker message (see module docstring); never blocks, never queues."""
        if message == RELOAD_MESSAGE:
            self.resync()
            return
        if self._pending is not None:
            if len(self._pending) < MAX_PENDING:
                self._pending.append(message)
            else:
                self._reload = True
                self._wake.set()
            return
        self._apply(message)
        self._wake.set()

    def resync(self) -> None:
        """Messages may have been lost: reload from the database and send a SNAPSHOT."""
        self._reload = True
        self._wake.set()

    def known_app_ids(self) -> set[int]:
        """The apps this stream counts (for "everything changed" checks)."""
        return set(self._visible)

    def catalogue_baseline(self) -> int:
        """The catalogue watch's sequence when this stream last loaded its state."""
        return self._baseline

    def catalogue_changed(self, app_ids: Collection[int], rules: Mapping[int, AppRule]) -> None:
        """``CatalogueListener``: count or stop counting apps whose visibility changed."""
        if self._pending is not None:  # loading: the snapshot being read may not include this
            self._reload = True
            self._wake.set()
            return
        for app_id in app_ids:
            rule = rules.get(app_id)
            shows = rule is not None and rule.shows(
                self._cid, self._platform, removed=app_id in self._removed
            )
            self._max_app_id = max(self._max_app_id, app_id)
            if shows == (app_id in self._visible):
                continue
            count = self._unread.get(app_id, 0)
            if shows:
                self._visible.add(app_id)
                self._total += count
            else:
                self._visible.discard(app_id)
                self._total -= count
                self._dirty.discard(app_id)
            self._layout_changed = True
        if self._layout_changed:
            self._wake.set()

    def _apply(self, message: bytes) -> None:
        data = json.loads(message)
        version = data["v"]
        if version <= self._base_version:
            return
        if version > self._unseen_version:
            self._unseen = data["s"]
            self._unseen_version = version
        for app_id, unread in data["b"]:
            if app_id > self._max_app_id:
                self._reload = True
                self._wake.set()
            if version > self._app_version.get(app_id, self._base_version):
                old = self._unread.get(app_id, 0)
                self._unread[app_id] = unread
                self._app_version[app_id] = version
                if app_id in self._visible:
                    self._total += unread - old
                    self._dirty.add(app_id)
        if version > self._version:
            self._version = version
            self._cause = BadgeCause(data["c"])

    async def _load(self) -> None:
        self._pending = []
        self._reload = False
        if self._watch is not None:
            self._baseline = self._watch.sequence()
        async with self._db.read() as session:
            state = await store.read_state(session, cid=self._cid, uid=self._uid)
            unread = await store.read_unread(session, cid=self._cid, uid=self._uid)
            visible = await catalogue.visible_app_ids(
                session, cid=self._cid, uid=self._uid, platform=self._platform
            )
            max_app_id = await catalogue.max_app_id(session)
            removed = await catalogue.removed_app_ids(session, cid=self._cid, uid=self._uid)
        self._removed = removed
        self._layout_changed = False
        self._base_version = self._version = self._unseen_version = state.version
        self._unseen = state.unseen
        self._unread = unread
        self._app_version = {}
        self._visible = visible
        self._max_app_id = max_app_id
        self._total = sum(count for app_id, count in unread.items() if app_id in visible)
        self._dirty.clear()
        pending, self._pending = self._pending, None
        for message in pending:
            self._apply(message)

    def _snapshot_event(self) -> BadgeEventData:
        self._dirty.clear()
        self._layout_changed = False
        shown = (min(self._unseen, self._total), self._total)
        self._shown = shown
        return BadgeEventData(
            cause=BadgeCause.SNAPSHOT,
            badges=[(app_id, self._unread.get(app_id, 0)) for app_id in sorted(self._visible)],
            unseen_count=shown[0],
            unread_total=shown[1],
            version=self._version,
        )

    def _change_event(self) -> BadgeEventData | None:
        shown = (min(self._unseen, self._total), self._total)
        if not self._dirty and shown == self._shown:
            return None
        badges = [(app_id, self._unread.get(app_id, 0)) for app_id in sorted(self._dirty)]
        self._dirty.clear()
        self._shown = shown
        return BadgeEventData(
            cause=self._cause,
            badges=badges,
            unseen_count=shown[0],
            unread_total=shown[1],
            version=self._version,
        )

    async def events(self) -> AsyncGenerator[BadgeEventData, None]:
        """A SNAPSHOT, then an event for each change the user's view shows, until closed.

        A change that alters nothing this view shows (another platform's app) yields nothing.
        When the apps counted change (an administrator's change, a removal) or messages may
        have been lost, a fresh SNAPSHOT.
        """
        following = (
            self._watch.register(self) if self._watch is not None else contextlib.nullcontext()
        )
        with following:
            async for event in self._events():
                yield event

    async def _events(self) -> AsyncGenerator[BadgeEventData, None]:
        async with self._broker.listen(user_channel(self._cid, self._uid), self):
            await self._load()
            last = self._snapshot_event()
            yield last
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._reload or self._layout_changed:
                    if self._reload:
                        await self._load()
                    snapshot = self._snapshot_event()
                    # A reload that finds what the client already has (a catalogue change
                    # seen while loading, say) sends nothing.
                    if snapshot != last:
                        last = snapshot
                        yield snapshot
                    continue
                event = self._change_event()
                if event is not None:
                    last = event
                    yield event

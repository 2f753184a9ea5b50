"""The live stream of a user's badge state (SPEC §4, §7 ``badges``): what the ``badges``
subscription sends, through Strawberry or compiled (``imworkbench.http.websocket``).

``BadgeStream`` turns a user's channel into ``BadgeEventData``: a SNAPSHOT, then one event per
change. It keeps the user's per-app counts with the version that set each, so messages may
arrive in any order, and it merges changes a slow client has not yet taken (latest wins per app,
memory bounded by the user's app count). A ``Reload`` on the channel (an app removed or
restored) and a resync make it read its state again and send a SNAPSHOT.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Collection, Mapping

from resolvers.badges import BadgeEventData
from resolvers.messages import BadgeCause, BadgeChange, Message, Reload, user_channel
from resolvers.streams.catalogue import CatalogueWatch
from resolvers.streams.hub import Hub
from storage import badges as store
from storage import catalogue
from storage.catalogue import AppRule
from storage.db import Database
from storage.models import Platform

# Changes buffered while a stream loads its snapshot; past this it reloads instead.
MAX_PENDING = 256


class BadgeStream:
    """One subscriber's view of a user's badges on one platform (``None``: all platforms).

    Use ``events()``; the object is also the hub's ``MessageListener`` of the user's channel
    and, with a ``watch``, a ``CatalogueListener``: when an administrator's change adds or
    hides an app for this user, the stream sends a SNAPSHOT computed in memory (no database
    read).
    """

    def __init__(
        self,
        *,
        db: Database,
        hub: Hub,
        cid: int,
        uid: int,
        platform: Platform | None,
        watch: CatalogueWatch | None = None,
    ) -> None:
        self._db = db
        self._hub = hub
        self._watch = watch
        self._removed: set[int] = set()
        self._layout_changed = False
        self._baseline = 0
        self._cid = cid
        self._uid = uid
        self._platform = platform
        self._wake = asyncio.Event()
        self._pending: list[BadgeChange] | None = []
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

    def deliver(self, message: Message) -> None:
        """Take one message of the user's channel (module docstring); never blocks, never
        queues without bound."""
        if isinstance(message, Reload):
            self.resync()
            return
        if not isinstance(message, BadgeChange):
            return  # catalogue changes come through the watch, not the user's channel
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

    def _apply(self, message: BadgeChange) -> None:
        version = message.version
        if version <= self._base_version:
            return
        if version > self._unseen_version:
            self._unseen = message.unseen
            self._unseen_version = version
        for app_id, unread in message.badges:
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
            self._cause = message.cause

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

    async def _renumbered_snapshot(self) -> BadgeEventData:
        # A SNAPSHOT that shows the state anew without a change of the state itself (an
        # administrator's change, the user's removal of an app): it needs a version above the
        # last one sent (SPEC §7), so the stored version goes up by one. When that lands
        # right above this stream's version, nothing else changed the state in between and
        # the state held here is the state at the new version; otherwise a change is still
        # on its way here, and the stream reads its state again (which includes it).
        if self._watch is not None:
            version = await self._watch.fresh_version(self._cid, self._uid)
        else:
            async with self._db.write() as session:
                bumped = await store.bump_versions(session, [(self._cid, self._uid)])
            version = bumped[(self._cid, self._uid)]
        if version == self._version + 1:
            self._version = version
        else:
            await self._load()
        return self._snapshot_event()

    async def events(self) -> AsyncGenerator[BadgeEventData, None]:
        """A SNAPSHOT, then an event for each change the user's view shows, until closed.

        A change that alters nothing this view shows (another platform's app) yields nothing.
        When the apps counted change (an administrator's change, a removal) or messages may
        have been lost, a fresh SNAPSHOT. Versions strictly increase along the stream: a
        SNAPSHOT with nothing new in the state itself gets the next stored version.
        """
        following = (
            self._watch.register(self) if self._watch is not None else contextlib.nullcontext()
        )
        with following:
            async for event in self._events():
                yield event

    async def _events(self) -> AsyncGenerator[BadgeEventData, None]:
        async with self._hub.listen(user_channel(self._cid, self._uid), self):
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
                        if snapshot.version <= last.version:
                            snapshot = await self._renumbered_snapshot()
                        last = snapshot
                        yield snapshot
                    continue
                event = self._change_event()
                if event is not None:
                    last = event
                    yield event

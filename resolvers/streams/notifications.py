"""The ``notifications`` subscription (SPEC §9; issue 4 item 6): connected clients get the
same text a phone's push shows, for every notice of the user, as it happens.

The stream listens on the user's channel and turns each ``BadgeChange`` of cause NOTICE into
one notification per app it counts. Notifications are advisory (badges carry the truth and the
push outbox the durable copy), so a client that falls more than ``MAX_QUEUED`` behind loses
the oldest ones rather than the server's memory.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator, Collection, Mapping
from dataclasses import dataclass

from resolvers.messages import BadgeCause, BadgeChange, Message, user_channel
from resolvers.push import push_text
from resolvers.streams.catalogue import CatalogueWatch
from resolvers.streams.hub import Hub
from storage import catalogue
from storage.catalogue import AppRule
from storage.db import Database

MAX_QUEUED = 100


@dataclass(frozen=True, slots=True)
class NotificationData:
    """One notice as the user sees it: ``text`` names the app (SPEC §4); ``unread`` is the
    app's count after it and ``version`` the user's badge version."""

    app_id: int
    app_name: str
    text: str
    unread: int
    version: int


class NotificationStream:
    """One subscriber's notifications; the object is the hub's ``MessageListener`` of the
    user's channel and a ``CatalogueListener`` (to forget renamed apps' cached names)."""

    def __init__(
        self, *, db: Database, hub: Hub, watch: CatalogueWatch, cid: int, uid: int
    ) -> None:
        self._db = db
        self._hub = hub
        self._watch = watch
        self._cid = cid
        self._uid = uid
        self._queue: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=MAX_QUEUED)
        self._wake = asyncio.Event()
        self._names: dict[int, str] = {}

    def deliver(self, message: Message) -> None:
        """Take a NOTICE change's apps; other messages are not notifications."""
        if not isinstance(message, BadgeChange) or message.cause is not BadgeCause.NOTICE:
            return
        for app_id, unread in message.badges:
            self._queue.append((app_id, unread, message.version))
        self._wake.set()

    def resync(self) -> None:
        """Lost messages are lost notifications: nothing to reload."""

    def catalogue_baseline(self) -> int:
        """Every change matters to the name cache."""
        return 0

    def known_app_ids(self) -> set[int]:
        """The apps whose names are cached."""
        return set(self._names)

    def catalogue_changed(self, app_ids: Collection[int], rules: Mapping[int, AppRule]) -> None:
        """Forget the cached names of changed apps."""
        for app_id in app_ids:
            self._names.pop(app_id, None)

    async def _name(self, app_id: int) -> str | None:
        name = self._names.get(app_id)
        if name is None:
            async with self._db.read() as session:
                app = await catalogue.get_app(session, app_id)
            if app is None:
                return None
            if len(self._names) > 1000:
                self._names.clear()
            name = self._names[app_id] = app.name
        return name

    async def events(self) -> AsyncGenerator[NotificationData, None]:
        """Notifications in order, until closed."""
        with self._watch.register(self):
            async with self._hub.listen(user_channel(self._cid, self._uid), self):
                while True:
                    await self._wake.wait()
                    self._wake.clear()
                    while self._queue:
                        app_id, unread, version = self._queue.popleft()
                        name = await self._name(app_id)
                        if name is None:  # deleted meanwhile
                            continue
                        yield NotificationData(
                            app_id=app_id,
                            app_name=name,
                            text=push_text(name),
                            unread=unread,
                            version=version,
                        )

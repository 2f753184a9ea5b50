"""The ``workbenchChanged`` stream (issue 3 item 6): the apps on one user's workbench for one
platform, as administrators' changes and the user's own removals change them.

It follows the catalogue through the process's ``CatalogueWatch`` (no database read per change)
and the user's channel, where a removal or restore arrives as a ``Reload``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator, Collection, Iterable, Mapping
from dataclasses import dataclass

from resolvers.messages import Message, Reload, user_channel
from resolvers.streams.catalogue import CatalogueWatch
from resolvers.streams.hub import Hub
from storage import catalogue
from storage.catalogue import AppRule
from storage.db import Database
from storage.models import Platform


class WorkbenchChangeKind(enum.StrEnum):
    """What happened to apps of a user's workbench (``workbenchChanged``)."""

    SNAPSHOT = "SNAPSHOT"
    ADDED = "ADDED"
    CHANGED = "CHANGED"
    REMOVED = "REMOVED"


@dataclass(frozen=True, slots=True)
class WorkbenchChangeData:
    """One ``workbenchChanged`` event: for SNAPSHOT every app id on the workbench, otherwise
    the apps that were added, changed (still shown, something about them changed) or removed
    (hidden, disabled, deleted, taken off the platform, or removed by the user)."""

    platform: Platform
    kind: WorkbenchChangeKind
    app_ids: list[int]


class WorkbenchChangeStream:
    """The apps on one user's workbench for one platform, as they change (issue 3 item 6).

    Follows the catalogue (``CatalogueListener``) and the user's channel (removals and
    restores arrive there as ``Reload``). State is the set of app ids shown, so memory
    is bounded by the catalogue; a slow client gets the net difference, not a queue.
    """

    def __init__(
        self,
        *,
        db: Database,
        hub: Hub,
        watch: CatalogueWatch,
        cid: int,
        uid: int,
        platform: Platform,
    ) -> None:
        self._db = db
        self._hub = hub
        self._watch = watch
        self._cid = cid
        self._uid = uid
        self._platform = platform
        self._wake = asyncio.Event()
        self._loading = False
        self._reload = False
        self._snapshot_due = False
        self._visible: set[int] = set()
        self._removed: set[int] = set()
        self._changed: set[int] = set()
        self._baseline = 0

    def deliver(self, message: Message) -> None:
        """Hub ``MessageListener`` of the user's channel: a ``Reload`` means the user removed
        or restored an app; badge changes are not this stream's business."""
        if isinstance(message, Reload):
            self._reload = True
            self._wake.set()

    def resync(self) -> None:
        """Messages may have been lost: reload and send a SNAPSHOT."""
        self._snapshot_due = True
        self._wake.set()

    def known_app_ids(self) -> set[int]:
        """The apps this stream shows (for "everything changed" checks)."""
        return set(self._visible)

    def catalogue_baseline(self) -> int:
        """The catalogue watch's sequence when this stream last loaded its state."""
        return self._baseline

    def catalogue_changed(self, app_ids: Collection[int], rules: Mapping[int, AppRule]) -> None:
        """``CatalogueListener``: update the shown set in memory from the new rules."""
        if self._loading:
            self._reload = True
        for app_id in app_ids:
            rule = rules.get(app_id)
            shows = rule is not None and rule.shows(
                self._cid, self._platform, removed=app_id in self._removed
            )
            if shows:
                self._visible.add(app_id)
                self._changed.add(app_id)
            else:
                self._visible.discard(app_id)
        self._wake.set()

    async def _load(self) -> None:
        self._loading = True
        self._reload = False
        self._baseline = self._watch.sequence()
        try:
            async with self._db.read() as session:
                visible = await catalogue.visible_app_ids(
                    session, cid=self._cid, uid=self._uid, platform=self._platform
                )
                removed = await catalogue.removed_app_ids(session, cid=self._cid, uid=self._uid)
        finally:
            self._loading = False
        self._visible, self._removed = visible, removed

    def _event(self, kind: WorkbenchChangeKind, ids: Iterable[int]) -> WorkbenchChangeData:
        return WorkbenchChangeData(platform=self._platform, kind=kind, app_ids=sorted(ids))

    async def events(self) -> AsyncGenerator[WorkbenchChangeData, None]:
        """A SNAPSHOT of the app ids shown, then ADDED / CHANGED / REMOVED events as they
        happen (several kinds at once come as several events: REMOVED, ADDED, CHANGED)."""
        channel = user_channel(self._cid, self._uid)
        with self._watch.register(self):
            async with self._hub.listen(channel, self):
                await self._load()
                shown = set(self._visible)
                self._changed.clear()
                yield self._event(WorkbenchChangeKind.SNAPSHOT, shown)
                while True:
                    await self._wake.wait()
                    self._wake.clear()
                    if self._snapshot_due:
                        self._snapshot_due = False
                        await self._load()
                        shown = set(self._visible)
                        self._changed.clear()
                        yield self._event(WorkbenchChangeKind.SNAPSHOT, shown)
                        continue
                    if self._reload:
                        await self._load()
                    visible = set(self._visible)
                    removed, added = shown - visible, visible - shown
                    changed = self._changed & visible & shown
                    self._changed.clear()
                    shown = visible
                    for kind, ids in (
                        (WorkbenchChangeKind.REMOVED, removed),
                        (WorkbenchChangeKind.ADDED, added),
                        (WorkbenchChangeKind.CHANGED, changed),
                    ):
                        if ids:
                            yield self._event(kind, ids)

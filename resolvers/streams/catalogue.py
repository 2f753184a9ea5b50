"""Live catalogue: administrators' changes reach connected clients (issue 3 items 2 and 6).

After an administrative change commits, its resolver publishes a
``resolvers.messages.CatalogueChange`` naming the apps it touched on one channel,
``CATALOGUE_CHANNEL`` (``resolvers.catalogue_events.publish_change``).

Each process holds one ``CatalogueWatch``: the only listener of that channel. For each batch of
changed apps it reads their visibility rules (``storage.catalogue.AppRule``) in one query and
hands them to every local stream, which decides in memory whether its user now sees more or
fewer apps. So a change seen by 10,000 connected clients costs one database read per process,
not one per client (no thundering herd). The watch also caches the apps' legacy access rules
(``AppAccess``) and drops an app's entry when a change of it is announced.

A badge stream that shows a user's state anew because of such a change (a SNAPSHOT) needs a
version above the last one it sent (SPEC §7: strictly increasing): the watch also hands out
fresh versions (``fresh_version``), coalescing the requests of every stream woken by the same
change into one write, so a change seen by 10,000 clients costs one statement per process
there too.

Streams that take these changes implement ``CatalogueListener``: ``BadgeStream``
(``resolvers.streams.badges``: a SNAPSHOT when the set of counted apps changes),
``WorkbenchChangeStream`` (``resolvers.streams.workbench``) and ``NotificationStream``
(``resolvers.streams.notifications``: forgets renamed apps' names).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from resolvers.messages import CATALOGUE_CHANNEL, CatalogueChange, Message
from resolvers.streams.hub import Hub
from storage import badges as badge_store
from storage import catalogue
from storage.catalogue import AppRule
from storage.db import Database

STOP_TIMEOUT_S = 5.0
logger = logging.getLogger("workbench.catalogue")

# Past this many pending ids, the watch re-checks every app instead of listing them.
MAX_PENDING_IDS = 1000
# Pause after a failed rule read before trying again (the database may be restarting).
RETRY_DELAY_S = 1.0
# Apps whose access rules are cached (beyond this the cache starts over), and for how long.
MAX_CACHED_APPS = 100_000
ACCESS_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class AppAccess:
    """What the legacy endpoints check before anything else (SPEC §6, §8): whether the app is
    enabled, in signed mode, and its IP allowlist."""

    enabled: bool
    legacy_signed: bool
    ip_allowlist: str | None

    @property
    def open(self) -> bool:
        """Enabled, unsigned and without an allowlist: the seed's behaviour, nothing to check."""
        return self.enabled and not self.legacy_signed and self.ip_allowlist is None


class CatalogueListener(Protocol):
    """A local stream that follows catalogue changes. Runs on the event loop; must not block.

    ``catalogue_baseline()`` is the watch's ``sequence()`` taken when the stream last read its
    state from the database: changes announced up to then are already in that state, so the
    watch hands the stream only later ones (no spurious events for a change the stream's
    first read already saw).
    """

    def catalogue_baseline(self) -> int:
        """The watch sequence number this listener's state includes."""

    def known_app_ids(self) -> set[int]:
        """The apps the listener shows (checked too when "everything" changed)."""

    def catalogue_changed(self, app_ids: Collection[int], rules: Mapping[int, AppRule]) -> None:
        """Apps ``app_ids`` changed; ``rules`` has the current rule of those that still exist
        (an id without a rule was deleted)."""


class CatalogueWatch:
    """The process's single listener of ``CATALOGUE_CHANNEL`` (see module docstring).

    ``start()`` once (application lifespan), ``close()`` at shutdown; ``register(listener)``
    around a stream's life. Every message received gets the next sequence number; pending
    work maps each changed app id to the newest message naming it (bounded by the catalogue
    size, or a single "everything" mark), so a burst of changes coalesces into one read.
    """

    def __init__(self, db: Database, hub: Hub) -> None:
        self._db = db
        self._hub = hub
        self._listeners: set[CatalogueListener] = set()
        self._sequence = 0
        self._pending: dict[int, int] = {}
        self._everything: int | None = None
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # app id -> (monotonic expiry, its access rules or None: no such app); dropped as
        # change messages arrive, and stale after ACCESS_TTL_S for changes made out of band
        # (``workbench catalogue import``, another process without a shared broker).
        self._access: dict[int, tuple[float, AppAccess | None]] = {}
        # Users waiting for a fresh badge version, each with the futures to answer.
        self._bumps: dict[tuple[int, int], list[asyncio.Future[int]]] = {}
        self._bump_task: asyncio.Task[None] | None = None

    def sequence(self) -> int:
        """The number of change messages received so far (see ``CatalogueListener``)."""
        return self._sequence

    async def app_access(self, app_id: int) -> AppAccess | None:
        """The access rules of app ``app_id`` (``None`` when it does not exist), cached until
        a change of the app is announced (at most ``ACCESS_TTL_S``), so the legacy endpoints'
        hot path reads nothing."""
        now = time.monotonic()
        cached = self._access.get(app_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._db.read() as session:
            app = await catalogue.get_app(session, app_id)
        found = (
            None
            if app is None
            else AppAccess(
                enabled=app.enabled, legacy_signed=app.legacy_signed, ip_allowlist=app.ip_allowlist
            )
        )
        if len(self._access) >= MAX_CACHED_APPS:
            self._access.clear()
        self._access[app_id] = (now + ACCESS_TTL_S, found)
        return found

    async def fresh_version(self, cid: int, uid: int) -> int:
        """Raise user ``(cid, uid)``'s stored badge version by one, counts untouched, and return
        it (``storage.badges.bump_versions``). Requests made while a write is pending share
        the next write: one statement for all the streams one change woke, and one version
        for every stream of a user. Raises what the database raises."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._bumps.setdefault((cid, uid), []).append(future)
        if self._bump_task is None or self._bump_task.done():
            self._bump_task = asyncio.create_task(self._write_bumps(), name="badge-versions")
        return await future

    async def _write_bumps(self) -> None:
        while self._bumps:
            await asyncio.sleep(0)  # let the other streams woken by the same change ask too
            batch, self._bumps = self._bumps, {}
            try:
                async with self._db.write() as session:
                    versions = await badge_store.bump_versions(session, batch.keys())
            except Exception as error:
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                continue
            for user, futures in batch.items():
                for future in futures:
                    if not future.done():
                        future.set_result(versions[user])

    async def start(self) -> None:
        """Start listening; returns once the channel is subscribed."""
        self._task = asyncio.create_task(self._run(), name="catalogue-watch")
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:  # failed to subscribe: surface the error
            ready.cancel()
            self._task.result()

    async def close(self) -> None:
        """Stop listening and forget every listener."""
        if self._task is not None:
            self._task.cancel()
            # Bounded: a cancellation swallowed by a driver must not hang shutdown.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
            self._task = None
        if self._bump_task is not None:
            self._bump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._bump_task), STOP_TIMEOUT_S)
            self._bump_task = None
        self._listeners.clear()

    @contextlib.contextmanager
    def register(self, listener: CatalogueListener) -> Iterator[None]:
        """Hand catalogue changes to ``listener`` while the block runs."""
        self._listeners.add(listener)
        try:
            yield
        finally:
            self._listeners.discard(listener)

    def listener_count(self) -> int:
        """How many streams follow the catalogue in this process (tests, metrics)."""
        return len(self._listeners)

    def deliver(self, message: Message) -> None:
        """Hub ``MessageListener``: take one change; other messages are logged and dropped."""
        if not isinstance(message, CatalogueChange):
            logger.warning("dropped a %s on the catalogue channel", type(message).__name__)
            return
        self._sequence += 1
        ids = message.app_ids
        if message.everything or len(self._pending) + len(ids) > MAX_PENDING_IDS:
            self._mark_everything()
            return
        for app_id in ids:
            self._pending[app_id] = self._sequence
            self._access.pop(app_id, None)
        self._wake.set()

    def resync(self) -> None:
        """Hub ``MessageListener``: messages may have been lost, so re-check every app."""
        self._sequence += 1
        self._mark_everything()

    def _mark_everything(self) -> None:
        self._everything = self._sequence
        self._pending.clear()
        self._access.clear()
        self._wake.set()

    async def _run(self) -> None:
        async with self._hub.listen(CATALOGUE_CHANNEL, self):
            self._ready.set()
            while True:
                await self._wake.wait()
                self._wake.clear()
                everything, pending = self._everything, self._pending
                self._everything, self._pending = None, {}
                try:
                    async with self._db.read() as session:
                        wanted = None if everything is not None else list(pending)
                        rules = await catalogue.app_rules(session, wanted)
                except Exception:
                    logger.exception("could not read app rules; retrying")
                    if everything is not None:
                        self._everything = max(everything, self._everything or 0)
                    else:
                        for app_id, seq in pending.items():
                            self._pending[app_id] = max(seq, self._pending.get(app_id, 0))
                    await asyncio.sleep(RETRY_DELAY_S)
                    self._wake.set()
                    continue
                self._apply(everything, pending, rules)

    def _apply(
        self, everything: int | None, pending: Mapping[int, int], rules: Mapping[int, AppRule]
    ) -> None:
        for listener in tuple(self._listeners):
            try:
                baseline = listener.catalogue_baseline()
                if everything is not None:
                    changed = (
                        set(rules) | listener.known_app_ids() if everything > baseline else set()
                    )
                else:
                    changed = {app_id for app_id, seq in pending.items() if seq > baseline}
                if changed:
                    listener.catalogue_changed(changed, rules)
            except Exception:  # one broken stream must not starve the others
                logger.exception("catalogue listener failed")

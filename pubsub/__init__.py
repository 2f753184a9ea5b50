"""The broker that carries badge events from the process that commits a change to every process
holding a subscriber of that user (SPEC §4; STYLE "Fan-out").

Shape, fit for an in-process backend and for Redis pub/sub alike:

- Channels are per user: ``user_channel(cid, uid)``, plus ``CATALOGUE_CHANNEL`` for catalogue
  changes (one listener per process). Messages are opaque ``bytes``, encoded once
  by the publisher and handed to every local listener as they are.
- ``publish(batch)`` takes many ``(channel, message)`` pairs at once (one pipeline on Redis), and
  is called only after the transaction that produced them has committed.
- ``listen(channel, listener)`` is an async context manager: interest in the channel lasts as
  long as the block (reference-counted per process on Redis). ``Listener.deliver`` is called
  synchronously on the event loop for each message, so it must be quick and bounded; listeners
  merge, they never queue without bound. ``Listener.resync`` is called when messages may have been
  lost (a reconnect): the listener reloads its state from the database.

Backends are chosen by URL: ``memory://`` (one process) or ``redis://`` / ``rediss://``
(``pubsub.redis_broker``, several processes and machines). Other schemes are refused by
``create_broker`` with ``ValueError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

# Administrative catalogue changes, for every process (``resolvers.catalogue_events``).
CATALOGUE_CHANNEL = "wb:catalogue"


def user_channel(cid: int, uid: int) -> str:
    """The channel of user ``(cid, uid)``'s badge events."""
    return f"wb:user:{cid}:{uid}"


class Listener(Protocol):
    """Receives a channel's messages. Both methods run on the event loop and must not block."""

    def deliver(self, message: bytes) -> None:
        """Take one message, as published."""

    def resync(self) -> None:
        """Messages may have been lost: reload state before trusting later messages."""


class Broker(Protocol):
    """Publish/subscribe between processes; see the module docstring for the contract."""

    async def start(self) -> None:
        """Connect; called once from the application lifespan."""

    async def close(self) -> None:
        """Disconnect and drop every listener."""

    async def publish(self, batch: Iterable[tuple[str, bytes]]) -> None:
        """Send each ``(channel, message)``; order is kept per channel."""

    def listen(self, channel: str, listener: Listener) -> AbstractAsyncContextManager[None]:
        """Deliver ``channel``'s messages to ``listener`` while the block runs."""


class MemoryBroker:
    """In-process broker (``memory://``): delivers to local listeners synchronously.

    Memory is bounded by the listeners themselves: a channel entry exists only while it has one.
    """

    def __init__(self) -> None:
        self._channels: dict[str, set[Listener]] = {}

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Forget every listener."""
        self._channels.clear()

    async def publish(self, batch: Iterable[tuple[str, bytes]]) -> None:
        """Hand each message to the channel's current listeners, in order."""
        channels = self._channels
        for channel, message in batch:
            listeners = channels.get(channel)
            if listeners:
                for listener in tuple(listeners):
                    listener.deliver(message)

    @asynccontextmanager
    async def _listen(self, channel: str, listener: Listener) -> AsyncIterator[None]:
        self._channels.setdefault(channel, set()).add(listener)
        try:
            yield
        finally:
            listeners = self._channels.get(channel)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._channels[channel]

    def listen(self, channel: str, listener: Listener) -> AbstractAsyncContextManager[None]:
        """Register ``listener`` on ``channel`` for the duration of the block."""
        return self._listen(channel, listener)

    def listener_count(self) -> int:
        """How many listeners are registered, over all channels (for tests and metrics)."""
        return sum(len(listeners) for listeners in self._channels.values())

    def channel_count(self) -> int:
        """How many channels have listeners (metrics)."""
        return len(self._channels)


def create_broker(url: str) -> Broker:
    """The broker for ``url``. Raises ``ValueError`` for an unknown scheme."""
    if url == "memory://":
        return MemoryBroker()
    if url.startswith(("redis://", "rediss://")):
        from pubsub.redis_broker import RedisBroker

        return RedisBroker(url)
    raise ValueError(f"unsupported broker URL scheme: {url.split('://', 1)[0]!r}")

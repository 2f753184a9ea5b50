"""The process's one listener per broker channel (STYLE "Messages", "Fan-out").

Every live stream of a process wants the messages of one or two channels (its user's, the
catalogue's); several streams often share a channel (a user's badges on two devices, their
``workbenchChanged`` and ``notifications``). The ``Hub`` sits between them and the broker:

- a channel is listened to on the broker once, while at least one local listener wants it
  (reference counted), so the broker sees one ``Listener`` per channel, not one per stream;
- each message is decoded once (``resolvers.messages.decode``) and the decoded message handed
  to every local listener of the channel; bytes that do not decode are logged and dropped;
- the broker's ``resync()`` (messages may have been lost) is fanned out to the same listeners.

One ``Hub`` per process, created in the application lifespan over its broker and handed to
resolvers as the broker is. Like the broker, it calls listeners synchronously on the event
loop: their methods must be quick and bounded, and one listener's failure is logged without
keeping the message from the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from resolvers.broker import Broker
from resolvers.messages import MalformedMessage, Message, decode

logger = logging.getLogger("workbench.streams")


class MessageListener(Protocol):
    """A local stream's side of a channel. Both methods run on the event loop and must not
    block."""

    def deliver(self, message: Message) -> None:
        """Take one decoded message of the channel."""

    def resync(self) -> None:
        """Messages may have been lost: reload state before trusting later messages."""


class _Channel:
    """The broker ``Listener`` of one channel, and the local listeners it serves."""

    __slots__ = ("_context", "_settled", "listeners", "name", "opened", "settling")

    def __init__(self, name: str) -> None:
        self.name = name
        # Served in the order they arrived; a list, as most channels have one listener (a
        # one-item list is a third of a one-item dict or set, per connected user).
        self.listeners: list[MessageListener] = []
        self.opened = False
        self.settling = True  # until opening ended, whether or not it worked
        # Made only when a listener has to wait for the opening (an Event is ~0.8 KiB, and
        # there is a channel per connected user).
        self._settled: asyncio.Event | None = None
        self._context: AbstractAsyncContextManager[None] | None = None

    async def open(self, broker: Broker) -> None:
        context = broker.listen(self.name, self)
        try:
            await context.__aenter__()
            self._context, self.opened = context, True
        finally:
            self.settling = False
            if self._settled is not None:
                self._settled.set()

    async def settled(self) -> None:
        """Return once the opening ended (see ``opened`` for how)."""
        if self.settling:
            if self._settled is None:
                self._settled = asyncio.Event()
            await self._settled.wait()

    def leave(self, listener: MessageListener) -> None:
        """Stop serving ``listener`` (once, if it joined more than once)."""
        with contextlib.suppress(ValueError):
            self.listeners.remove(listener)

    async def close(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            await context.__aexit__(None, None, None)

    def deliver(self, message: bytes) -> None:
        try:
            decoded = decode(message)
        except MalformedMessage as error:
            logger.warning("dropped a malformed message on %s: %s", self.name, error)
            return
        for listener in tuple(self.listeners):
            try:
                listener.deliver(decoded)
            except Exception:  # one broken stream must not starve the others
                logger.exception("a listener of %s failed", self.name)

    def resync(self) -> None:
        for listener in tuple(self.listeners):
            try:
                listener.resync()
            except Exception:
                logger.exception("a listener of %s failed to resync", self.name)


class Hub:
    """Decoded messages for local listeners, one broker listener per channel (module
    docstring)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._channels: dict[str, _Channel] = {}

    def listen(self, channel: str, listener: MessageListener) -> AbstractAsyncContextManager[None]:
        """Hand ``channel``'s decoded messages to ``listener`` while the block runs. The block
        starts once the broker listens to the channel (as ``Broker.listen`` promises), and
        raises what the broker raised if it could not."""
        return _Subscription(self, channel, listener)

    def listener_count(self) -> int:
        """Local listeners, over all channels (tests and metrics)."""
        return sum(len(channel.listeners) for channel in self._channels.values())

    def channel_count(self) -> int:
        """Channels listened to on the broker (tests and metrics)."""
        return len(self._channels)

    async def _leave(self, channel: _Channel, listener: MessageListener) -> None:
        channel.leave(listener)
        if not channel.listeners and self._channels.get(channel.name) is channel:
            # Forgotten before the broker is told, so a listener arriving meanwhile opens a
            # fresh channel rather than joining one being closed.
            del self._channels[channel.name]
            await channel.close()

    async def _join(self, name: str, listener: MessageListener) -> _Channel:
        while True:
            channel = self._channels.get(name)
            if channel is None:
                channel = self._channels[name] = _Channel(name)
                channel.listeners.append(listener)
                try:
                    await channel.open(self._broker)
                except BaseException:
                    channel.leave(listener)
                    if self._channels.get(name) is channel:
                        del self._channels[name]
                    raise
                return channel
            channel.listeners.append(listener)
            if channel.opened:
                return channel
            try:
                await channel.settled()
            except BaseException:
                channel.leave(listener)
                raise
            if channel.opened:
                return channel
            # The first listener's opening failed: leave that channel and open one anew.
            channel.leave(listener)


class _Subscription:
    """``Hub.listen``'s context manager. A class rather than ``@asynccontextmanager``: one
    lives as long as each live stream, and a suspended generator costs about 0.5 KiB more."""

    __slots__ = ("_channel", "_hub", "_listener", "_name")

    def __init__(self, hub: Hub, name: str, listener: MessageListener) -> None:
        self._hub = hub
        self._name = name
        self._listener = listener
        self._channel: _Channel | None = None

    async def __aenter__(self) -> None:
        self._channel = await self._hub._join(self._name, self._listener)

    async def __aexit__(self, *_: object) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await self._hub._leave(channel, self._listener)

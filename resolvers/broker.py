"""The broker port: how resolvers hand badge and catalogue events to every process holding a
subscriber (SPEC §4; STYLE "Fan-out"). The backends (``memory://``, ``redis://``) live in the
service shell (``imworkbench.brokers``); resolvers only see this protocol.

Shape, fit for an in-process backend and for Redis pub/sub alike:

- Channels are per user, plus one for catalogue changes; their names and the messages' format
  are ``resolvers.messages``. To the broker, messages are opaque ``bytes``, encoded once by
  the publisher; each process's ``resolvers.streams.hub.Hub`` is the one listener of a channel
  and decodes them once for its local streams.
- ``publish(batch)`` takes many ``(channel, message)`` pairs at once (one pipeline on Redis), and
  is called only after the transaction that produced them has committed.
- ``listen(channel, listener)`` is an async context manager: interest in the channel lasts as
  long as the block (reference-counted per process on Redis). ``Listener.deliver`` is called
  synchronously on the event loop for each message, so it must be quick and bounded; listeners
  merge, they never queue without bound. ``Listener.resync`` is called when messages may have been
  lost (a reconnect): the listener reloads its state from the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Protocol


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

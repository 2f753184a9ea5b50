"""Broker backends, chosen by URL: ``memory://`` (one process, ``MemoryBroker``) or
``redis://`` / ``rediss://`` (``imworkbench.brokers.redis``, several processes and machines).
Other schemes are refused by ``create_broker`` with ``ValueError``. The protocol they implement
is the resolvers' port, ``resolvers.broker``; the channel names and the bytes they carry are
``resolvers.messages``, and each process's one listener per channel is
``resolvers.streams.hub.Hub``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

from resolvers.broker import Broker, Listener

if TYPE_CHECKING:
    from imworkbench.http.health import Metrics


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
        from imworkbench.brokers.redis import RedisBroker

        return RedisBroker(url)
    raise ValueError(f"unsupported broker URL scheme: {url.split('://', 1)[0]!r}")


class InstrumentedBroker:
    """A ``Broker`` that times ``publish`` (delegates everything)."""

    def __init__(self, broker: Broker, metrics: Metrics) -> None:
        self.inner = broker
        self._metrics = metrics

    async def start(self) -> None:
        """Start the inner broker."""
        await self.inner.start()

    async def close(self) -> None:
        """Close the inner broker."""
        await self.inner.close()

    async def publish(self, batch: Iterable[tuple[str, bytes]]) -> None:
        """Publish through the inner broker, timed."""
        started = time.perf_counter()
        await self.inner.publish(batch)
        self._metrics.publish_seconds.observe(time.perf_counter() - started)

    def listen(self, channel: str, listener: Listener) -> AbstractAsyncContextManager[None]:
        """Listen through the inner broker."""
        return self.inner.listen(channel, listener)

    def listener_count(self) -> int:
        """Listeners of the inner broker (for tests and metrics)."""
        count = getattr(self.inner, "listener_count", None)
        return int(count()) if callable(count) else 0

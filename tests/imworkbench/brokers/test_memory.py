"""The in-process broker: per-channel delivery, interest bounded by listeners (brokers)."""

from __future__ import annotations

import pytest

from imworkbench.brokers import MemoryBroker, create_broker
from resolvers.messages import user_channel


class Collector:
    """A listener that records what it receives."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.resyncs = 0

    def deliver(self, message: bytes) -> None:
        """Record a message."""
        self.messages.append(message)

    def resync(self) -> None:
        """Count a resync."""
        self.resyncs += 1


async def test_delivers_only_to_the_channel_listeners():
    """A message reaches every listener of its channel, in order, and no other."""
    broker = MemoryBroker()
    a, b, other = Collector(), Collector(), Collector()
    async with (
        broker.listen(user_channel(1, 2), a),
        broker.listen(user_channel(1, 2), b),
        broker.listen(user_channel(1, 3), other),
    ):
        await broker.publish([(user_channel(1, 2), b"one"), (user_channel(1, 2), b"two")])
    assert a.messages == b.messages == [b"one", b"two"]
    assert other.messages == []


async def test_channel_entries_disappear_with_their_listeners():
    """Leaving the listen block removes the listener; no empty channel is kept."""
    broker = MemoryBroker()
    collector = Collector()
    async with broker.listen("c", collector):
        assert broker.listener_count() == 1
    assert broker.listener_count() == 0
    assert broker._channels == {}
    await broker.publish([("c", b"late")])
    assert collector.messages == []


def test_create_broker_by_url():
    """memory:// gives the in-process broker; other schemes are refused."""
    assert isinstance(create_broker("memory://"), MemoryBroker)
    with pytest.raises(ValueError, match="unsupported broker"):
        create_broker("nats://localhost")


def test_user_channel_names():
    """User channels are namespaced and distinct per (cid, uid)."""
    assert user_channel(1001, 1034) == "wb:user:1001:1034"
    assert user_channel(1, 11) != user_channel(11, 1)

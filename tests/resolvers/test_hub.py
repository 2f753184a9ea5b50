"""The per-process hub (resolvers/streams/hub.py): one broker listener per channel, reference
counted; each message decoded once and the same decoded message handed to every local
listener; malformed bytes dropped; resync fanned out; one failing listener harms no other."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import pytest

from imworkbench.brokers import MemoryBroker, create_broker
from imworkbench.brokers.redis import RESYNC_MARK, RedisBroker
from resolvers.broker import Broker, Listener
from resolvers.messages import RELOAD, BadgeCause, BadgeChange, Message, user_channel
from resolvers.streams.hub import Hub
from tests.factories import REDIS_URL, TIMEOUT

CHANNEL = user_channel(1001, 1034)
OTHER = user_channel(1001, 1035)
CHANGE = BadgeChange(BadgeCause.NOTICE, 4, 2, ((12, 2),))


class Recorder:
    """A hub listener that records what it is handed."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.resyncs = 0
        self.arrived = asyncio.Event()

    def deliver(self, message: Message) -> None:
        """Record one decoded message."""
        self.messages.append(message)
        self.arrived.set()

    def resync(self) -> None:
        """Count a resync."""
        self.resyncs += 1
        self.arrived.set()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds."""
        async with asyncio.timeout(TIMEOUT):
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()


class Failing(Recorder):
    """A listener whose every method raises after recording."""

    def deliver(self, message: Message) -> None:
        """Record, then fail."""
        super().deliver(message)
        raise RuntimeError("broken stream")

    def resync(self) -> None:
        """Count, then fail."""
        super().resync()
        raise RuntimeError("broken stream")


async def until(predicate: Callable[[], bool]) -> None:
    """Let other tasks run until ``predicate()`` holds (within the test timeout): the hub's
    counts change without an event to wait on."""
    async with asyncio.timeout(TIMEOUT):
        for _ in itertools.count():
            if predicate():
                return
            await asyncio.sleep(0)


def redis_url() -> str:
    """The test Redis, in a namespace of this test's own."""
    return f"{REDIS_URL}?namespace=test-hub-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", "redis"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """A started broker of each kind (Redis: the test Redis, fails when it is down)."""
    started = create_broker("memory://" if request.param == "memory" else redis_url())
    await started.start()
    if isinstance(started, RedisBroker):
        assert started.connected, f"these tests need Redis at {REDIS_URL}"
    yield started
    await started.close()


async def test_one_broker_listener_per_channel(broker):
    """The broker holds one listener per channel, released with the channel's last local one."""
    hub = Hub(broker)
    first, second, other = Recorder(), Recorder(), Recorder()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(hub.listen(CHANNEL, first))
        await stack.enter_async_context(hub.listen(CHANNEL, second))
        async with hub.listen(OTHER, other):
            assert (broker.listener_count(), hub.listener_count(), hub.channel_count()) == (
                2,
                3,
                2,
            )
        assert (broker.listener_count(), hub.listener_count(), hub.channel_count()) == (1, 2, 1)
    assert (broker.listener_count(), hub.listener_count(), hub.channel_count()) == (0, 0, 0)


async def test_each_message_is_decoded_once_for_every_listener(broker):
    """A channel's listeners all get the very same decoded message, in order; others get none."""
    hub = Hub(broker)
    first, second, other = Recorder(), Recorder(), Recorder()
    async with hub.listen(CHANNEL, first), hub.listen(CHANNEL, second), hub.listen(OTHER, other):
        await broker.publish([(CHANNEL, CHANGE.encode()), (CHANNEL, RELOAD.encode())])
        await second.wait(lambda: len(second.messages) == 2)
    assert first.messages == [CHANGE, RELOAD]
    assert all(a is b for a, b in zip(first.messages, second.messages, strict=True))
    assert other.messages == []


async def test_malformed_bytes_are_logged_and_dropped(broker, caplog):
    """Bytes that do not decode reach no listener, are logged once, and stop nothing after them."""
    hub = Hub(broker)
    first, second = Recorder(), Recorder()
    with caplog.at_level(logging.WARNING, logger="workbench.streams"):
        async with hub.listen(CHANNEL, first), hub.listen(CHANNEL, second):
            await broker.publish([(CHANNEL, b'{"c":"LOUD"}'), (CHANNEL, CHANGE.encode())])
            await second.wait(lambda: bool(second.messages))
    assert first.messages == second.messages == [CHANGE]
    dropped = [r for r in caplog.records if "dropped a malformed message" in r.getMessage()]
    assert len(dropped) == 1
    assert CHANNEL in dropped[0].getMessage()


async def test_a_failing_listener_does_not_starve_the_others(broker, caplog):
    """A listener that raises is logged; the listeners after it still get the message."""
    hub = Hub(broker)
    failing, healthy = Failing(), Recorder()
    with caplog.at_level(logging.ERROR, logger="workbench.streams"):
        async with hub.listen(CHANNEL, failing), hub.listen(CHANNEL, healthy):
            await broker.publish([(CHANNEL, CHANGE.encode())])
            await healthy.wait(lambda: bool(healthy.messages))
    assert failing.messages == healthy.messages == [CHANGE]
    assert any("a listener of" in r.getMessage() for r in caplog.records)


async def test_resync_reaches_every_local_listener():
    """Another process's resync mark reaches each local listener of that channel once."""
    url = redis_url()
    here, there = RedisBroker(url), RedisBroker(url)
    await here.start()
    await there.start()
    try:
        hub = Hub(here)
        first, second, other = Recorder(), Recorder(), Recorder()
        async with (
            hub.listen(CHANNEL, first),
            hub.listen(CHANNEL, second),
            hub.listen(OTHER, other),
        ):
            await there.publish([(CHANNEL, RESYNC_MARK), (CHANNEL, CHANGE.encode())])
            await second.wait(lambda: bool(second.messages))
        assert (first.resyncs, second.resyncs, other.resyncs) == (1, 1, 0)
        assert first.messages == second.messages == [CHANGE]
    finally:
        await there.close()
        await here.close()


class GatedBroker(MemoryBroker):
    """The in-process broker, whose ``listen`` waits for ``gate`` before it starts: a broker
    still subscribing (Redis over a slow link)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.listens = 0

    def listen(self, channel: str, listener: Listener) -> AbstractAsyncContextManager[None]:
        """Count, wait for the gate, then listen."""
        return self._gated(channel, listener)

    @asynccontextmanager
    async def _gated(self, channel: str, listener: Listener) -> AsyncIterator[None]:
        self.listens += 1
        await self.gate.wait()
        async with super().listen(channel, listener):
            yield


async def test_a_second_listener_waits_until_the_channel_is_listened_to():
    """A listener arriving mid-subscribe starts with the first one, sharing one broker listen."""
    broker = GatedBroker()
    hub = Hub(broker)
    first, second = Recorder(), Recorder()
    entered: list[str] = []

    async def follow(name: str, listener: Recorder) -> None:
        async with hub.listen(CHANNEL, listener):
            entered.append(name)
            await listener.wait(lambda: bool(listener.messages))

    tasks = [asyncio.create_task(follow("first", first))]
    await until(lambda: broker.listens == 1)
    tasks.append(asyncio.create_task(follow("second", second)))
    await until(lambda: hub.listener_count() == 2)
    assert entered == []
    broker.gate.set()
    await until(lambda: len(entered) == 2)
    await broker.publish([(CHANNEL, CHANGE.encode())])
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert broker.listens == 1
    assert (broker.listener_count(), hub.listener_count()) == (0, 0)


async def test_a_waiting_listener_takes_over_when_the_first_gives_up():
    """If the first listener is cancelled mid-subscribe, a waiting one subscribes and is served."""
    broker = GatedBroker()
    hub = Hub(broker)
    first, second = Recorder(), Recorder()

    async def follow(listener: Recorder) -> None:
        async with hub.listen(CHANNEL, listener):
            await listener.wait(lambda: bool(listener.messages))

    opener = asyncio.create_task(follow(first))
    await until(lambda: broker.listens == 1)
    waiter = asyncio.create_task(follow(second))
    await until(lambda: hub.listener_count() == 2)
    opener.cancel()
    await asyncio.gather(opener, return_exceptions=True)
    broker.gate.set()
    await until(lambda: broker.listener_count() == 1)
    await broker.publish([(CHANNEL, CHANGE.encode())])
    await asyncio.wait_for(waiter, TIMEOUT)
    assert (first.messages, second.messages) == ([], [CHANGE])
    assert broker.listens == 2
    assert (broker.listener_count(), hub.listener_count(), hub.channel_count()) == (0, 0, 0)

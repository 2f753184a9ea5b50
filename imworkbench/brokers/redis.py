"""The Redis pub/sub broker (``redis://`` / ``rediss://``; issue 5 item 1), for deployments of
several processes: a change committed by one process reaches subscribers in every other.

- One subscribing connection per process. A channel is subscribed when its first local listener
  arrives and unsubscribed when its last one leaves (local reference count), so Redis carries
  only the users someone here is watching.
- ``publish(batch)`` never waits on Redis (issue 11 item 9: with Redis paused, each committed
  notice batch waited up to 3 s and vendor p99 rose to 6 s although the database had already
  committed). It appends the messages to the process's one FIFO queue and returns; a publisher
  task sends the queue in pipelines of up to ``PUBLISH_BATCH`` messages, so order per channel
  (indeed overall) is kept. A pipeline that fails or gets no answer within
  ``HEALTH_TIMEOUT_S`` goes back to the head of the queue and is sent again after
  ``PUBLISH_BACKOFF_S``: an accepted message is never lost while the process lives, and may
  arrive twice when Redis ran a send whose answer was lost (harmless: badge messages carry the
  user's version, and listeners ignore states they already have).
- The queue holds at most ``max_pending`` messages (``MAX_PENDING_MESSAGES``, about 100 bytes
  each). On overflow (Redis away long enough for that many changes) the oldest messages are
  dropped and their channels remembered (up to ``MAX_DROPPED_CHANNELS``, past which "all of
  them"); before anything else is sent, each such channel gets a resync mark, so its
  subscribers in every process reload from the database (the truth), even when only this
  process lost its link to Redis. ``close()`` sends what is queued for up to
  ``HEALTH_TIMEOUT_S``, then logs what it could not.
- A reader task takes messages and hands them to the channel's listeners. Any error on the
  subscribing connection (including a half-open link found by the ``PING`` sent after
  ``HEALTH_INTERVAL_S`` of silence: no reply at all within ``PING_TIMEOUT_S``, so a half-open
  link is found within ``HALF_OPEN_DETECTION_S``) starts a reconnect with exponential backoff
  and jitter; once connected again the subscriptions are reconciled with the channels that
  have listeners at that moment (repeatedly, since listeners come and go meanwhile) and every
  local listener gets ``resync()``, because messages may have been missed.
- Nothing grows without bound: the channel table holds only channels with local listeners,
  the publish queue holds at most ``max_pending`` messages, and the backoff is capped at
  ``BACKOFF_MAX_S`` (jitter included), so subscribers catch up within seconds of Redis returning.

Channel names are prefixed with the broker's namespace (``?namespace=`` in the URL, default
``wb``), so several deployments (or test runs) can share one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import parse_qs, urlsplit, urlunsplit

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from resolvers.broker import Listener

logger = logging.getLogger("workbench.broker")

# Silence on the subscribing connection after which the reader sends a PING.
HEALTH_INTERVAL_S = 2.0
# A PONG may wait behind a busy event loop (stalls of 1.5 s were seen under floods): only this
# long a silence after the PING means a dead link.
PING_TIMEOUT_S = 5.0
PUBLISH_BACKOFF_S = 1.0
# Messages per publish pipeline, and the most the publish queue holds (module docstring).
PUBLISH_BATCH = 1000
MAX_PENDING_MESSAGES = 100_000
MAX_DROPPED_CHANNELS = 100_000
# Sent instead of a message: "you may have missed messages, reload". Never a JSON message.
RESYNC_MARK = b"\x00resync"
ALL_CHANNELS = "_resync_all"
HEALTH_TIMEOUT_S = 3.0
BACKOFF_START_S = 0.1
# The longest wait between reconnect attempts, jitter included: it bounds how long clients stay
# stale after Redis returns (issue 5: caught up within 5 s), and a refused connect is cheap.
BACKOFF_MAX_S = 2.0
READ_TIMEOUT_S = 1.0
# The longest a half-open subscribing link goes unnoticed (issue 11 item 9: the bar is 10 s;
# it was 13-14 s): silence before the PING, the PING's timeout, and one read turn on each side.
HALF_OPEN_DETECTION_S = HEALTH_INTERVAL_S + PING_TIMEOUT_S + 2 * READ_TIMEOUT_S
assert HALF_OPEN_DETECTION_S <= 10.0
# Messages the reader hands out before letting other tasks run (``_read``).
MESSAGES_PER_TURN = 1000


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def client_name(namespace: str) -> str:
    """The name the broker's connections carry (``CLIENT LIST``): ``workbench-<namespace>``,
    with characters Redis refuses in names replaced."""
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_.:" else "_" for c in namespace)
    return f"workbench-{safe}"


def split_url(url: str) -> tuple[str, str]:
    """The Redis URL without our ``namespace`` query parameter, and that namespace."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    namespace = (query.pop("namespace", ["wb"])[-1] or "wb").strip()
    rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
    return urlunsplit(parts._replace(query=rest)), namespace


class RedisBroker:
    """``Broker`` over Redis pub/sub (module docstring). ``max_pending``: the publish queue's
    bound, in messages. Counters ``reconnects``, ``dropped_publishes`` (messages dropped from
    a full queue, replaced by resync marks) and ``publish_failures`` (pipelines that failed
    and were queued again), and ``pending_publishes``, are for metrics and tests."""

    def __init__(self, url: str, *, max_pending: int = MAX_PENDING_MESSAGES) -> None:
        self.url, self.namespace = split_url(url)
        self._prefix = f"{self.namespace}:"
        self._channels: dict[str, set[Listener]] = {}
        self._client: aioredis.Redis | None = None  # publishing
        self._sub_client: aioredis.Redis | None = None  # the subscribing connection's pool
        self._pubsub: aioredis.client.PubSub | None = None
        # Held while anything is sent on the subscribing connection or it is dropped: no
        # (un)subscribe is ever in flight on a link being torn down (see ``_client_for``).
        self._sub_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_seen = 0.0
        self._closing = False
        self._max_pending = max_pending
        # Accepted, not yet sent; a batch being sent is in ``_sending`` until Redis answers.
        self._pending: deque[tuple[str, bytes]] = deque()
        self._sending: list[tuple[str, bytes]] = []
        self._publish_wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._subscribed: set[str] = set()  # channels subscribed on the current connection
        self._dropped: set[str] = set()
        self._dropped_all = False
        self.reconnects = 0
        self.dropped_publishes = 0
        self.publish_failures = 0

    def _client_for(self, *, subscriber: bool = False) -> aioredis.Redis:
        # The subscriber's client retries nothing: on any connection error redis-py's PubSub
        # would otherwise reconnect the socket itself (and resubscribe) from whichever task
        # met the error, even with zero retries. The reader and an (un)subscribe running at
        # once then both reconnect the one connection object and read each other's
        # handshake replies; the reader died of that (an AttributeError) and messages were
        # lost silently. Only ``_run`` reconnects the subscriber, and resyncs listeners.
        client = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=HEALTH_TIMEOUT_S,
            socket_keepalive=True,
            # No health_check_interval: redis-py would PING and read the reply from inside a
            # (un)subscribe command, racing the reader task on the same connection; the
            # reader does its own PINGs (``_read``).
            client_name=client_name(self.namespace),
        )
        if subscriber:
            client.set_retry(Retry(NoBackoff(), 0, supported_errors=()))
        return client

    async def start(self) -> None:
        """Connect (or keep trying in the background) and start the reader."""
        self._client = self._client_for()
        self._sub_client = self._client_for(subscriber=True)
        self._task = asyncio.create_task(self._run(), name="redis-broker")
        self._publisher = asyncio.create_task(self._publish_loop(), name="redis-publisher")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), HEALTH_TIMEOUT_S)
        if not self._connected.is_set():
            logger.warning(
                "Redis at %s not reachable yet; retrying in the background", safe_url(self.url)
            )

    async def close(self) -> None:
        """Send what is queued (for up to ``HEALTH_TIMEOUT_S``), stop the reader, drop every
        listener, close both connections. The reader also checks a closing flag at least every
        ``READ_TIMEOUT_S``: a cancellation swallowed inside the Redis client (Python 3.11's
        timeouts can) cannot hang shutdown."""
        if self._publisher is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEALTH_TIMEOUT_S):
                    while self.pending_publishes and not self._publisher.done():
                        self._publish_wake.set()
                        await asyncio.sleep(0.01)
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
            if self.pending_publishes:
                logger.warning(
                    "closing with %d message(s) Redis did not take", self.pending_publishes
                )
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(self._task), READ_TIMEOUT_S + HEALTH_TIMEOUT_S
                )
            self._task = None
        self._channels.clear()
        await self._drop_pubsub()
        for client in (self._client, self._sub_client):
            if client is not None:
                await client.aclose()
        self._client = self._sub_client = None

    @property
    def connected(self) -> bool:
        """Whether the subscribing connection is up (readiness checks)."""
        return self._connected.is_set()

    @property
    def pending_publishes(self) -> int:
        """Messages accepted by ``publish`` that Redis has not confirmed yet."""
        return len(self._pending) + len(self._sending)

    async def publish(self, batch: Iterable[tuple[str, bytes]]) -> None:
        """Queue every message for the publisher task and return without waiting on Redis
        (module docstring: order, retries, overflow)."""
        if self._client is None:
            return
        self._pending.extend(batch)
        self._trim()
        self._publish_wake.set()

    def _trim(self) -> None:
        overflow = len(self._pending) - self._max_pending
        if overflow > 0:
            if not self._dropped and not self._dropped_all:
                logger.warning(
                    "Redis publish queue full (%d messages): dropping the oldest; their "
                    "subscribers will reload from the database",
                    self._max_pending,
                )
            self._drop([self._pending.popleft() for _ in range(overflow)])

    async def _publish_loop(self) -> None:
        while True:
            await self._publish_wake.wait()
            self._publish_wake.clear()
            while self._pending:
                if (self._dropped or self._dropped_all) and not await self._send_resync_marks():
                    await asyncio.sleep(PUBLISH_BACKOFF_S)
                    continue
                count = min(PUBLISH_BATCH, len(self._pending))
                self._sending = [self._pending.popleft() for _ in range(count)]
                sent = await self._send(self._sending)
                if not sent:
                    # Back to the head of the queue, before anything published meanwhile.
                    self._pending.extendleft(reversed(self._sending))
                self._sending = []
                if not sent:
                    self._trim()
                    await asyncio.sleep(PUBLISH_BACKOFF_S)

    async def _send(self, messages: list[tuple[str, bytes]]) -> bool:
        assert self._client is not None
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for channel, message in messages:
                    pipe.publish(self._prefix + channel, message)
                await asyncio.wait_for(pipe.execute(), HEALTH_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as error:
            self.publish_failures += 1
            logger.warning("Redis publish failed: %r", error)
            return False
        return True

    def _drop(self, messages: list[tuple[str, bytes]]) -> None:
        self.dropped_publishes += len(messages)
        if not self._dropped_all:
            self._dropped.update(channel for channel, _ in messages)
            if len(self._dropped) > MAX_DROPPED_CHANNELS:
                self._dropped_all, self._dropped = True, set()

    async def _send_resync_marks(self) -> bool:
        # Tell every process's subscribers of the channels we dropped messages for to reload.
        # Only the publisher task calls this. Returns whether every mark was sent.
        if self._dropped_all:
            marks = [(ALL_CHANNELS, RESYNC_MARK)]
        else:
            marks = [(channel, RESYNC_MARK) for channel in self._dropped]
        dropped, dropped_all = self._dropped, self._dropped_all
        self._dropped, self._dropped_all = set(), False
        for start in range(0, len(marks), 1000):
            if not await self._send(marks[start : start + 1000]):
                self._dropped |= dropped
                self._dropped_all = self._dropped_all or dropped_all
                return False
        logger.info("Redis publishing restored: resync marks sent for %d channel(s)", len(marks))
        return True

    def listen(self, channel: str, listener: Listener) -> AbstractAsyncContextManager[None]:
        """Deliver ``channel``'s messages to ``listener`` while the block runs."""
        return self._listen(channel, listener)

    @asynccontextmanager
    async def _listen(self, channel: str, listener: Listener) -> AsyncIterator[None]:
        listeners = self._channels.setdefault(channel, set())
        first = not listeners
        listeners.add(listener)
        try:
            if first:
                await self._command("subscribe", channel)
            yield
        finally:
            current = self._channels.get(channel)
            if current is not None:
                current.discard(listener)
                if not current:
                    del self._channels[channel]
                    await self._command("unsubscribe", channel)

    def listener_count(self) -> int:
        """How many listeners are registered, over all channels."""
        return sum(len(listeners) for listeners in self._channels.values())

    def channel_count(self) -> int:
        """How many channels this process is subscribed to."""
        return len(self._channels)

    async def _command(self, name: str, channel: str) -> None:
        # (Un)subscribe on the live connection; while down, ``_connect`` reconciles later.
        # Under the lock, so the link cannot be dropped (or replaced) while this is in flight.
        async with self._sub_lock:
            pubsub = self._pubsub
            if pubsub is None or not self._connected.is_set():
                return
            try:
                command = getattr(pubsub, name)(self._prefix + channel)
                await asyncio.wait_for(command, HEALTH_TIMEOUT_S)
            except (RedisError, OSError, TimeoutError, AttributeError, RuntimeError) as error:
                logger.warning("Redis %s failed: %r; reconnecting", name, error)
                self._connected.clear()
                return
            if name == "subscribe":
                self._subscribed.add(channel)
            else:
                self._subscribed.discard(channel)

    async def _drop_pubsub(self) -> None:
        async with self._sub_lock:
            pubsub, self._pubsub = self._pubsub, None
            self._connected.clear()
            self._subscribed = set()
        if pubsub is not None:
            connection = pubsub.connection
            with contextlib.suppress(
                RedisError, OSError, RuntimeError, TimeoutError, AttributeError
            ):
                await asyncio.wait_for(
                    pubsub.aclose(),
                    HEALTH_TIMEOUT_S,
                )
            if connection is not None:  # a broken link may survive aclose(): close its socket
                with contextlib.suppress(
                    RedisError, OSError, RuntimeError, TimeoutError, AttributeError
                ):
                    await connection.disconnect(nowait=True)

    async def _connect(self) -> None:
        assert self._sub_client is not None
        # Subscribe replies are read too (not ignored), so any reply proves the link alive.
        pubsub = self._sub_client.pubsub(ignore_subscribe_messages=False)
        self._pubsub = pubsub  # dropped (closed) by the caller if anything below fails
        # The everyone-resync channel; it also keeps the connection in pub/sub mode.
        await asyncio.wait_for(pubsub.subscribe(self._prefix + ALL_CHANNELS), HEALTH_TIMEOUT_S)
        self._last_seen = time.monotonic()
        self._connected.set()
        await self._reconcile(pubsub)

    async def _reconcile(self, pubsub: aioredis.client.PubSub) -> None:
        # Bring the connection's subscriptions to the channels that have listeners now:
        # listeners may come and go while commands are in flight, so repeat until stable.
        async with self._sub_lock:
            while self._pubsub is pubsub and self._connected.is_set():
                wanted = set(self._channels)
                missing = sorted(wanted - self._subscribed)
                extra = sorted(self._subscribed - wanted)
                if not missing and not extra:
                    return
                for start in range(0, len(missing), 1000):
                    batch = missing[start : start + 1000]
                    await asyncio.wait_for(
                        pubsub.subscribe(*(self._prefix + c for c in batch)), HEALTH_TIMEOUT_S
                    )
                    self._subscribed.update(batch)
                for start in range(0, len(extra), 1000):
                    batch = extra[start : start + 1000]
                    await asyncio.wait_for(
                        pubsub.unsubscribe(*(self._prefix + c for c in batch)), HEALTH_TIMEOUT_S
                    )
                    self._subscribed.difference_update(batch)

    async def _run(self) -> None:
        delay = BACKOFF_START_S
        first = True
        while not self._closing:
            try:
                await self._connect()
                if not first:
                    self.reconnects += 1
                    logger.info("Redis connection restored; resynchronising subscribers")
                    for listeners in list(self._channels.values()):
                        for listener in tuple(listeners):
                            listener.resync()
                first = False
                delay = BACKOFF_START_S
                await self._read()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RuntimeError, TimeoutError) as error:
                logger.warning("Redis subscriber connection lost: %r", error)
            except Exception:
                # Never let the reader die silently (listeners would wait forever): whatever
                # the client library raises, start over on a new link and resync everyone.
                logger.exception("Redis subscriber failed; reconnecting")
            await self._drop_pubsub()
            first = False
            await asyncio.sleep(min(BACKOFF_MAX_S, delay * random.uniform(0.5, 1.5)))
            delay = min(BACKOFF_MAX_S, delay * 2)

    async def _read(self) -> None:
        # Hand messages to listeners until the link fails; PING when idle to find a half-open
        # link (no reply at all within PING_TIMEOUT_S means dead). Each turn takes every
        # message already received (up to MESSAGES_PER_TURN) without giving up the event
        # loop: reading each through asyncio.wait_for (a new task per message) made the
        # reader wait a full loop round per message, and on a busy loop it fell behind
        # subscribe/unsubscribe churn without bound (events tens of seconds late).
        pubsub = self._pubsub
        assert pubsub is not None
        pinged_at: float | None = None
        while self._connected.is_set() and not self._closing:
            async with asyncio.timeout(READ_TIMEOUT_S + HEALTH_TIMEOUT_S):
                message = await pubsub.get_message(timeout=READ_TIMEOUT_S)
            now = time.monotonic()
            if message is None:
                if pinged_at is not None and now - pinged_at > PING_TIMEOUT_S:
                    raise ConnectionError("no answer to PING: half-open link")
                if pinged_at is None and now - self._last_seen > HEALTH_INTERVAL_S:
                    await asyncio.wait_for(pubsub.ping(), HEALTH_TIMEOUT_S)
                    pinged_at = now
                continue
            # Any reply (a message, a (un)subscribe confirmation, a PONG) proves the link.
            self._last_seen = now
            pinged_at = None
            for _ in range(MESSAGES_PER_TURN):
                self._dispatch(message)
                async with asyncio.timeout(HEALTH_TIMEOUT_S):
                    message = await pubsub.get_message(timeout=0)  # only what has arrived
                if message is None:
                    break
            else:
                self._dispatch(message)
        if not self._closing:
            raise ConnectionError("subscription connection reset")

    def _dispatch(self, message: dict[str, object]) -> None:
        if message.get("type") != "message":
            return
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        assert isinstance(channel, str)
        name = channel[len(self._prefix) :]
        data = message["data"]
        if name == ALL_CHANNELS:
            for every in list(self._channels.values()):
                for listener in tuple(every):
                    listener.resync()
            return
        listeners = self._channels.get(name)
        if listeners:
            for listener in tuple(listeners):
                if data == RESYNC_MARK:
                    listener.resync()
                else:
                    assert isinstance(data, bytes)
                    listener.deliver(data)

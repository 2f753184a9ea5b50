"""The load generators: run as processes of their own, pinned to a generator core
(``benchmarks.processes.generate``), never inside the server's process.

``python -m benchmarks.loadgen KIND SPEC_FILE`` runs one generator (its spec a JSON file: a
10k-recipient notice does not fit in a command line) and writes its measurements as JSON to
the spec's ``output`` file. Users are ``{"cid", "first_uid", "count"}`` ranges; the generator
signs their tokens itself. Kinds:

- ``closed``: ``concurrency`` keep-alive connections sending one request after another for
  ``duration`` s; request latencies and requests/s. Requests rotate over ``requests``.
- ``open``: requests at a fixed ``rate``/s for ``duration`` s over a pool of connections.
- ``push``: ``open`` load of notices to one user while that user's two devices are subscribed;
  push-to-badge latency: from a timestamp taken just before each vendor call to each device's
  receipt of the badge event the call caused.
- ``fanout``: ``users`` subscribed clients, then one trigger request; time from just before
  the trigger until each client has its event.
- ``hold``: ``users`` subscribed clients held open; prints ``{"ready": n}``, waits for a line on
  stdin, then closes them and prints the final result.
- ``mixed``: ``closed`` load drawing each request from ``writes`` or ``reads`` (``read_share``);
  counts accepted writes.
- ``flood``: ``/healthz`` probed at ``health_rate``/s for ``idle`` s, then again for
  ``duration`` s while each of ``users`` floods the service over graphql-ws: it subscribes up
  to the per-connection ``cap``, then sends ``start`` frames over the cap (``frame_bytes``
  each, distinct ids) as fast as it can; when the service closes it, it reconnects at once
  (``reconnect``) or gives up, as graphql-ws clients do after 4429. Health latencies idle and
  under the flood, frames sent, connections and closes by code.

Time is ``time.monotonic()`` (CLOCK_MONOTONIC, the same in every process of the machine).
HTTP is spoken directly over asyncio streams with pre-encoded requests, so the generator costs
a fraction of what the servers do; WebSocket clients are the ``websockets`` library's, with
compression off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import uvloop
import websockets
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.processes import JWT_SECRET
from resolvers.tokens import TokenCodec

TRANSPORT_WS = "graphql-transport-ws"
BADGES = (
    "subscription Badges($platform: Platform) { badges(platform: $platform) "
    "{ cause unreadTotal version } }"
)
CONNECT_CONCURRENCY = 100


@dataclass(frozen=True)
class Request:
    """One pre-encoded HTTP/1.1 request and what a successful answer's body contains."""

    raw: bytes
    expect: bytes

    @classmethod
    def build(cls, spec: dict[str, Any], host: str) -> Request:
        """From ``{"method", "path", "body", "headers", "expect"}`` (body and expect text)."""
        body = spec.get("body", "").encode()
        headers = {"Host": host, "Content-Length": str(len(body)), **spec.get("headers", {})}
        head = f"{spec.get('method', 'POST')} {spec['path']} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        return cls((head + "\r\n").encode() + body, spec.get("expect", "").encode())


class HttpConnection:
    """A keep-alive HTTP/1.1 connection speaking only what the benchmarks need
    (``Content-Length`` bodies)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> HttpConnection:
        """Connect to ``url``'s host and port."""
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def send(self, request: Request) -> tuple[int, bytes]:
        """Send ``request``; its status code and body."""
        self.writer.write(request.raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        """Close the socket."""
        self.writer.close()


@dataclass
class Tally:
    """Latencies (ms) of successful requests, failures, and the first failure seen."""

    latencies: list[float]
    failures: int = 0
    first_failure: str = ""

    def record(self, started: float, status: int, body: bytes, request: Request) -> bool:
        """Count one answer; whether it succeeded."""
        if status == 200 and request.expect in body:
            self.latencies.append((time.monotonic() - started) * 1000)
            return True
        self.failures += 1
        if not self.first_failure:
            self.first_failure = f"{status} {body[:300]!r}"
        return False


async def closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """``concurrency`` connections, back to back, for ``duration`` s (after ``warmup`` s)."""
    url = spec["url"]
    host = urlsplit(url).netloc
    requests = [Request.build(r, host) for r in spec["requests"]]
    tally = Tally([])
    warmup_until = time.monotonic() + spec.get("warmup", 0.0)
    stop_at = warmup_until + spec["duration"]

    async def worker(index: int) -> None:
        connection = await HttpConnection.open(url)
        turn = index
        try:
            while (now := time.monotonic()) < stop_at:
                request = requests[turn % len(requests)]
                turn += 1
                status, body = await connection.send(request)
                if now >= warmup_until:
                    tally.record(now, status, body, request)
        finally:
            connection.close()

    await asyncio.gather(*(worker(i) for i in range(spec["concurrency"])))
    return {
        "latencies_ms": tally.latencies,
        "throughput": len(tally.latencies) / spec["duration"],
        "failures": tally.failures,
        "first_failure": tally.first_failure,
    }


class Pool:
    """Keep-alive connections to one server, opened on demand. A connection idle for
    ``IDLE_S`` is replaced rather than reused: servers close idle keep-alive connections
    (uvicorn after 5 s), and a request sent on one would fail without reaching the server."""

    IDLE_S = 3.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.idle: list[tuple[HttpConnection, float]] = []
        self.opened = 0

    async def send(self, request: Request) -> tuple[int, bytes]:
        """Send on an idle connection (or a new one) and give it back afterwards."""
        connection = None
        while self.idle and connection is None:
            candidate, since = self.idle.pop()
            if time.monotonic() - since < self.IDLE_S:
                connection = candidate
            else:
                candidate.close()
        if connection is None:
            connection = await HttpConnection.open(self.url)
            self.opened += 1
        result = await connection.send(request)
        self.idle.append((connection, time.monotonic()))
        return result

    def close(self) -> None:
        """Close every idle connection."""
        for connection, _ in self.idle:
            connection.close()


async def open_loop(
    url: str,
    request_for: Callable[[int], Request],
    rate: float,
    duration: float,
    on_send: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Send request ``request_for(k)`` at ``k / rate`` s for ``duration`` s, never waiting for
    answers to send the next; ``on_send(k, t)`` is told the time just before each send."""
    pool = Pool(url)
    tally = Tally([])
    total = int(rate * duration)
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()

    async def one(k: int) -> None:
        request = request_for(k)
        sent = time.monotonic()
        if on_send is not None:
            on_send(k, sent)
        status, body = await pool.send(request)
        tally.record(sent, status, body, request)

    for k in range(total):
        delay = started + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    pool.close()
    return {
        "latencies_ms": tally.latencies,
        "throughput": len(tally.latencies) / elapsed,
        "failures": tally.failures,
        "first_failure": tally.first_failure,
        "connections": pool.opened,
    }


async def open_rate(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``open`` kind."""
    url = spec["url"]
    host = urlsplit(url).netloc
    requests = [Request.build(r, host) for r in spec["requests"]]
    return await open_loop(
        url, lambda k: requests[k % len(requests)], spec["rate"], spec["duration"]
    )


class Subscriber:
    """One subscribed client: the service's ``badges`` subscription over graphql-transport-ws,
    or the baseline's raw socket. ``events`` holds ``(receipt time, unreadTotal)``."""

    def __init__(self, socket: ClientConnection, service: bool) -> None:
        self.socket = socket
        self.service = service
        self.events: list[tuple[float, int]] = []
        self.arrived = asyncio.Event()

    @classmethod
    async def open(cls, spec: dict[str, Any], user: dict[str, Any], platform: str) -> Subscriber:
        """Connect and subscribe; returns once the subscription is live (the service's
        SNAPSHOT, or the baseline's ready frame, received)."""
        if spec["system"] == "service":
            socket = await connect(
                spec["ws_url"],
                subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
                compression=None,
                max_queue=None,
                open_timeout=60,
                ping_interval=None,
            )
            await socket.send(
                json.dumps(
                    {
                        "type": "connection_init",
                        "payload": {"Authorization": f"Bearer {user['token']}"},
                    }
                )
            )
            ack = json.loads(await socket.recv())
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            await socket.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": BADGES, "variables": {"platform": platform}},
                    }
                )
            )
            snapshot = json.loads(await socket.recv())
            if snapshot.get("type") != "next":
                raise RuntimeError(f"no SNAPSHOT: {snapshot}")
            return cls(socket, True)
        url = f"{spec['ws_url']}/?cid={user['cid']}&uid={user['uid']}"
        socket = await connect(
            url, compression=None, max_queue=None, open_timeout=60, ping_interval=None
        )
        await socket.recv()
        return cls(socket, False)

    async def counts(self, events: int) -> None:
        """Wait until ``events`` events arrived."""
        while len(self.events) < events:
            self.arrived.clear()
            await self.arrived.wait()

    async def reaches(self, total: int) -> None:
        """Wait until an event with at least ``total`` arrived."""
        while not self.events or self.events[-1][1] < total:
            self.arrived.clear()
            await self.arrived.wait()

    async def read(self) -> None:
        """Record every event until the connection closes."""
        try:
            async for raw in self.socket:
                now = time.monotonic()
                message = json.loads(raw)
                if self.service:
                    if message.get("type") != "next":
                        continue
                    total = message["payload"]["data"]["badges"]["unreadTotal"]
                else:
                    total = message["unreadTotal"]
                self.events.append((now, total))
                self.arrived.set()
        except websockets.ConnectionClosed:
            pass


async def subscribe_all(
    spec: dict[str, Any], users: list[dict[str, Any]], platforms: list[str]
) -> list[Subscriber]:
    """A subscriber per user and platform, at most ``CONNECT_CONCURRENCY`` connecting at once."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(user: dict[str, Any], platform: str) -> Subscriber:
        async with gate:
            return await Subscriber.open(spec, user, platform)

    return list(
        await asyncio.gather(*(one(user, platform) for user in users for platform in platforms))
    )


async def close_all(subscribers: list[Subscriber]) -> None:
    """Close every subscriber's connection."""
    await asyncio.gather(*(s.socket.close() for s in subscribers), return_exceptions=True)


async def push(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``push`` kind (module docstring): notices to one user at ``rate``/s, both devices
    subscribed. The user starts at zero, so a badge total of k shows the k-th notice sent;
    each notice's latency is until each device first shows it."""
    user = spec["user"]
    platforms = ["PC", "ANDROID"]
    subscribers = await subscribe_all(spec, [user], platforms)
    readers = [asyncio.create_task(s.read()) for s in subscribers]
    host = urlsplit(spec["http_url"]).netloc
    request = Request.build(spec["request"], host)
    sent_at: dict[int, float] = {}

    def on_send(k: int, when: float) -> None:
        sent_at[k + 1] = when

    result = await open_loop(
        spec["http_url"], lambda _k: request, spec["rate"], spec["duration"], on_send
    )
    expected = len(sent_at)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.reaches(expected) for s in subscribers)), 10)
    latencies: list[float] = []
    missed = 0
    order = sorted(sent_at.values())
    for subscriber in subscribers:
        # A badge total of T shows every notice up to the T-th: an event may show several
        # (the service may merge notices that commit together).
        shown = 0
        for received, total in subscriber.events:
            for k in range(shown + 1, min(total, expected) + 1):
                latencies.append((received - order[k - 1]) * 1000)
            shown = max(shown, total)
        missed += max(0, expected - shown)
    await close_all(subscribers)
    for reader in readers:
        reader.cancel()
    return {
        "latencies_ms": latencies,
        "http_latencies_ms": result["latencies_ms"],
        "sent": expected,
        "failures": result["failures"],
        "first_failure": result["first_failure"],
        "missed_events": missed,
        "throughput": result["throughput"],
    }


async def fanout(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``fanout`` kind (module docstring), ``rounds`` times (default 1): each round one
    trigger, then the time until every client has that round's event. The result's
    ``last_ms`` is the median round's, ``latencies_ms`` every receipt of every round."""
    users = spec["users"]
    subscribers = await subscribe_all(spec, users, ["PC"])
    readers = [asyncio.create_task(s.read()) for s in subscribers]
    await asyncio.sleep(0.5)  # let the servers settle after the connection storm
    host = urlsplit(spec["http_url"]).netloc
    request = Request.build(spec["request"], host)
    connection = await HttpConnection.open(spec["http_url"])
    receipts: list[float] = []
    rounds: list[dict[str, float]] = []
    delivered = 0
    for turn in range(1, spec.get("rounds", 1) + 1):
        started = time.monotonic()
        status, body = await connection.send(request)
        answered = time.monotonic()
        if status != 200 or request.expect not in body:
            raise RuntimeError(f"trigger failed: {status} {body[:300]!r}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.counts(turn) for s in subscribers)), spec.get("timeout", 60)
            )
        these = [
            (s.events[turn - 1][0] - started) * 1000 for s in subscribers if len(s.events) >= turn
        ]
        delivered = len(these)
        receipts += these
        rounds.append(
            {"last_ms": max(these, default=math.nan), "answered_ms": (answered - started) * 1000}
        )
        await asyncio.sleep(0.2)
    connection.close()
    for reader in readers:
        reader.cancel()
    await close_all(subscribers)
    median = sorted(rounds, key=lambda r: r["last_ms"])[len(rounds) // 2]
    return {
        "latencies_ms": receipts,
        "delivered": delivered,
        "expected": len(subscribers),
        "last_ms": median["last_ms"],
        "answered_ms": median["answered_ms"],
        "rounds": rounds,
        "throughput": delivered / (median["last_ms"] / 1000) if delivered else 0.0,
    }


async def hold(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``hold`` kind (module docstring)."""
    subscribers = await subscribe_all(spec, spec["users"], ["PC"])
    print(json.dumps({"ready": len(subscribers)}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    alive = sum(1 for s in subscribers if s.socket.state is websockets.State.OPEN)
    await close_all(subscribers)
    return {"held": len(subscribers), "alive_at_end": alive}


async def mixed(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``mixed`` kind (module docstring): ``writers`` connections for ``duration`` s, each
    request a read with probability ``read_share`` (deterministic rotation)."""
    url = spec["url"]
    host = urlsplit(url).netloc
    write = Request.build(spec["write"], host)
    read = Request.build(spec["read"], host)
    every = max(1, round(1 / spec["read_share"])) if spec["read_share"] > 0 else 0
    counts = {"writes": 0, "reads": 0, "failed_writes": 0, "failed_reads": 0}
    tally = Tally([])
    stop_at = time.monotonic() + spec["duration"]

    async def worker(index: int) -> None:
        connection = await HttpConnection.open(url)
        turn = index
        try:
            while time.monotonic() < stop_at:
                turn += 1
                is_read = every and turn % every == 0
                request = read if is_read else write
                started = time.monotonic()
                status, body = await connection.send(request)
                ok = tally.record(started, status, body, request)
                key = (
                    ("reads" if is_read else "writes")
                    if ok
                    else ("failed_reads" if is_read else "failed_writes")
                )
                counts[key] += 1
        finally:
            connection.close()

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(spec["writers"])))
    elapsed = time.monotonic() - started
    return {
        **counts,
        "latencies_ms": tally.latencies,
        "throughput": (counts["writes"] + counts["reads"]) / elapsed,
        "first_failure": tally.first_failure,
    }


LEGACY_WS = "graphql-ws"


async def _drain(socket: ClientConnection) -> None:
    # Read (and drop) whatever the service answers, so its sends never wait on this client.
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in socket:
            pass


async def _flood_once(
    spec: dict[str, Any], user: dict[str, Any], frame: str, tally: dict[str, int]
) -> None:
    # One flooding connection: init, subscriptions up to the cap, then over-cap starts until
    # the service closes it (or the flood ends: CancelledError).
    socket = await connect(
        spec["ws_url"],
        subprotocols=[LEGACY_WS],  # type: ignore[list-item]
        compression=None,
        max_queue=None,
        open_timeout=60,
        ping_interval=None,
    )
    tally["connections"] += 1
    drain: asyncio.Task[None] | None = None
    try:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {user['token']}"}}
        await socket.send(json.dumps(init))
        if json.loads(await socket.recv()).get("type") != "connection_ack":
            raise RuntimeError("no connection_ack")
        drain = asyncio.create_task(_drain(socket))
        live = {"query": BADGES, "variables": {"platform": "PC"}}
        for index in range(spec["cap"]):
            await socket.send(json.dumps({"id": f"live-{index}", "type": "start", "payload": live}))
        sent = 0
        while True:
            sent += 1
            await socket.send(frame.replace("OP_ID", str(sent), 1))
            tally["frames"] += 1
            await asyncio.sleep(0)  # let the health probes of this process run
    except websockets.ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd is not None else 0
        tally[f"closed_{code}"] = tally.get(f"closed_{code}", 0) + 1
    finally:
        if drain is not None:
            drain.cancel()
        await socket.close()


async def flood(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``flood`` kind (module docstring)."""
    url = spec["url"]
    health = Request.build({"method": "GET", "path": "/healthz"}, urlsplit(url).netloc)
    idle = await open_loop(url, lambda _: health, spec["health_rate"], spec["idle"])
    padding = "x" * max(0, spec["frame_bytes"] - len(BADGES) - 80)
    query = BADGES.replace("{ cause", "{ # " + padding + "\n cause", 1)
    frame = json.dumps({"id": "over-OP_ID", "type": "start", "payload": {"query": query}})
    tally: dict[str, int] = {"frames": 0, "connections": 0}

    async def flooder(user: dict[str, Any]) -> None:
        while True:
            try:
                await _flood_once(spec, user, frame, tally)
            except (OSError, RuntimeError, websockets.InvalidHandshake):
                tally["failed_connects"] = tally.get("failed_connects", 0) + 1
                await asyncio.sleep(0.05)
            if not spec["reconnect"]:
                return

    flooders = [asyncio.create_task(flooder(user)) for user in spec["users"]]
    await asyncio.sleep(spec.get("ramp", 1.0))  # every flooder past its subscriptions
    frames_before = tally["frames"]
    flooded = await open_loop(url, lambda _: health, spec["health_rate"], spec["duration"])
    frames = tally["frames"] - frames_before
    for task in flooders:
        task.cancel()
    await asyncio.gather(*flooders, return_exceptions=True)
    return {
        "idle_latencies_ms": idle["latencies_ms"],
        "latencies_ms": flooded["latencies_ms"],
        "health_failures": idle["failures"] + flooded["failures"],
        "frames_per_s": frames / spec["duration"],
        **tally,
    }


def expand_users(users: dict[str, int]) -> list[dict[str, Any]]:
    """The users of a ``{"cid", "first_uid", "count"}`` range, each with a signed token."""
    codec = TokenCodec(JWT_SECRET)
    cid = users["cid"]
    return [
        {"cid": cid, "uid": uid, "token": codec.issue(cid=cid, uid=uid)}
        for uid in range(users["first_uid"], users["first_uid"] + users["count"])
    ]


KINDS: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]] = {
    "closed": closed_loop,
    "open": open_rate,
    "push": push,
    "fanout": fanout,
    "hold": hold,
    "mixed": mixed,
    "flood": flood,
}


def main() -> None:
    """``python -m benchmarks.loadgen KIND SPEC_FILE``: print the result as one JSON line."""
    kind = sys.argv[1]
    with open(sys.argv[2], encoding="utf-8") as file:
        spec = json.load(file)
    if isinstance(spec.get("users"), dict):
        spec["users"] = expand_users(spec["users"])
    if isinstance(spec.get("user"), dict) and "token" not in spec["user"]:
        spec["user"] = expand_users({**spec["user"], "count": 1})[0]
    result: dict[str, Any] = uvloop.run(KINDS[kind](spec))
    with open(spec["output"], "w", encoding="utf-8") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()

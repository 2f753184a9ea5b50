"""Several server processes behind one database and one Redis (issue 5 acceptance): real
``workbench serve`` processes, real clients, faults injected by killing processes. Needs
Redis (``WORKBENCH_TEST_REDIS_URL``) and a ``redis-server`` binary for the Redis outage test;
fails, never skips, without them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.factories import (
    BADGES,
    JWT_SECRET,
    PUSH,
    REDIS_URL,
    SETNUM,
    TIMEOUT,
    TRANSPORT_WS,
    WSClient,
    create_app,
    gql,
)

WORKBENCH = Path(sys.executable).with_name("workbench")


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A running ``workbench serve``."""

    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def http_url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """Its GraphQL WebSocket URL."""
        return f"ws://127.0.0.1:{self.port}/graphql"

    def output(self) -> str:
        """Everything it logged so far."""
        return self.log.read_text(errors="replace")


@pytest.fixture
def environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment shared by this test's processes: its database, a Redis namespace of its
    own, the test JWT secret, fast WebSocket pings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_DATABASE_URL=database_url,
        WORKBENCH_BROKER_URL=f"{REDIS_URL}?namespace=scale-{uuid.uuid4().hex[:12]}",
        WORKBENCH_MULTI_INSTANCE="true",
        WORKBENCH_JWT_SECRET=JWT_SECRET,
        WORKBENCH_JWT_SECRET_FILE=str(tmp_path / "unused-secret"),
        WORKBENCH_WS_PING_INTERVAL="0.5",
        WORKBENCH_WS_PING_TIMEOUT="0.5",
    )
    return env


@asynccontextmanager
async def serving(env: dict[str, str], tmp_path: Path, name: str) -> AsyncIterator[Process]:
    """Start ``workbench serve`` on a free port; wait until /readyz; stop it at the end."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    handle = log.open("w")
    process = subprocess.Popen(  # noqa: ASYNC220 (our own command; returns at once)
        [str(WORKBENCH), "serve", "--port", str(port)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Process(process, port, log)
    try:
        async with httpx.AsyncClient(base_url=running.http_url, timeout=TIMEOUT) as http:
            for _ in range(int(TIMEOUT * 4 * 20)):
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited:\n{running.output()}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{name} never became ready:\n{running.output()}")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(TIMEOUT * 4)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        handle.close()


@asynccontextmanager
async def subscribed(url: str, token: str, platform: str | None) -> AsyncIterator[WSClient]:
    """A client subscribed to badges (its SNAPSHOT not yet read)."""
    async with websockets.connect(url, subprotocols=[TRANSPORT_WS], compression=None) as sock:  # type: ignore[list-item]
        client = WSClient(sock, TRANSPORT_WS)
        await client.init(token)
        await client.subscribe(BADGES, {"platform": platform})
        yield client


def badge(data: dict[str, Any]) -> dict[str, Any]:
    """The BadgeEvent of a result."""
    return data["badges"]


async def next_event(client: WSClient) -> dict[str, Any]:
    """The next badge event."""
    return badge(await client.next_data())


async def until(client: WSClient, predicate, seconds: float) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The first event matching ``predicate`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching event within {seconds} s")
        try:
            event = badge(await client.next_data(left))
        except TimeoutError:
            raise AssertionError(f"no matching event within {seconds} s") from None
        if predicate(event):
            return event


async def notice(http: httpx.AsyncClient, app_id: str, users: str = '["1001,1034"]') -> None:
    """One pushappnotice that must succeed."""
    response = await http.post(
        PUSH, data={"fromcid": "1001", "fromuid": "1", "appid": app_id, "users": users}
    )
    assert response.content == b'{"Result":true}', response.headers.get("x-error-reason")


@dataclass
class Cluster:
    """Two processes of one deployment and an HTTP client for each."""

    a: Process
    b: Process
    http_a: httpx.AsyncClient
    http_b: httpx.AsyncClient


@asynccontextmanager
async def cluster(env: dict[str, str], tmp_path: Path) -> AsyncIterator[Cluster]:
    """Processes A and B sharing the database and the broker of ``env``."""
    async with (
        serving(env, tmp_path, "a") as a,
        serving(env, tmp_path, "b") as b,
        httpx.AsyncClient(base_url=a.http_url, timeout=TIMEOUT) as http_a,
        httpx.AsyncClient(base_url=b.http_url, timeout=TIMEOUT) as http_b,
    ):
        yield Cluster(a, b, http_a, http_b)


async def test_notice_sent_to_b_reaches_a_client_of_a_within_a_second(
    environment, tmp_path, tokens
):
    """Acceptance: a client subscribed on process A receives a NOTICE within 1 s of a
    pushappnotice sent to process B."""
    async with cluster(environment, tmp_path) as c:
        app = await create_app(c.http_a, tokens.admin(), identifier="ScaleOut")
        async with subscribed(c.a.ws_url, tokens.user(), "PC") as client:
            await next_event(client)  # SNAPSHOT (one more may follow for the new app)
            await asyncio.sleep(0.3)
            started = time.monotonic()
            await notice(c.http_b, app["id"])
            event = await until(client, lambda e: e["cause"] == "NOTICE", 1.0)
            elapsed = time.monotonic() - started
    assert event["badges"] == [{"appId": app["id"], "unread": 1}]
    assert elapsed < 1.0


async def test_pc_on_a_and_phone_on_b_stay_in_sync(environment, tmp_path, tokens):
    """Notices and setnum on B and openApp on A reach both devices with the same state."""
    async with cluster(environment, tmp_path) as c:
        app = await create_app(c.http_a, tokens.admin(), identifier="InSync")
        async with (
            subscribed(c.a.ws_url, tokens.user(), "PC") as pc,
            subscribed(c.b.ws_url, tokens.user(), "ANDROID") as phone,
        ):
            await next_event(pc)
            await next_event(phone)
            await asyncio.sleep(0.3)
            for _ in range(3):
                await notice(c.http_b, app["id"])
            for device in (pc, phone):
                await until(device, lambda e: e["unreadTotal"] == 3, TIMEOUT)
            await c.http_b.post(SETNUM, data={"appid": app["id"], "cid": "1001", "uid": "1034"})
            for device in (pc, phone):
                await until(device, lambda e: e["unreadTotal"] == 2, TIMEOUT)
            await gql(
                c.http_a,
                tokens.user(),
                "mutation($id: ID!) { openApp(appId: $id, platform: PC) { url } }",
                {"id": app["id"]},
            )
            last = [
                await until(device, lambda e: e["unreadTotal"] == 0, TIMEOUT)
                for device in (pc, phone)
            ]
    assert last[0]["version"] == last[1]["version"]
    assert last[0]["cause"] == "OPEN_APP"


@contextmanager
def private_redis(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A redis-server of this test's own (so it can be stopped), with functions starting it
    again on the same port and stopping it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("this test needs the redis-server binary (Debian package redis-server)")
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]

    def start() -> None:
        processes.append(subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL))
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop() -> None:
        processes[-1].terminate()
        processes[-1].wait(10)

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", (start, stop)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


async def test_redis_outage_loses_nothing_and_clients_catch_up(environment, tmp_path, tokens):
    """Redis stops for 10 s while notices keep arriving: every vendor call succeeds, and within
    5 s of Redis returning each client's badge equals the database's."""
    with private_redis(tmp_path) as (redis_url, (start, stop)):
        env = {**environment, "WORKBENCH_BROKER_URL": redis_url}
        async with cluster(env, tmp_path) as c:
            app = await create_app(c.http_a, tokens.admin(), identifier="Outage")
            async with subscribed(c.a.ws_url, tokens.user(), "PC") as client:
                await next_event(client)
                await asyncio.sleep(0.3)
                stop()
                sent = 0
                outage_ends = time.monotonic() + 10
                while time.monotonic() < outage_ends:
                    await notice(c.http_b, app["id"])
                    sent += 1
                    await asyncio.sleep(0.5)
                start()
                back = time.monotonic()
                event = await until(client, lambda e: e["unreadTotal"] == sent, 5.0)
                caught_up = time.monotonic() - back
                body = await gql(
                    c.http_b, tokens.user(), "{ workbench(platform: PC) { unreadTotal } }"
                )
            output = c.a.output()
    assert body["data"]["workbench"]["unreadTotal"] == sent == event["unreadTotal"]
    assert caught_up < 5.0
    assert "Redis connection restored" in output


async def drain(client: WSClient) -> None:
    """Read until the server's side of the connection is gone."""
    while True:
        await client.next_data()


async def test_killed_process_clients_reconnect_elsewhere(environment, tmp_path, tokens):
    """Process A is SIGKILLed mid-stream; its client reconnects to B and gets a correct
    SNAPSHOT; nothing accepted before the kill is lost."""
    async with cluster(environment, tmp_path) as c:
        app = await create_app(c.http_b, tokens.admin(), identifier="Killed")
        accepted = 0
        async with subscribed(c.a.ws_url, tokens.user(), "PC") as client:
            await next_event(client)
            for _ in range(5):
                await notice(c.http_b, app["id"])
                accepted += 1
            c.a.process.kill()
            c.a.process.wait()
            with pytest.raises(websockets.ConnectionClosed):
                await drain(client)
        for _ in range(3):
            await notice(c.http_b, app["id"])
            accepted += 1
        async with subscribed(c.b.ws_url, tokens.user(), "PC") as again:
            snapshot = await next_event(again)
    assert snapshot["cause"] == "SNAPSHOT"
    assert snapshot["unreadTotal"] == accepted == 8


async def test_sigterm_closes_with_1001_and_cleans_every_subscription(
    environment, tmp_path, tokens
):
    """SIGTERM: every WebSocket is closed with 1001 and the cleanup of every live
    subscription runs (the process reports it as it stops)."""
    async with serving(environment, tmp_path, "a") as a:
        async with (
            websockets.connect(a.ws_url, subprotocols=[TRANSPORT_WS], compression=None) as one,  # type: ignore[list-item]
            websockets.connect(a.ws_url, subprotocols=[TRANSPORT_WS], compression=None) as two,  # type: ignore[list-item]
        ):
            clients = [WSClient(one, TRANSPORT_WS), WSClient(two, TRANSPORT_WS)]
            for client in clients:
                await client.init(tokens.user())
                await client.subscribe(BADGES, {"platform": "PC"})
                await client.subscribe("subscription { workbenchChanged(platform: PC) { kind } }")
                await client.next_data()
                await client.next_data()
            a.process.send_signal(signal.SIGTERM)
            codes = [await client.closed_code() for client in clients]
        a.process.wait(TIMEOUT * 4)
        output = a.output()
    assert codes == [1001, 1001]
    assert "4 subscription(s) started, 4 cleaned up, 0 live" in output


async def test_a_client_gone_silent_is_dropped_after_ping_timeout(environment, tmp_path, tokens):
    """A client that vanishes without a close frame (it stops reading and answering pings)
    loses its subscription within ping interval + timeout (0.5 s + 0.5 s here)."""
    async with (
        serving(environment, tmp_path, "a") as a,
        httpx.AsyncClient(base_url=a.http_url) as http,
    ):
        sock = socket.create_connection(("127.0.0.1", a.port))
        try:
            sock.sendall(
                b"GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            )
            assert b"101" in sock.recv(4096)
            init = {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {tokens.user()}"},
            }
            start = {"id": "1", "type": "subscribe", "payload": {"query": BADGES, "variables": {}}}
            for message in (init, start):
                sock.sendall(masked_frame(json.dumps(message).encode()))
            for _ in range(40):
                if await subscriptions(http):
                    break
                await asyncio.sleep(0.05)
            assert await subscriptions(http) == 1
            started = time.monotonic()
            for _ in range(50):
                if not await subscriptions(http):
                    break
                await asyncio.sleep(0.1)
            dropped_after = time.monotonic() - started
        finally:
            sock.close()
    assert dropped_after < 3.0


def masked_frame(payload: bytes) -> bytes:
    """A client text frame (RFC 6455 §5.2), masked, for payloads under 126 bytes or 64 KiB."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        header = bytes([0x81, 0x80 | len(payload)])
    else:
        header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big")
    return header + mask + body


async def subscriptions(http: httpx.AsyncClient) -> int:
    """Live badge subscriptions according to /metrics."""
    text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith('workbench_subscriptions{field="badges"}'):
            return int(float(line.split()[-1]))
    return 0


async def test_json_logs_carry_request_ids_in_a_single_process(environment, tmp_path):
    """WORKBENCH_LOG_FORMAT=json makes `workbench serve` log one JSON object per line, with
    the request id of each request; the WebSocket handshake carries the id too."""
    env = {**environment, "WORKBENCH_LOG_FORMAT": "json"}
    async with serving(env, tmp_path, "json") as process:
        async with httpx.AsyncClient(base_url=process.http_url) as http:
            await http.get("/healthz", headers={"X-Request-Id": "probe-42"})
        async with websockets.connect(
            process.ws_url,
            subprotocols=[TRANSPORT_WS],
            compression=None,  # type: ignore[list-item]
        ) as sock:
            handshake_id = sock.response.headers.get("x-request-id")
        await asyncio.sleep(0.2)
        lines = [line for line in process.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert any(r.get("request_id") == "probe-42" for r in records)
    assert handshake_id is not None
    assert len(handshake_id) == 32

"""What tests share besides fixtures: the settings of a test run (timeouts, secrets, which
database and broker), a real uvicorn server (``running``), GraphQL clients over HTTP and over
WebSocket (both protocols), app and catalogue builders, and image builders for upload tests.
Tests import builders from here, never from each other; fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from PIL import Image
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import ClientConnection

from imworkbench.app import create_app as create_service
from imworkbench.brokers import MemoryBroker
from imworkbench.serving import uvicorn_options
from imworkbench.settings import Settings
from resolvers.apps import AppDraft, PlatformDraft
from resolvers.apps import create_app as create_app_record
from resolvers.identity import Principal, Role
from resolvers.tokens import TokenCodec
from schema.compiled import CompiledRoot
from schema.plain_documents import ObjectType
from storage import badges as store
from storage.db import Database
from storage.models import LaunchMode, Platform

# Every wait in the suite is a multiple of this (slow CI machines: raise it, don't edit tests).
TIMEOUT = float(os.environ.get("WORKBENCH_TEST_TIMEOUT", "5"))


JWT_SECRET = "test-secret-0123456789-0123456789-abcdef"


BACKEND = os.environ.get("WORKBENCH_TEST_DATABASE", "sqlite").strip().lower()


# The broker the test servers use: memory (default) or redis (.ci/run's PostgreSQL pass).
BROKER = os.environ.get("WORKBENCH_TEST_BROKER", "memory").strip().lower()


REDIS_URL = os.environ.get("WORKBENCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


POSTGRES_ADMIN_URL = os.environ.get(
    "WORKBENCH_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = (TRANSPORT_WS, LEGACY_WS)

CREATE_APP = """
mutation Create($input: AppInput!) {
  createApp(input: $input) {
    app { id name identifier kind appKey userRemovable platforms }
    appSecret
    errors { field message code }
  }
}
"""

BADGES = """
subscription Badges($platform: Platform) {
  badges(platform: $platform) {
    cause badges { appId unread } unseenCount unreadTotal version
  }
}
"""

PUSH = "/OpenPlatform/integrate/pushappnotice.php"
SETNUM = "/OpenPlatform/integrate/setnum.php"
GETAPPID = "/OpenPlatform/integrate/getappid.php"


async def gql(
    http: httpx.AsyncClient, token: str | None, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """POST a GraphQL operation; returns the decoded JSON body (asserts HTTP 200)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    # ASCII-escaped JSON, so that tests can send strings UTF-8 cannot hold (lone surrogates).
    body = json.dumps({"query": query, "variables": variables or {}}, ensure_ascii=True)
    response = await http.post("/graphql", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return without_request_ids(response.json(), response.headers["x-request-id"])


def without_request_ids(body: Any, request_id: str) -> Any:
    """``body`` with each error's ``extensions.requestId`` checked (the response's
    ``X-Request-Id``) and removed, so tests compare errors exactly."""
    if isinstance(body, dict):
        for error in body.get("errors") or []:
            extensions = error.get("extensions") or {}
            assert extensions.pop("requestId") == request_id, error
            if not extensions:  # it held only the request id
                del error["extensions"]
    return body


def web(url: str = "https://example.com/app") -> dict[str, Any]:
    """A WEB ``PlatformSettingsInput``."""
    return {"launchMode": "WEB", "webUrl": url}


async def create_app(http: httpx.AsyncClient, admin_token: str, **fields: Any) -> dict[str, Any]:
    """Create an app through GraphQL and return its ``app`` object (asserts no errors).

    Defaults: a WEB app on every platform; ``fields`` override ``AppInput`` keys.
    """
    identifier = fields.pop("identifier", None) or f"App{abs(hash(str(fields))) % 10**8:08d}"
    app_input = {
        "name": "测试应用",
        "identifier": identifier,
        "pc": web(),
        "android": web(),
        "ios": web(),
    }
    app_input.update(fields)
    body = await gql(http, admin_token, CREATE_APP, {"input": app_input})
    payload = body["data"]["createApp"]
    assert payload["errors"] == [], payload["errors"]
    return payload["app"]


async def push(http: httpx.AsyncClient, app_id: str, users: list[str]) -> httpx.Response:
    """The seed's pushappnotice request, parameter names with trailing spaces."""
    return await http.post(
        PUSH,
        data={
            "fromcid ": "1001",
            "fromuid ": "187",
            "appid ": app_id,
            "users ": " " + json.dumps(users),
        },
    )


class WSClient:
    """A GraphQL WebSocket client speaking either protocol."""

    def __init__(self, socket: ClientConnection, protocol: str) -> None:
        self.socket = socket
        self.protocol = protocol
        self._next_id = 0

    async def init(self, token: str | None, *, expect_ack: bool = True) -> dict[str, Any]:
        """Send ``connection_init`` with the token in the payload; returns the answer."""
        payload = {} if token is None else {"Authorization": f"Bearer {token}"}
        await self.socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        message = await self.receive()
        if expect_ack:
            assert message["type"] == "connection_ack", message
        return message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        """Start an operation; returns its id."""
        self._next_id += 1
        op_id = str(self._next_id)
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.socket.send(
            json.dumps(
                {
                    "id": op_id,
                    "type": kind,
                    "payload": {"query": query, "variables": variables or {}},
                }
            )
        )
        return op_id

    async def receive(self, wait: float = TIMEOUT) -> dict[str, Any]:
        """The next message, skipping keep-alives; fails after ``wait`` seconds."""
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), wait))
            if message.get("type") not in ("ka", "ping", "pong"):
                return message

    async def next_data(self, wait: float = TIMEOUT) -> dict[str, Any]:
        """The ``data`` of the next result message (``next`` / ``data``); asserts no errors."""
        message = await self.receive(wait)
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]

    async def silence(self, seconds: float = 0.3) -> None:
        """Assert that nothing arrives for ``seconds``."""
        try:
            message = await asyncio.wait_for(self.socket.recv(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {message}")

    async def _drain(self, wait: float) -> None:
        while True:
            await asyncio.wait_for(self.socket.recv(), wait)

    async def closed_code(self, wait: float = TIMEOUT) -> int:
        """Wait until the server closes the socket; return the close code."""
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await self._drain(wait)
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code


@asynccontextmanager
async def ws_client(url: str, protocol: str, **kwargs: Any) -> AsyncIterator[WSClient]:
    """Open a WebSocket with ``protocol``; compression off, as the service expects."""
    async with websockets.connect(
        url, subprotocols=[protocol], compression=None, **kwargs
    ) as socket:  # type: ignore[list-item]
        yield WSClient(socket, protocol)


@asynccontextmanager
async def badge_subscription(
    url: str, protocol: str, token: str, platform: str | None
) -> AsyncIterator[WSClient]:
    """An initialised client subscribed to ``badges(platform)`` (the SNAPSHOT not yet read)."""
    async with ws_client(url, protocol) as client:
        await client.init(token)
        await client.subscribe(BADGES, {"platform": platform})
        yield client


async def admin_execute(statement: str) -> None:
    engine = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def broker_url() -> str:
    """The broker URL for one test: memory, or Redis in a namespace of its own."""
    if BROKER == "redis":
        return f"{REDIS_URL}?namespace=test-{uuid.uuid4().hex[:12]}"
    return "memory://"


@dataclass
class Tokens:
    """Token factory bound to the test secret."""

    codec: TokenCodec

    def user(self, cid: int = 1001, uid: int = 1034, **kw: Any) -> str:
        """A ``user`` token."""
        return self.codec.issue(cid=cid, uid=uid, role=Role.USER, **kw)

    def admin(self, cid: int = 1, uid: int = 1) -> str:
        """A ``platform_admin`` token."""
        return self.codec.issue(cid=cid, uid=uid, role=Role.PLATFORM_ADMIN)

    def enterprise_admin(self, cid: int = 1001, uid: int = 9) -> str:
        """An ``enterprise_admin`` token of enterprise ``cid``."""
        return self.codec.issue(cid=cid, uid=uid, role=Role.ENTERPRISE_ADMIN)


def free_socket() -> socket.socket:
    """A bound loopback TCP socket on a free port, for uvicorn to serve on."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for sockets
    # that say they are TCP; without it every keep-alive request waits ~40 ms for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class RunningServer:
    """A uvicorn server running the app on loopback."""

    http_url: str
    ws_url: str
    app: Any


@asynccontextmanager
async def running(
    settings: Settings, sock: socket.socket | None = None
) -> AsyncIterator[RunningServer]:
    """Serve the app for ``settings`` with a real uvicorn server on a free port (or on the
    bound ``sock``) while the block runs, then shut it down through its lifespan (tests that
    restart the service)."""
    application = create_service(settings)
    sock = sock or free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application, lifespan="on", log_level="warning", **uvicorn_options(settings)
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    for _ in range(int(TIMEOUT * 100)):
        if uv.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not uv.started:
        task.result() if task.done() else task.cancel()
        raise RuntimeError("test server did not start")
    try:
        yield RunningServer(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/graphql", application
        )
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, TIMEOUT * 2)
        sock.close()


VALID_NAMES = {
    "4 ASCII": ("abcd", "abcd"),
    "20 ASCII": ("a" * 20, "a" * 20),
    "2 CJK": ("应用", "应用"),
    "10 CJK": ("应" * 10, "应" * 10),
    "ASCII and CJK, 5 units": ("A应用", "A应用"),
    "ASCII and CJK, 4 units": ("ab应", "ab应"),
    "18 ASCII and 1 CJK, 20 units": ("a" * 18 + "应", "a" * 18 + "应"),
    "outer spaces trimmed": ("  abcd  ", "abcd"),
    "ideographic space trimmed": ("  应用\u3000", "应用"),
    "inner spaces kept": ("a b c", "a b c"),
}


INVALID_NAMES = {
    "3 ASCII": ("abc", "NAME_LENGTH"),
    "21 ASCII": ("a" * 21, "NAME_LENGTH"),
    "1 CJK": ("应", "NAME_LENGTH"),
    "11 CJK": ("应" * 11, "NAME_LENGTH"),
    "10 CJK and 1 ASCII": ("应" * 10 + "a", "NAME_LENGTH"),
    "3 ASCII once trimmed": ("  abc  ", "NAME_LENGTH"),
    "spaces only": ("      ", "NAME_LENGTH"),
    "empty": ("", "NAME_LENGTH"),
    "bell": ("ab\x07cd", "INVALID_NAME"),
    "trailing NUL": ("应用\x00", "INVALID_NAME"),
    "inner newline": ("ab\ncd", "INVALID_NAME"),
    "zero-width space": ("应\u200b用", "INVALID_NAME"),
    "lone surrogate": ("应用\ud800", "INVALID_NAME"),
    "private use": ("应用\ue000", "INVALID_NAME"),
    "Hangul fillers only": ("\u3164\u3164", "INVALID_NAME"),
    "braille blanks only": ("\u2800\u2800", "INVALID_NAME"),
    "combining marks only": ("\u0301" * 5, "INVALID_NAME"),
}


INVALID_IDENTIFIERS = ["abc", "a" * 21, "1abcd", "_abcd", "ab-cd", "ab cd", "应用标识", ""]


async def new_group(http, admin, name):
    """Create a group; returns its id."""
    body = await gql(http, admin, CREATE_GROUP, {"n": name})
    assert body["data"]["createGroup"]["errors"] == [], body
    return body["data"]["createGroup"]["group"]["id"]


async def new_category(http, admin, group_id, name):
    """Create a category; returns its id."""
    body = await gql(http, admin, CREATE_CATEGORY, {"g": group_id, "n": name})
    assert body["data"]["createCategory"]["errors"] == [], body
    return body["data"]["createCategory"]["category"]["id"]


def picture(size: tuple[int, int], colour: tuple[int, int, int], fmt: str) -> bytes:
    """A one-colour RGB image of ``size`` in format ``fmt``."""
    return encoded(Image.new("RGB", size, colour), fmt)


def png_with(extra: bytes) -> bytes:
    """A valid 8x8 PNG with ``extra`` chunks inserted right after its IHDR chunk."""
    plain = picture((8, 8), (0, 128, 0), "PNG")
    after_ihdr = 8 + 25
    return plain[:after_ihdr] + extra + plain[after_ihdr:]


def handmade_gif(screen: tuple[int, int], image: tuple[int, int]) -> bytes:
    """A GIF made byte by byte: a logical screen of ``screen``, one image descriptor of
    ``image`` without colour tables, and the LZW data of one pixel (clear, 0, end)."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", *screen, 0, 0, 0)
        + b","
        + struct.pack("<HHHHB", 0, 0, *image, 0)
        + b"\x02\x02\x44\x01\x00"
        + b";"
    )


Frame = tuple[tuple[int, int], tuple[int, int]]
"""A frame's ``(left, top)`` offset and ``(width, height)``, in pixels."""


def gif_with_frames(screen: tuple[int, int], frames: list[Frame]) -> bytes:
    """A GIF made byte by byte: a logical screen of ``screen`` and one image descriptor per
    frame, each holding the LZW data of one pixel (clear, 0, end)."""
    descriptors = b"".join(
        b"," + struct.pack("<HHHHB", *offset, *size, 0) + b"\x02\x02\x44\x01\x00"
        for offset, size in frames
    )
    return b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0) + descriptors + b";"


def fctl(
    sequence: int, size: tuple[int, int], offset: tuple[int, int] = (0, 0), ops: bytes = b"\0\0"
) -> bytes:
    """An APNG frame control chunk: sequence number, size, offset, a 1/10 s delay, ``ops``
    (dispose and blend)."""
    return chunk(b"fcTL", struct.pack(">IIIIIHH", sequence, *size, *offset, 1, 10) + ops)


def rgba_rows(size: tuple[int, int]) -> bytes:
    """Deflated transparent RGBA scanlines of ``size``, as IDAT and fdAT carry them."""
    width, height = size
    return zlib.compress((b"\0" + bytes(4 * width)) * height)


def apng(
    frames: int = 2,
    size: tuple[int, int] = (2, 2),
    plays: int = 0,
    controls: list[bytes] | None = None,
) -> bytes:
    """An APNG made byte by byte: IHDR of ``size``, acTL declaring ``frames`` frames and
    ``plays`` plays, then the default image (fcTL 0 and IDAT) and, for each chunk of
    ``controls`` (by default one full-canvas frame), that chunk and an fdAT of the canvas."""
    if controls is None:
        controls = [fctl(1, size)]
    body = b"".join(
        control + chunk(b"fdAT", struct.pack(">I", 2 + 2 * number) + rgba_rows(size))
        for number, control in enumerate(controls)
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", *size, 8, 6, 0, 0, 0))
        + chunk(b"acTL", struct.pack(">II", frames, plays))
        + fctl(0, size)
        + chunk(b"IDAT", rgba_rows(size))
        + body
        + chunk(b"IEND", b"")
    )


@functools.cache
def inflating_to(size: int) -> bytes:
    """A zlib stream of ``size`` zero bytes, compressed without ever holding them all."""
    compressor = zlib.compressobj(9)
    block = bytes(MiB)
    parts = [compressor.compress(block) for _ in range(size // MiB)]
    parts.append(compressor.compress(bytes(size % MiB)))
    parts.append(compressor.flush())
    return b"".join(parts)


def ztxt(keyword: bytes, stream: bytes) -> bytes:
    """A zTXt chunk: keyword, NUL, compression method 0, zlib stream."""
    return chunk(b"zTXt", keyword + b"\0\0" + stream)


class RecordingBroker(MemoryBroker):
    """A memory broker that also keeps every published message, in publish order."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[str, dict]] = []

    async def publish(self, batch: Iterable[tuple[str, bytes]]) -> None:
        """Record, then deliver."""
        items = list(batch)
        self.messages.extend((channel, json.loads(message)) for channel, message in items)
        await super().publish(items)


async def new_app(db: Database, identifier: str, **kw) -> int:
    """Create a WEB app on every platform; returns its id."""
    web = PlatformDraft(launch_mode=LaunchMode.WEB, web_url="https://example.com/")
    draft = AppDraft(
        name="计数应用", identifier=identifier, platforms=dict.fromkeys(Platform, web), **kw
    )
    created = await create_app_record(db=db, principal=ADMIN, draft=draft)
    assert created.app.id is not None
    return created.app.id


async def unread_of(db: Database, cid: int, uid: int) -> tuple[dict[int, int], store.UserState]:
    """The user's badges and state, read back from the database."""
    async with db.read() as session:
        return (
            await store.read_unread(session, cid=cid, uid=uid),
            await store.read_state(session, cid=cid, uid=uid),
        )


CREATE_GROUP = """
mutation($n: String!) {
  createGroup(name: $n) {
    group { id name position } errors { field code } } }
"""


CREATE_CATEGORY = """
mutation($g: ID!, $n: String!) {
  createCategory(groupId: $g, name: $n) {
    category { id name position groupId } errors { field code } } }
"""


MiB = 1024 * 1024


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    """``image`` saved in format ``fmt``."""
    out = BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


ADMIN = Principal(cid=1, uid=1, account="admin", role=Role.PLATFORM_ADMIN)


def leaf_documents(compiled: CompiledRoot, arguments: str) -> list[tuple[str, str, str]]:
    """``(path to the leaf, plain document, the same through Strawberry)`` for every leaf of
    every type a compiled root reaches (``schema.compiled``; each type by its first path),
    generated from its table.

    Each plain document selects the leaf twice (as itself and aliased) with ``__typename`` at
    every level, the root field and every object field on the way aliased; its twin wraps the
    root field's selection in an inline fragment, which no compiled plan accepts, so
    graphql-core's executor answers it."""
    found: list[tuple[str, str, str]] = []
    seen: set[str] = set()

    def visit(kind: ObjectType, path: list[str]) -> None:
        if kind.name in seen:
            return
        seen.add(kind.name)
        for leaf in kind.leaves:
            inner = f"__typename v: {leaf} {leaf}"
            for depth, name in reversed(list(enumerate(path))):
                inner = f"__typename o{depth}: {name} {{ {inner} }}"
            head = f"{compiled.operation.value} {{ r: {compiled.field}{arguments}"
            plain = f"{head} {{ {inner} }} }}"
            executed = f"{head} {{ ... on {compiled.root.name} {{ {inner} }} }} }}"
            found.append((".".join([compiled.field, *path, leaf]), plain, executed))
        for name, child in kind.objects.items():
            visit(child.kind, [*path, name])

    visit(compiled.root, [])
    return found


class TcpProxy:
    """A TCP proxy between a client under test and a real server (Redis, PostgreSQL), so a test
    can simulate network trouble without touching the shared server (common brief).

    ``stall()``: stop forwarding in both directions without closing (bytes are held and sent on
    ``resume()``), as a paused server looks. ``blackhole()``: the connections open at that
    moment drop every byte from now on, silently and forever (a half-open link: the peer
    vanished without a FIN or RST); later connections forward normally again.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._links: list[dict[str, bool]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> TcpProxy:
        """Listen on a free loopback port (``self.port``)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stall(self) -> None:
        """Hold every byte in both directions until ``resume()``; connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, held bytes first."""
        self._flowing.set()

    def blackhole(self) -> None:
        """Silently drop every byte of the connections open now, for good."""
        for link in self._links:
            link["dead"] = True

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, upstream_writer]
        link = {"dead": False}
        self._links.append(link)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: dict[str, bool]
    ) -> None:
        try:
            while data := await source.read(65536):
                await self._flowing.wait()
                if link["dead"]:
                    continue
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not link["dead"]:
                sink.close()


@asynccontextmanager
async def holding_write_lock(database_url: str) -> AsyncIterator[None]:
    """Another writer holds the database's write lock while the block runs: on SQLite a
    ``BEGIN IMMEDIATE`` transaction on the test's file, on PostgreSQL an ``EXCLUSIVE`` lock on
    the badge tables of the test's own database (never the shared server's other databases)."""
    if BACKEND == "sqlite":
        import sqlite3

        path = database_url.split("///", 1)[1]
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        return
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection, connection.begin() as transaction:
            await connection.execute(
                text("LOCK TABLE user_badge_state, app_badge IN EXCLUSIVE MODE")
            )
            yield
            await transaction.rollback()
    finally:
        await engine.dispose()

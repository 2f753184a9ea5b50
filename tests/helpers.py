"""Test clients: GraphQL over HTTP, GraphQL over WebSocket (both protocols), and app set-up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from schema.compiled import CompiledRoot
from schema.plain_documents import ObjectType
from tests.conftest import TIMEOUT

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

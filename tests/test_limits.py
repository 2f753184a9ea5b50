"""Request size limits on /graphql and on WebSocket messages (protocol safety, issue 2)."""

from __future__ import annotations

import json

from tests.helpers import TRANSPORT_WS, ws_client

QUERY = "{ workbench(platform: PC) { version } }"


async def test_graphql_body_over_the_cap_is_413(http, tokens):
    """A /graphql body over 1 MiB is refused with 413 before parsing."""
    padding = "#" + "x" * (1024 * 1024) + "\n"
    response = await http.post(
        "/graphql",
        content=json.dumps({"query": padding + QUERY}),
        headers={"Authorization": f"Bearer {tokens.user()}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_streamed_body_over_the_cap_is_413(http, tokens):
    """A chunked body without Content-Length is cut off at the cap with 413."""

    async def chunks():
        yield b'{"query": "#'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = await http.post(
        "/graphql",
        content=chunks(),
        headers={"Authorization": f"Bearer {tokens.user()}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_body_under_the_cap_is_served(http, tokens):
    """A normal request passes the size check untouched."""
    response = await http.post(
        "/graphql",
        json={"query": QUERY},
        headers={"Authorization": f"Bearer {tokens.user()}"},
    )
    assert response.json() == {"data": {"workbench": {"version": 0}}}


async def test_websocket_message_over_64_kib_closes_the_connection(server, tokens):
    """A WebSocket frame over the 64 KiB cap closes the connection with 1009 (message too big)."""
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        await client.socket.send(json.dumps({"type": "ping", "payload": {"x": "y" * 70_000}}))
        assert await client.closed_code() == 1009

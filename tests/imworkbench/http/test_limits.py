"""Request size limits on /graphql and on WebSocket messages (protocol safety, issue 2)."""

from __future__ import annotations

import json

import pytest

from tests.factories import TRANSPORT_WS, without_request_ids, ws_client

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
    assert (
        without_request_ids(response.json(), response.headers["x-request-id"])["errors"][0][
            "extensions"
        ]["code"]
        == "PAYLOAD_TOO_LARGE"
    )


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
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "data": {"workbench": {"version": 0}}
    }


async def test_websocket_message_over_64_kib_closes_the_connection(server, tokens):
    """A WebSocket frame over the 64 KiB cap closes the connection with 1009 (message too big)."""
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        await client.socket.send(json.dumps({"type": "ping", "payload": {"x": "y" * 70_000}}))
        assert await client.closed_code() == 1009


def fan_out(levels: int, leaf: str = "__typename") -> str:
    """A document of ``levels`` fragments, each spreading the next one twice (2^levels paths)."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"query {{ ...F0 }} {fragments} fragment F{levels} on Query {{ {leaf} }}"


async def test_fragment_fan_out_is_answered_at_once(http, tokens):
    """40 doubling fragments (2^40 paths, under 2 KiB) are validated in linear time."""
    # when: with Strawberry's own limiters this froze the whole server
    response = await http.post(
        "/graphql",
        json={"query": fan_out(40)},
        headers={"Authorization": f"Bearer {tokens.user()}"},
    )
    # then
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "data": {"__typename": "Query"}
    }


async def test_aliases_through_fragments_are_counted_per_spread(http, tokens):
    """An alias inside a fragment spread 2^40 times counts 2^40 times and is refused."""
    response = await http.post(
        "/graphql",
        json={"query": fan_out(40, leaf="a: __typename")},
        headers={"Authorization": f"Bearer {tokens.user()}"},
    )
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "data": None,
        "errors": [{"message": f"{2**40} aliases found. Allowed: 30"}],
    }


async def test_long_fragment_chain_is_answered(http, tokens):
    """A chain of 50 fragments adds no depth; it is answered, each fragment walked once."""
    chain = " ".join(f"fragment F{i} on Workbench {{ ...F{i + 1} }}" for i in range(50))
    query = (
        f"query Chain {{ workbench(platform: PC) {{ ...F0 }} }} {chain} "
        "fragment F50 on Workbench { version }"
    )
    response = await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {tokens.user()}"}
    )
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "data": {"workbench": {"version": 0}}
    }


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"1",
        b'"x"',
        b'{"query": "{ __typename }\xff"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"query": "query($n: Int) { __typename }", "variables": {"n": ' + b"9" * 5000 + b"}}",
        b'{"query": "{ __typename }", "operationName": 5}',
    ],
    ids=["null", "number", "string", "invalid-utf8", "deep-nesting", "huge-int", "bad-name"],
)
async def test_unparseable_bodies_are_400(http, tokens, body):
    """Bodies Strawberry cannot take apart are a 400 with a JSON error, never a 500."""
    response = await http.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {tokens.user()}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert (
        without_request_ids(response.json(), response.headers["x-request-id"])["errors"][0][
            "extensions"
        ]["code"]
        == "BAD_REQUEST"
    )


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_subscription_over_http_is_a_request_error(http, tokens, method):
    """A subscription sent over HTTP is refused with 400: subscriptions need a WebSocket."""
    query = "subscription { badges { version } }"
    headers = {"Authorization": f"Bearer {tokens.user()}"}
    if method == "GET":
        response = await http.get("/graphql", params={"query": query}, headers=headers)
    else:
        response = await http.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 400
    assert (
        "subscriptions"
        in without_request_ids(response.json(), response.headers["x-request-id"])["errors"][0][
            "message"
        ]
    )


async def test_get_without_a_query_never_serves_a_cdn_page(http, tokens):
    """GET /graphql with Accept */* and no query is not Strawberry's CDN-loading IDE page."""
    response = await http.get(
        "/graphql", headers={"Authorization": f"Bearer {tokens.user()}", "Accept": "*/*"}
    )
    assert response.status_code in (400, 404)
    assert "unpkg" not in response.text

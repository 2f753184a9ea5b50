"""WebSocket protocols under client mistakes and abuse (issue 11 items 1, 2 and 8): GraphQL errors
answered as ``error`` messages, the subscription cap, the message rate limit, invalid UTF-8 and
server-side closes racing a send; none of them an ERROR log line."""

from __future__ import annotations

import json
import logging

import pytest

from tests.factories import (
    BADGES,
    LEGACY_WS,
    PROTOCOLS,
    TRANSPORT_WS,
    running,
    without_request_ids,
    ws_client,
)

# Documents each refused before execution, by the parser or by validation (the configured
# limits: 2000 tokens, depth 12, 30 aliases); OPERATION is "query" or "subscription".
BAD_DOCUMENTS = {
    "syntax": "OPERATION { badges(platform: PC) { version }",
    "tokens": "OPERATION { badges(platform: PC) { " + "version " * 2100 + "} }",
    "nesting": "OPERATION { badges " + "{ a " * 3000 + "}" * 3000 + " }",
    "depth": "OPERATION { badges(platform: PC) { " + "a { " * 15 + "b" + " }" * 15 + " } }",
    "aliases": "OPERATION { badges(platform: PC) { "
    + " ".join(f"v{i}: version" for i in range(40))
    + " } }",
    "unknown-field": "OPERATION { badges(platform: PC) { nope } }",
    "unknown-argument": "OPERATION { badges(platform: PC, colour: RED) { version } }",
    "empty": "",
    "comment-only": "# nothing here",
}


def errors_of(records: list[logging.LogRecord]) -> list[str]:
    """The messages of ERROR (and worse) log records."""
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR]


async def http_errors(http, token: str, document: str) -> list[dict]:
    """The errors HTTP answers ``document`` with (request ids checked and removed)."""
    response = await http.post(
        "/graphql", json={"query": document}, headers={"Authorization": f"Bearer {token}"}
    )
    return without_request_ids(response.json(), response.headers["x-request-id"])["errors"]


async def ws_answer(url: str, protocol: str, token: str, document: str) -> dict:
    """The first message answering ``document`` on a fresh connection; the connection must
    then still run a badges subscription (the error ended only that operation)."""
    async with ws_client(url, protocol) as client:
        await client.init(token)
        await client.subscribe(document)
        answer = await client.receive()
        await client.subscribe(BADGES, {"platform": "PC"})
        assert (await client.next_data())["badges"]["cause"] == "SNAPSHOT"
    return answer


@pytest.mark.parametrize("name", list(BAD_DOCUMENTS))
async def test_graphql_transport_ws_answers_refused_documents_with_error(
    server, http, tokens, caplog, name
):
    """graphql-transport-ws answers a document refused before execution with an ``error``
    message holding exactly the errors HTTP gives for it; no ERROR log line."""
    # given
    caplog.set_level(logging.INFO)
    document = BAD_DOCUMENTS[name].replace("OPERATION", "query")
    expected = await http_errors(http, tokens.user(), document)
    # when
    answer = await ws_answer(server.ws_url, TRANSPORT_WS, tokens.user(), document)
    # then
    assert answer == {"id": "1", "type": "error", "payload": expected}
    assert errors_of(caplog.records) == []


@pytest.mark.parametrize("name", list(BAD_DOCUMENTS))
async def test_graphql_ws_answers_refused_subscriptions_with_error(server, tokens, caplog, name):
    """graphql-ws answers a subscription refused before execution with an ``error`` message
    holding its first error, the one graphql-transport-ws gives first; no ERROR log line."""
    # given
    caplog.set_level(logging.INFO)
    document = BAD_DOCUMENTS[name].replace("OPERATION", "subscription")
    transport = await ws_answer(server.ws_url, TRANSPORT_WS, tokens.user(), document)
    assert transport["type"] == "error", transport
    # when
    answer = await ws_answer(server.ws_url, LEGACY_WS, tokens.user(), document)
    # then
    assert answer == {"type": "error", "id": "1", "payload": transport["payload"][0]}
    assert errors_of(caplog.records) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_invalid_utf8_text_frame_closes_1007_without_error_log(
    server, tokens, caplog, protocol
):
    """A text frame that is not UTF-8 closes the connection with 1007 (RFC 6455 §8.1); the
    client's mistake is not logged as a server error."""
    # given
    caplog.set_level(logging.INFO)
    async with ws_client(server.ws_url, protocol) as client:
        await client.init(tokens.user())
        # when
        await client.socket.send(b'{"type": "ping", "payload": {"x": "\xff\xfe"}}', text=True)
        # then
        assert await client.closed_code() == 1007
    assert errors_of(caplog.records) == []


async def test_uvicorn_server_errors_stay_errors(server, caplog):
    """Only the client's mistakes are downgraded: uvicorn's own errors keep their level and
    traceback."""
    # given: the running service has installed its filter on uvicorn's logger
    caplog.set_level(logging.INFO)
    try:
        raise RuntimeError("a fault of the server")
    except RuntimeError:
        # when
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application\n")
    # then
    [record] = [r for r in caplog.records if r.name == "uvicorn.error"]
    assert (record.levelno, record.exc_info is not None) == (logging.ERROR, True)


# Five messages, then one every 100 s: deterministic on a loaded machine.
SLOW = {"ws_messages_per_second": 0.01, "ws_message_burst": 5}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_messages_past_the_rate_limit_close_4429(settings, tokens, caplog, protocol):
    """A connection sending faster than its message rate (burst 5 here) is closed with 4429
    and a reason saying why; the messages within the burst were served."""
    # given
    caplog.set_level(logging.INFO)
    async with (
        running(settings.model_copy(update=SLOW)) as server,
        ws_client(server.ws_url, protocol) as client,
    ):
        await client.init(tokens.user())  # 1
        await client.subscribe(BADGES, {"platform": "PC"})  # 2
        assert (await client.next_data())["badges"]["cause"] == "SNAPSHOT"
        # when: three more messages fit the burst, the sixth does not
        stop = "complete" if protocol == TRANSPORT_WS else "stop"
        for number in range(3, 10):
            await client.socket.send(json.dumps({"type": stop, "id": f"unknown-{number}"}))
        # then
        assert await client.closed_code() == 4429
        assert client.socket.close_reason == "Too many messages: more than 5 at once or 0.01/s"
    assert errors_of(caplog.records) == []


async def test_rate_limit_counts_frames_that_are_not_json(settings, tokens):
    """Frames that do not even decode count towards the rate (graphql-ws ignores them)."""
    async with (
        running(settings.model_copy(update=SLOW)) as server,
        ws_client(server.ws_url, LEGACY_WS) as client,
    ):
        await client.init(tokens.user())
        for _ in range(10):
            await client.socket.send("not json")
        assert await client.closed_code() == 4429

"""WebSocket protocols under client mistakes and abuse (issue 11 items 1, 2 and 8): GraphQL errors
answered as ``error`` messages, the subscription cap, the message rate limit, invalid UTF-8 and
server-side closes racing a send; none of them an ERROR log line."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from tests.factories import (
    BADGES,
    LEGACY_WS,
    PROTOCOLS,
    TIMEOUT,
    TRANSPORT_WS,
    create_app,
    free_socket,
    push,
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
    "long-int-literal": "OPERATION { badges(platform: " + "9" * 5000 + ") { version } }",
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
    """Frames that do not even decode count towards the rate (graphql-ws answers each with
    ``connection_error`` and goes on)."""
    async with (
        running(settings.model_copy(update=SLOW)) as server,
        ws_client(server.ws_url, LEGACY_WS) as client,
    ):
        await client.init(tokens.user())
        for _ in range(10):
            await client.socket.send("not json")
        assert await client.closed_code() == 4429


class StalledClient:
    """A graphql-transport-ws client on a raw socket that reads only when told to: once it
    stops, the server's writes pile up in its buffers and its pings go unanswered (a client
    whose network died without a FIN). Its receive buffer is small, so little piles up in
    the kernel before the server's own transport buffer holds the rest."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol

    @classmethod
    async def connect(cls, url: str) -> StalledClient:
        """Connect with a 4 KiB receive buffer and complete the WebSocket handshake."""
        loop = asyncio.get_running_loop()
        uri = parse_uri(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, (uri.host, uri.port))
        protocol = ClientProtocol(uri, subprotocols=[Subprotocol(TRANSPORT_WS)])
        protocol.send_request(protocol.connect())
        client = cls(sock, protocol)
        await client.flush()
        while protocol.handshake_exc is None and protocol.state is State.CONNECTING:
            protocol.receive_data(await asyncio.wait_for(loop.sock_recv(sock, 65536), TIMEOUT))
        assert protocol.state is State.OPEN, protocol.handshake_exc
        protocol.events_received()  # the handshake response
        return client

    async def flush(self) -> None:
        """Write what the protocol has to send."""
        loop = asyncio.get_running_loop()
        for chunk in self.protocol.data_to_send():
            await loop.sock_sendall(self.sock, chunk)

    async def send(self, message: dict) -> None:
        """Send one JSON message."""
        self.protocol.send_text(json.dumps(message).encode())
        await self.flush()

    async def receive(self) -> dict:
        """The next text message (answering the server's pings meanwhile)."""
        loop = asyncio.get_running_loop()
        while True:
            for event in self.protocol.events_received():
                if event.opcode is Opcode.TEXT:
                    return json.loads(event.data)
            await self.flush()  # pongs
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), TIMEOUT)
            self.protocol.receive_data(data)

    def close(self) -> None:
        """Drop the TCP connection."""
        self.sock.close()


async def test_server_close_racing_a_send_is_a_disconnect(settings, http, tokens, caplog):
    """When uvicorn drops a client that stopped answering pings while results are still on
    their way, the send that finds the connection closed ends the subscription as a
    disconnect: no "Unexpected ASGI message" ERROR, no error outcome."""
    # given: a server with small socket buffers and fast pings, and a subscribed client
    caplog.set_level(logging.INFO)
    listener = free_socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # inherited on accept
    fast = {"ws_ping_interval": 0.5, "ws_ping_timeout": 0.5, "ws_message_burst": 10_000}
    async with running(settings.model_copy(update=fast), listener) as server:
        admin = httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT)
        app = await create_app(admin, tokens.admin(), identifier="RacedApp")
        client = await StalledClient.connect(server.ws_url)
        await client.send(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {tokens.user()}"}}
        )
        assert (await client.receive())["type"] == "connection_ack"
        await client.send(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": BADGES, "variables": {"platform": "PC"}},
            }
        )
        assert (await client.receive())["type"] == "next"
        # when: the client stops reading; about 40 KiB of pongs fill the kernel's buffers and
        # leave the rest in uvicorn's (under its 64 KiB high-water mark, so sends go on)
        for _ in range(2300):
            client.protocol.send_text(b'{"type": "ping"}')
        await client.flush()
        # ...the ping timeout closes the connection while its buffer has not drained, and
        # notices keep coming until the subscription has ended
        try:
            for _ in range(int(TIMEOUT * 20)):
                await push(admin, app["id"], ["1001,1034"])
                metrics = (await admin.get("/metrics")).text
                if 'workbench_subscriptions{field="badges"} 0.0' in metrics:
                    break
                await asyncio.sleep(0.1)
        finally:
            client.close()
            await admin.aclose()
    # then
    assert 'workbench_subscriptions{field="badges"} 0.0' in metrics
    assert 'outcome="error",type="subscription"' not in metrics
    assert errors_of(caplog.records) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_starts_over_the_cap_are_refused_before_parsing(server, tokens, protocol):
    """With the cap (3 in tests) reached, a further operation is refused for the cap even when
    its document would not parse: the cap is checked before any parsing."""
    async with ws_client(server.ws_url, protocol) as client:
        await client.init(tokens.user())
        for _ in range(3):
            await client.subscribe(BADGES, {"platform": "PC"})
            await client.next_data()
        # when
        op_id = await client.subscribe(BAD_DOCUMENTS["tokens"].replace("OPERATION", "subscription"))
        message = await client.receive()
    # then
    limit = {"message": "Subscription limit reached"}
    payload = [limit] if protocol == TRANSPORT_WS else limit
    assert message == {"id": op_id, "type": "error", "payload": payload}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_configured_token_limit_applies_on_both_protocols(server, tokens, protocol):
    """A subscription of 2,001 tokens is refused against the configured limit (2000), on the
    legacy protocol as on the other."""
    document = "subscription { badges(platform: PC) { " + "version " * 1990 + "} }"
    async with ws_client(server.ws_url, protocol) as client:
        await client.init(tokens.user())
        await client.subscribe(document)
        message = await client.receive()
    error = message["payload"][0] if protocol == TRANSPORT_WS else message["payload"]
    assert (message["type"], error["message"]) == (
        "error",
        "Syntax Error: Document contains more than 2000 tokens. Parsing aborted.",
    )


# Operation selection (issue 11 item 1, as a hostile tester found it): the operation to run
# named wrongly, or not named among several. Each: the document, the operationName (None: left
# out), and HTTP's message for it.
WORKBENCH_QUERY = "OPERATION A { badges(platform: PC) { version } }"
SELECTIONS = {
    "unknown name": (WORKBENCH_QUERY, "B", 'Unknown operation named "B".'),
    "empty name": (WORKBENCH_QUERY, "", 'Unknown operation named "".'),
    "name for an anonymous operation": (
        "OPERATION { badges(platform: PC) { version } }",
        "A",
        'Unknown operation named "A".',
    ),
    "several operations, none named": (
        WORKBENCH_QUERY + " OPERATION B { badges(platform: PC) { unreadTotal } }",
        None,
        "Must provide operation name if query contains multiple operations.",
    ),
}


def operation_payload(document: str, name: str | None) -> dict:
    """A request payload of ``document``, with ``operationName`` when ``name`` is given."""
    return {"query": document} if name is None else {"query": document, "operationName": name}


async def ws_selection_answer(url: str, protocol: str, token: str, payload: dict) -> dict:
    """The first message answering ``payload`` on a fresh connection, which must then still
    run a badges subscription."""
    async with ws_client(url, protocol) as client:
        await client.init(token)
        kind = "subscribe" if protocol == TRANSPORT_WS else "start"
        await client.socket.send(json.dumps({"id": "1", "type": kind, "payload": payload}))
        answer = await client.receive()
        await client.subscribe(BADGES, {"platform": "PC"})
        assert (await client.next_data())["badges"]["cause"] == "SNAPSHOT"
    return answer


@pytest.mark.parametrize("name", list(SELECTIONS))
async def test_operation_selection_mistakes_are_client_errors(server, http, tokens, caplog, name):
    """An unknown, empty or missing operationName is refused alike over HTTP (400) and both
    WebSocket protocols (an ``error`` message), nothing runs, and no ERROR is logged."""
    # given
    caplog.set_level(logging.INFO)
    document, operation_name, message = SELECTIONS[name]
    query = operation_payload(document.replace("OPERATION", "query"), operation_name)
    subscription = operation_payload(document.replace("OPERATION", "subscription"), operation_name)
    # when
    over_http = await http.post(
        "/graphql", json=query, headers={"Authorization": f"Bearer {tokens.user()}"}
    )
    transport = await ws_selection_answer(server.ws_url, TRANSPORT_WS, tokens.user(), query)
    legacy = await ws_selection_answer(server.ws_url, LEGACY_WS, tokens.user(), subscription)
    # then
    assert over_http.status_code == 400, over_http.text
    assert [e["message"] for e in over_http.json()["errors"]] == [message]
    assert transport == {"id": "1", "type": "error", "payload": [{"message": message}]}
    assert legacy == {"id": "1", "type": "error", "payload": {"message": message}}
    assert errors_of(caplog.records) == []


async def test_several_operations_without_a_name_run_nothing(http, tokens):
    """A document holding a mutation and a query, neither chosen, runs neither: the mutation
    first in the document (openWorkbench, which zeroes unseenCount) is not run silently."""
    # given: one unseen notice
    user = tokens.user()
    app = await create_app(http, tokens.admin(), identifier="Selected")
    await push(http, app["id"], ["1001,1034"])
    unseen = "{ workbench(platform: PC) { unseenCount } }"
    document = "mutation M { openWorkbench { version } } " + "query Q " + unseen
    headers = {"Authorization": f"Bearer {user}"}
    # when
    response = await http.post("/graphql", json={"query": document}, headers=headers)
    # then
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["message"] == (
        "Must provide operation name if query contains multiple operations."
    )
    after = await http.post("/graphql", json={"query": unseen}, headers=headers)
    assert after.json() == {"data": {"workbench": {"unseenCount": 1}}}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_query_with_an_overlong_integer_is_refused_on_both_protocols(
    server, tokens, caplog, protocol
):
    """A query (which graphql-ws does not run) holding a 5000-digit literal gets the literal's
    error, not "Unexpected error." and a traceback."""
    # given
    caplog.set_level(logging.INFO)
    document = "query { app(id: " + "9" * 5000 + ") { id } }"
    # when
    answer = await ws_selection_answer(server.ws_url, protocol, tokens.user(), {"query": document})
    # then
    assert answer["type"] == "error", answer
    payload = answer["payload"] if protocol == LEGACY_WS else answer["payload"][0]
    assert payload["message"] == "Integer literal of 5000 digits is out of range."
    assert errors_of(caplog.records) == []


@pytest.mark.parametrize(
    "frame", ["not json", "[" * 20_000 + "]" * 20_000, '{"type": "start", "id": "1", "payload":']
)
async def test_graphql_ws_answers_frames_it_cannot_read(server, tokens, caplog, frame):
    """graphql-ws answers a frame that is not JSON with ``connection_error`` and a message (as
    the protocol's reference server does) instead of silence; the connection goes on."""
    # given
    caplog.set_level(logging.INFO)
    async with ws_client(server.ws_url, LEGACY_WS) as client:
        await client.init(tokens.user())
        # when
        await client.socket.send(frame)
        answer = await client.receive()
        # then
        assert answer == {
            "type": "connection_error",
            "payload": {"message": "WebSocket message must be valid JSON"},
        }
        await client.subscribe(BADGES, {"platform": "PC"})
        assert (await client.next_data())["badges"]["cause"] == "SNAPSHOT"
    assert errors_of(caplog.records) == []

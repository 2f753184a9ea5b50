"""The compiled ``badges`` subscription (``schema.compiled``): on both WebSocket protocols it
sends exactly what Strawberry's executor sends for the same selection (wrapped in an inline
fragment, which no plan accepts, so the executor runs it), leaf by leaf as generated from the
compiled tables and for hand-picked documents; anything outside the plain shape falls back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import httpx
import pytest
from sqlalchemy import text

import schema.compiled as compiled_module
from resolvers.badges import BadgeEventData
from resolvers.messages import BadgeCause
from schema import WorkbenchSchema
from schema.compiled import BADGES, badges_plan
from schema.plain_documents import MAX_DOCUMENT_CHARS
from storage.db import Database
from storage.models import Platform
from tests.factories import (
    LEGACY_WS,
    PROTOCOLS,
    SETNUM,
    TRANSPORT_WS,
    create_app,
    leaf_documents,
    push,
    ws_client,
)

PLAIN = "subscription B($platform: Platform) { badges(platform: $platform) { cause unreadTotal } }"
EVERYTHING = """
subscription Everything($p: Platform! = ANDROID) {
  live: badges(platform: $p) {
    __typename why: cause unseenCount
    counts: badges { __typename id: appId unread }
    unreadTotal version
  }
}
"""
LITERAL = "subscription { badges(platform: PC) { cause badges { appId unread } version } }"
NO_PLATFORM = "subscription { badges { unreadTotal badges { unread } } }"
MANY_ALIASES = "subscription { badges { " + " ".join(f"c{i}: cause" for i in range(60)) + " } }"
EQUIVALENT = [(PLAIN, {"platform": "PC"}), (EVERYTHING, {}), (LITERAL, {}), (NO_PLATFORM, {})]

LIMITS = WorkbenchSchema.limits  # the defaults the test servers use
LEAVES = leaf_documents(BADGES, "(platform: PC)")


def through_strawberry(document: str) -> str:
    """The same selection inside an inline fragment: not plain, so the executor runs it."""
    head, _, rest = document.partition("{")
    opening, _, body = rest.partition("{")
    inner, _, tail = body.rpartition("}")
    return f"{head}{{{opening}{{ ... on BadgeEvent {{ {inner} }} }}{tail}"


def event(**changes: object) -> BadgeEventData:
    """A badge event with defaults."""
    fields: dict = {
        "cause": BadgeCause.NOTICE,
        "badges": [(7, 2)],
        "unseen_count": 1,
        "unread_total": 2,
        "version": 9,
    }
    fields.update(changes)
    return BadgeEventData(**fields)


async def collect(client, count: int) -> list[dict]:
    """The next ``count`` result messages' payloads."""
    return [(await client.receive())["payload"] for _ in range(count)]


async def compare_streams(server, http, tokens, protocol, compiled, executed, variables):
    """Subscribe ``compiled`` and ``executed`` on two clients of ``protocol``; after the
    snapshot, a notice, a second app's notice and a setnum, both got the same payloads."""
    assert badges_plan(compiled, variables, None, LIMITS) is not None
    assert badges_plan(executed, variables, None, LIMITS) is None
    one = await create_app(http, tokens.admin(), identifier="FrameOne")
    two = await create_app(http, tokens.admin(), identifier="FrameTwo")
    await push(http, one["id"], ["1001,1034"])  # the snapshot lists an app with a badge
    async with (
        ws_client(server.ws_url, protocol) as fast,
        ws_client(server.ws_url, protocol) as slow,
    ):
        for client, document in ((fast, compiled), (slow, executed)):
            await client.init(tokens.user())
            await client.subscribe(document, variables)
        snapshots = [await collect(client, 1) for client in (fast, slow)]
        await push(http, one["id"], ["1001,1034"])
        await push(http, two["id"], ["1001,1034"])
        await http.post(SETNUM, data={"appid": one["id"], "cid": "1001", "uid": "1034"})
        events = [await collect(client, 3) for client in (fast, slow)]
    assert "errors" not in snapshots[0][0]
    assert snapshots[0] == snapshots[1]
    assert events[0] == events[1]
    return snapshots[0] + events[0]


@pytest.mark.parametrize(
    ("compiled", "executed"),
    [pytest.param(plain, executed, id=leaf) for leaf, plain, executed in LEAVES],
)
async def test_every_compiled_leaf_equals_strawberrys(server, http, tokens, compiled, executed):
    """Generated from the compiled tables: each leaf of each type, as itself and aliased, with
    __typename at every level, is what the executor sends (graphql-transport-ws)."""
    payloads = await compare_streams(server, http, tokens, TRANSPORT_WS, compiled, executed, {})
    assert all(payload["data"]["r"]["__typename"] == "BadgeEvent" for payload in payloads)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("document", "variables"), EQUIVALENT)
async def test_compiled_events_equal_strawberrys(
    server, http, tokens, protocol, document, variables
):
    """Hand-picked documents (variables, defaults, literals, no platform): the compiled stream
    and the executor's send identical payloads, on both protocols."""
    await compare_streams(
        server, http, tokens, protocol, document, through_strawberry(document), variables
    )


async def test_legacy_clients_get_the_compiled_path(server, tokens, monkeypatch):
    """A plain badges subscription over graphql-ws is answered compiled, as over
    graphql-transport-ws: the schema decides, not the transport."""
    # given
    started: list[str] = []
    compiled_results = compiled_module._badge_results

    def spy(*args, **kwargs):
        started.append("compiled")
        return compiled_results(*args, **kwargs)

    monkeypatch.setattr(compiled_module, "_badge_results", spy)
    async with ws_client(server.ws_url, LEGACY_WS) as client:
        await client.init(tokens.user())
        # when
        await client.subscribe(PLAIN, {"platform": "PC"})
        snapshot = await client.next_data()
    # then
    assert snapshot == {"badges": {"cause": "SNAPSHOT", "unreadTotal": 0}}
    assert started == ["compiled"]


def test_a_plan_builds_the_executors_data_with_counts_capped():
    """data(): response keys as aliased, enum by name, ids as strings, totals capped to Int."""
    # given
    plan = badges_plan(EVERYTHING, {"p": "IOS"}, "Everything", LIMITS)
    assert plan is not None
    # when
    data = plan.data(event(unread_total=2**40, unseen_count=2**33, badges=[(7, 2), (8, 0)]))
    # then
    assert plan.platform is Platform.IOS
    assert data == {
        "live": {
            "__typename": "BadgeEvent",
            "why": "NOTICE",
            "unseenCount": 2**31 - 1,
            "counts": [
                {"__typename": "AppBadge", "id": "7", "unread": 2},
                {"__typename": "AppBadge", "id": "8", "unread": 0},
            ],
            "unreadTotal": 2**31 - 1,
            "version": 9,
        }
    }


@pytest.mark.parametrize(
    ("variables", "platform"),
    [({}, None), ({"platform": None}, None), ({"platform": "IOS"}, Platform.IOS)],
)
def test_a_nullable_variable_may_be_absent_or_null(variables, platform):
    """$platform: Platform absent or null means every platform."""
    plan = badges_plan(PLAIN, variables, None, LIMITS)
    assert plan is not None
    assert plan.platform is platform


@pytest.mark.parametrize(
    ("document", "variables", "operation_name"),
    [
        ("subscription { badges { ...F } } fragment F on BadgeEvent { cause }", {}, None),
        ("subscription { badges { ... on BadgeEvent { cause } } }", {}, None),
        ("subscription { badges { cause @include(if: true) } }", {}, None),
        ("subscription @foo { badges { cause } }", {}, None),
        ("subscription { badges { cause nope } }", {}, None),
        ("subscription { badges { cause { x } } }", {}, None),
        ("subscription { badges { badges } }", {}, None),
        ("subscription { badges { a: cause a: version } }", {}, None),
        ("subscription { badges { badges { appId(x: 1) } } }", {}, None),
        ("subscription { badges { cause } workbenchChanged(platform: PC) { kind } }", {}, None),
        ("subscription { workbenchChanged(platform: PC) { kind } }", {}, None),
        ("query { badges { cause } }", {}, None),
        ("subscription { badges(platform: MAC) { cause } }", {}, None),
        ("subscription { badges(platform: PC, x: 1) { cause } }", {}, None),
        ("subscription A { badges { cause } }", {}, "B"),
        ("subscription A { badges { cause } } subscription B { badges { cause } }", {}, "A"),
        ("subscription ($p: String) { badges(platform: $p) { cause } }", {"p": "PC"}, None),
        ("subscription ($p: Platform) { badges { cause } }", {}, None),
        ("subscription ($p: Platform!) { badges(platform: $p) { cause } }", {}, None),
        ("subscription ($p: Platform!) { badges(platform: $p) { cause } }", {"p": None}, None),
        (PLAIN, {"platform": "MAC"}, None),
        (PLAIN, {"platform": 1}, None),
        (PLAIN, {"platform": ["PC"]}, None),
        ("subscription { badges { cause ", {}, None),
        ("subscription { badges { cause } }" + " " * MAX_DOCUMENT_CHARS, {}, None),
        ("subscription { badges { " + "cause " * 30 + "} }", {}, None),
        (
            "subscription { badges { " + " ".join(f"c{i}: cause" for i in range(60)) + " } }",
            {},
            None,
        ),
    ],
)
def test_anything_but_the_plain_shape_falls_back(document, variables, operation_name):
    """Fragments, directives, unknown or repeated fields, other roots, wrong operation names,
    variables of another type, unused or failing to coerce, syntax errors, oversized documents
    and too many fields get no plan: Strawberry runs (and reports) them."""
    assert badges_plan(document, variables, operation_name, LIMITS) is None


async def test_a_bad_variable_gets_strawberrys_error(server, tokens):
    """Over graphql-transport-ws, an unknown platform in the variables is Strawberry's error
    message, not a crash of the compiled path."""
    # given
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        # when
        await client.subscribe(PLAIN, {"platform": "MAC"})
        message = await client.receive()
    # then
    assert message["type"] == "error"
    assert "MAC" in message["payload"][0]["message"]


async def test_a_failing_stream_sends_a_masked_error_then_complete(server, tokens, database_url):
    """When the stream fails (its table is gone), the client gets "Unexpected error." and
    complete; the server keeps serving once the table is back."""
    # given
    db = Database(database_url)
    rename = "ALTER TABLE {} RENAME TO {}"
    try:
        async with db.write() as session:
            await session.execute(text(rename.format("user_badge_state", "hidden_state")))
        try:
            async with ws_client(server.ws_url, TRANSPORT_WS) as client:
                await client.init(tokens.user())
                # when
                op_id = await client.subscribe(PLAIN, {"platform": "PC"})
                failed, completed = await client.receive(), await client.receive()
        finally:
            async with db.write() as session:
                await session.execute(text(rename.format("hidden_state", "user_badge_state")))
        async with ws_client(server.ws_url, TRANSPORT_WS) as client:
            await client.init(tokens.user())
            await client.subscribe(PLAIN, {"platform": "PC"})
            again = await client.next_data()
    finally:
        await db.dispose()
    # then
    assert failed == {
        "id": op_id,
        "type": "next",
        "payload": {"data": None, "errors": [{"message": "Unexpected error."}]},
    }
    assert completed == {"id": op_id, "type": "complete"}
    assert again == {"badges": {"cause": "SNAPSHOT", "unreadTotal": 0}}


async def test_compiled_subscriptions_are_counted_and_cleaned_up(server, tokens):
    """The live-subscriptions gauge counts a compiled subscription and drops it when the
    client completes; the operation is counted once."""
    # given
    async with (
        httpx.AsyncClient(base_url=server.http_url) as http,
        ws_client(server.ws_url, TRANSPORT_WS) as client,
    ):
        await client.init(tokens.user())
        op_id = await client.subscribe(PLAIN, {"platform": "PC"})
        await client.next_data()
        during = (await http.get("/metrics")).text
        # when
        await client.socket.send(json.dumps({"id": op_id, "type": "complete"}))
        await client.silence(0.3)
        after = (await http.get("/metrics")).text
    # then
    assert 'workbench_subscriptions{field="badges"} 1.0' in during
    assert 'workbench_subscriptions{field="badges"} 0.0' in after
    # the user's channel, beside the catalogue channel every process follows
    assert "workbench_broker_channels 2.0" in during
    assert "workbench_broker_channels 1.0" in after
    assert 'workbench_graphql_operations_total{outcome="ok",type="subscription"} 1.0' in after


async def test_clients_leaving_mid_stream_are_not_errors(server, http, tokens, caplog):
    """Clients that vanish while their events are being sent end their subscriptions quietly:
    no ERROR log, no error outcome (a storm test saw hundreds of such log lines)."""
    # given
    caplog.set_level(logging.INFO)
    app = await create_app(http, tokens.admin(), identifier="Leaving")
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(20):
            client = await stack.enter_async_context(ws_client(server.ws_url, TRANSPORT_WS))
            await client.init(tokens.user())
            await client.subscribe(PLAIN, {"platform": "PC"})
            await client.next_data()
            clients.append(client)
        # when: notices keep coming while every client drops its TCP connection
        sending = asyncio.gather(*(push(http, app["id"], ["1001,1034"]) for _ in range(30)))
        await asyncio.sleep(0.01)
        for client in clients:
            client.socket.transport.abort()
        await sending
    async with httpx.AsyncClient(base_url=server.http_url) as metrics_client:
        for _ in range(100):
            text_ = (await metrics_client.get("/metrics")).text
            if 'workbench_subscriptions{field="badges"} 0.0' in text_:
                break
            await asyncio.sleep(0.05)
    # then
    assert 'workbench_subscriptions{field="badges"} 0.0' in text_
    assert 'outcome="error",type="subscription"' not in text_
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_the_alias_limit_holds_on_the_compiled_subscription(server, tokens):
    """A badges subscription with 40 aliases (limit 30) gets Strawberry's error, not events."""
    # given
    document = "subscription { badges { " + " ".join(f"a{i}: version" for i in range(40)) + " } }"
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        # when
        await client.subscribe(document)
        message = await client.receive()
    # then
    assert message["type"] == "error"
    assert message["payload"][0]["message"] == "40 aliases found. Allowed: 30"

"""The ``badges`` subscription over both WebSocket protocols, on a real server (SPEC §4, §7)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.factories import (
    BADGES,
    LEGACY_WS,
    PROTOCOLS,
    TRANSPORT_WS,
    badge_subscription,
    create_app,
    gql,
    push,
    running,
    web,
    ws_client,
)

OPEN_WORKBENCH = "mutation { openWorkbench { cause unseenCount version } }"
OPEN_APP = """
mutation Open($appId: ID!, $platform: Platform!) {
  openApp(appId: $appId, platform: $platform) { mode url }
}
"""
SETNUM = "/OpenPlatform/integrate/setnum.php"


def event(data: dict) -> dict:
    """The BadgeEvent of a subscription result."""
    return data["badges"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_snapshot_lists_every_app_of_the_platform(server, http, tokens, protocol):
    """The first event is a SNAPSHOT of every app on that platform's workbench, zeros included."""
    # given
    admin = tokens.admin()
    everywhere = await create_app(http, admin, identifier="Everywhere")
    pc_only = await create_app(http, admin, identifier="PcOnly", android=None, ios=None)
    await push(http, everywhere["id"], ["1001,1034"])
    # when
    async with badge_subscription(server.ws_url, protocol, tokens.user(), "ANDROID") as client:
        snapshot = event(await client.next_data())
    # then
    assert snapshot == {
        "cause": "SNAPSHOT",
        "badges": [{"appId": everywhere["id"], "unread": 1}],
        "unseenCount": 1,
        "unreadTotal": 1,
        "version": 1,
    }
    assert pc_only["id"] not in [b["appId"] for b in snapshot["badges"]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_pc_and_phone_see_every_change(server, http, tokens, protocol):
    """PC and phone of one user receive NOTICE, OPEN_WORKBENCH, OPEN_APP and READ as they happen."""
    # given
    app = await create_app(http, tokens.admin(), identifier="SyncedApp")
    user = tokens.user()
    async with (
        badge_subscription(server.ws_url, protocol, user, "PC") as pc,
        badge_subscription(server.ws_url, protocol, user, "ANDROID") as phone,
    ):
        for client in (pc, phone):
            assert event(await client.next_data())["cause"] == "SNAPSHOT"
        # when a vendor pushes a notice
        await push(http, app["id"], ["1001,1034"])
        # then both see it
        notice = {
            "cause": "NOTICE",
            "badges": [{"appId": app["id"], "unread": 1}],
            "unseenCount": 1,
            "unreadTotal": 1,
            "version": 1,
        }
        assert event(await pc.next_data()) == notice
        assert event(await phone.next_data()) == notice
        # when the PC opens the workbench
        await gql(http, user, OPEN_WORKBENCH)
        opened = {
            "cause": "OPEN_WORKBENCH",
            "badges": [],
            "unseenCount": 0,
            "unreadTotal": 1,
            "version": 2,
        }
        assert event(await pc.next_data()) == opened
        assert event(await phone.next_data()) == opened
        # when another notice arrives and the PC opens the app
        await push(http, app["id"], ["1001,1034"])
        assert event(await phone.next_data())["badges"] == [{"appId": app["id"], "unread": 2}]
        await pc.next_data()
        await gql(http, user, OPEN_APP, {"appId": app["id"], "platform": "PC"})
        cleared = {
            "cause": "OPEN_APP",
            "badges": [{"appId": app["id"], "unread": 0}],
            "unseenCount": 0,
            "unreadTotal": 0,
            "version": 4,
        }
        assert event(await phone.next_data()) == cleared
        assert event(await pc.next_data()) == cleared


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_setnum_reads_reach_every_device(server, http, tokens, protocol):
    """setnum's decrement arrives as READ with absolute values; it never goes below zero."""
    # given
    app = await create_app(http, tokens.admin(), identifier="ReadApp")
    await push(http, app["id"], ["1001,1034"])
    await push(http, app["id"], ["1001,1034"])
    async with badge_subscription(server.ws_url, protocol, tokens.user(), None) as client:
        assert event(await client.next_data())["unreadTotal"] == 2
        # when
        await http.post(SETNUM, data={"appid": app["id"], "cid": "1001", "uid": "1034", "num": "1"})
        first = event(await client.next_data())
        await http.post(SETNUM, data={"appid": app["id"], "cid": "1001", "uid": "1034", "num": "5"})
        second = event(await client.next_data())
    # then
    assert first == {
        "cause": "READ",
        "badges": [{"appId": app["id"], "unread": 1}],
        "unseenCount": 1,
        "unreadTotal": 1,
        "version": 3,
    }
    assert second == {
        "cause": "READ",
        "badges": [{"appId": app["id"], "unread": 0}],
        "unseenCount": 0,
        "unreadTotal": 0,
        "version": 4,
    }


async def test_other_platforms_app_does_not_light_the_phone(server, http, tokens):
    """A notice for a PC-only app reaches the PC view but sends the ANDROID view nothing."""
    # given
    pc_only = await create_app(http, tokens.admin(), identifier="DeskOnly", android=None, ios=None)
    user = tokens.user()
    async with (
        badge_subscription(server.ws_url, TRANSPORT_WS, user, "PC") as pc,
        badge_subscription(server.ws_url, TRANSPORT_WS, user, "ANDROID") as phone,
    ):
        await pc.next_data()
        await phone.next_data()
        # when
        await push(http, pc_only["id"], ["1001,1034"])
        # then
        assert event(await pc.next_data())["unseenCount"] == 1
        await phone.silence()


async def test_other_users_events_are_not_delivered(server, http, tokens):
    """A subscriber sees only its own user's badge changes."""
    # given
    app = await create_app(http, tokens.admin(), identifier="PrivateApp")
    async with badge_subscription(server.ws_url, TRANSPORT_WS, tokens.user(uid=1034), "PC") as me:
        await me.next_data()
        # when
        await push(http, app["id"], ["1001,1078"])
        # then
        await me.silence()


async def test_app_created_after_subscribing_gets_a_fresh_snapshot(server, http, tokens):
    """An app created for the user after subscribing arrives as a SNAPSHOT including it, with
    the next version, and its notices then count."""
    # given
    user = tokens.user()
    async with badge_subscription(server.ws_url, TRANSPORT_WS, user, "IOS") as client:
        assert event(await client.next_data())["badges"] == []
        # when
        app = await create_app(http, tokens.admin(), identifier="LateComer")
        # then
        assert event(await client.next_data()) == {
            "cause": "SNAPSHOT",
            "badges": [{"appId": app["id"], "unread": 0}],
            "unseenCount": 0,
            "unreadTotal": 0,
            "version": 1,
        }
        # when
        await push(http, app["id"], ["1001,1034"])
        # then
        assert event(await client.next_data()) == {
            "cause": "NOTICE",
            "badges": [{"appId": app["id"], "unread": 1}],
            "unseenCount": 1,
            "unreadTotal": 1,
            "version": 2,
        }


async def test_versions_strictly_increase_under_a_burst(server, http, tokens):
    """Under 30 concurrent notices the client ends at the exact count, versions only growing."""
    # given
    app = await create_app(http, tokens.admin(), identifier="BurstApp")
    async with badge_subscription(server.ws_url, TRANSPORT_WS, tokens.user(), "PC") as client:
        versions = [event(await client.next_data())["version"]]
        # when
        responses = await asyncio.gather(*(push(http, app["id"], ["1001,1034"]) for _ in range(30)))
        assert {r.content for r in responses} == {b'{"Result":true}'}
        last: dict = {}
        while not last or last["unreadTotal"] < 30:
            last = event(await client.next_data())
            versions.append(last["version"])
    # then
    assert last["badges"] == [{"appId": app["id"], "unread": 30}]
    assert last["version"] == 30
    assert versions == sorted(set(versions))


async def test_subscription_ends_cleanly_on_complete(server, http, tokens):
    """A client's complete stops the stream and releases its hub listener, the hub's broker
    listener of the user's channel, and its place among the catalogue watch's listeners."""
    # given
    state = server.app.state
    broker, hub, watch = state.broker, state.hub, state.watch

    def counts() -> tuple[int, int, int]:
        return broker.listener_count(), hub.listener_count(), watch.listener_count()

    base = counts()  # the catalogue watch itself
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        op_id = await client.subscribe(BADGES, {"platform": "PC"})
        await client.next_data()
        assert counts() == (base[0] + 1, base[1] + 1, 1)
        # when
        await client.socket.send(json.dumps({"id": op_id, "type": "complete"}))
        await client.silence(0.3)
        # then
        assert counts() == base
        await client.subscribe(BADGES, {"platform": "PC"})
        assert event(await client.next_data())["cause"] == "SNAPSHOT"
        assert counts() == (base[0] + 1, base[1] + 1, 1)
    await asyncio.sleep(0.2)
    assert counts() == base


# --- authentication and protocol safety -------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_bad_token_in_init_is_closed_4403(server, tokens, codec, protocol):
    """A garbled or expired token in connection_init closes the socket with 4403, no data."""
    for token in ("garbage", codec.issue(cid=1001, uid=1034, ttl_seconds=-120)):
        async with ws_client(server.ws_url, protocol) as client:
            await client.socket.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                )
            )
            if protocol == LEGACY_WS:
                assert (await client.receive())["type"] == "connection_error"
            assert await client.closed_code() == 4403


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_missing_token_is_refused(server, protocol):
    """connection_init without any credentials is refused with 4403."""
    async with ws_client(server.ws_url, protocol) as client:
        await client.socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        if protocol == LEGACY_WS:
            assert (await client.receive())["type"] == "connection_error"
        assert await client.closed_code() == 4403


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_token_in_handshake_header_is_accepted(server, tokens, protocol):
    """The Authorization header of the WebSocket handshake authenticates as well."""
    headers = {"Authorization": f"Bearer {tokens.user()}"}
    async with ws_client(server.ws_url, protocol, additional_headers=headers) as client:
        await client.init(None)
        await client.subscribe(BADGES, {"platform": "PC"})
        assert event(await client.next_data())["cause"] == "SNAPSHOT"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_subscribe_before_init_is_closed_4401(server, protocol):
    """Subscribing without a completed connection_init closes the socket with 4401."""
    async with ws_client(server.ws_url, protocol) as client:
        await client.subscribe(BADGES, {"platform": "PC"})
        assert await client.closed_code() == 4401


async def test_init_timeout_closes_4408(settings):
    """A client that never sends connection_init is closed with 4408 after the timeout (1 s)."""
    async with (
        running(settings.model_copy(update={"ws_connection_init_timeout": 1.0})) as server,
        ws_client(server.ws_url, TRANSPORT_WS) as client,
    ):
        assert await client.closed_code() == 4408


async def test_authorization_must_be_a_string(server):
    """A non-string Authorization in the init payload is refused with 4403."""
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": 42}})
        )
        assert await client.closed_code() == 4403


async def test_vendor_token_cannot_subscribe(server, codec):
    """A vendor token is connected but its badges subscription gets a FORBIDDEN error."""
    from resolvers.identity import Role

    vendor = codec.issue(cid=1, uid=1, role=Role.VENDOR, app_id=1)
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(vendor)
        await client.subscribe(BADGES, {"platform": "PC"})
        message = await client.receive()
    assert message["type"] in ("error", "next")
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_subscription_cap_per_connection(server, tokens):
    """Past the per-connection cap (3 in tests) a further subscription gets an error."""
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        for _ in range(3):
            await client.subscribe(BADGES, {"platform": "PC"})
            await client.next_data()
        op_id = await client.subscribe(BADGES, {"platform": "PC"})
        message = await client.receive()
    assert message["type"] == "error"
    assert message["id"] == op_id
    assert "limit" in message["payload"][0]["message"].lower()


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        json.dumps({"type": "unknown"}),
        json.dumps({"no": "type"}),
    ],
)
async def test_malformed_messages_close_the_socket(server, tokens, frame):
    """Malformed graphql-transport-ws messages close the connection with 4400."""
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        await client.socket.send(frame)
        assert await client.closed_code() == 4400


async def test_invalid_platform_argument_is_an_error(server, tokens):
    """An unknown platform value yields a validation error, not a stream."""
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        await client.subscribe(BADGES, {"platform": "WINDOWS_PHONE"})
        message = await client.receive()
    assert message["type"] == "error"


async def test_unknown_subprotocol_is_refused(server):
    """A handshake with no supported subprotocol is closed with 4406."""
    async with ws_client(server.ws_url, "graphql-sse") as client:
        assert await client.closed_code() == 4406


async def test_hidden_app_is_not_in_the_snapshot(server, http, tokens):
    """An app hidden from enterprise 1002 is absent from its snapshot; notices to it are skipped."""
    # given
    hidden = await create_app(
        http,
        tokens.admin(),
        identifier="HiddenFromB",
        audience={"mode": "ALL", "enterpriseIds": ["1002"]},
        pc=web(),
    )
    await push(http, hidden["id"], ["1002,7"])  # skipped: outside the audience
    # when
    async with badge_subscription(
        server.ws_url, TRANSPORT_WS, tokens.user(cid=1002, uid=7), None
    ) as c:
        snapshot = event(await c.next_data())
    # then
    assert snapshot == {
        "cause": "SNAPSHOT",
        "badges": [],
        "unseenCount": 0,
        "unreadTotal": 0,
        "version": 0,
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_connection_closes_when_the_token_expires(server, http, codec, protocol):
    """A live subscription is closed with 4401 once its token expires (30 s leeway included)."""
    # given: a token that expired 27 s ago is still inside the leeway, for about 3 seconds
    token = codec.issue(cid=1001, uid=1034, ttl_seconds=-27)
    async with badge_subscription(server.ws_url, protocol, token, "PC") as client:
        assert event(await client.next_data())["cause"] == "SNAPSHOT"
        # when the leeway runs out / then
        assert await client.closed_code() == 4401


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "frame",
    [
        [],
        "x",
        1,
        None,
        {"type": 5},
        {"type": "START_OR_SUBSCRIBE", "id": ["1"], "payload": {"query": "subscription { x }"}},
        {"type": "START_OR_SUBSCRIBE", "id": "1", "payload": "subscription { x }"},
        {"type": "START_OR_SUBSCRIBE", "id": "1", "payload": None},
        {"type": "START_OR_SUBSCRIBE", "id": "1", "payload": {"query": 5}},
        {"type": "START_OR_SUBSCRIBE", "id": "1", "payload": {"query": "{x}", "variables": []}},
        {"type": "START_OR_SUBSCRIBE", "payload": {"query": "subscription { x }"}},
        {"type": "START_OR_SUBSCRIBE", "id": "1", "payload": {"query": "{x}", "operationName": 1}},
        {"type": "COMPLETE_OR_STOP", "id": {"a": 1}},
    ],
)
async def test_malformed_frames_close_4400(server, tokens, protocol, frame):
    """Messages of the wrong shape close the socket with 4400 on both protocols, no crash."""
    start = "subscribe" if protocol == TRANSPORT_WS else "start"
    stop = "complete" if protocol == TRANSPORT_WS else "stop"
    if isinstance(frame, dict) and frame.get("type") == "START_OR_SUBSCRIBE":
        frame = {**frame, "type": start}
    if isinstance(frame, dict) and frame.get("type") == "COMPLETE_OR_STOP":
        frame = {**frame, "type": stop}
    async with ws_client(server.ws_url, protocol) as client:
        await client.init(tokens.user())
        await client.socket.send(json.dumps(frame))
        assert await client.closed_code() == 4400


async def test_deeply_nested_frame_is_non_json(server, tokens):
    """A frame nested past Python's recursion limit is treated as non-JSON (4400), no crash."""
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        await client.socket.send("[" * 20_000 + "]" * 20_000)
        assert await client.closed_code() == 4400


async def test_legacy_protocol_init_timeout_closes_4408(settings):
    """graphql-ws, too, closes a connection that never initialises (4408 after 1 s)."""
    async with (
        running(settings.model_copy(update={"ws_connection_init_timeout": 1.0})) as server,
        ws_client(server.ws_url, LEGACY_WS) as client,
    ):
        assert await client.closed_code() == 4408


async def test_legacy_protocol_second_init_closes_4429(server, tokens):
    """A second connection_init on graphql-ws closes the socket with 4429."""
    async with ws_client(server.ws_url, LEGACY_WS) as client:
        await client.init(tokens.user())
        await client.socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer x"}})
        )
        assert await client.closed_code() == 4429


async def test_legacy_protocol_refuses_queries_clearly(server, tokens):
    """graphql-ws answers a query with an error naming what to use instead."""
    async with ws_client(server.ws_url, LEGACY_WS) as client:
        await client.init(tokens.user())
        op_id = await client.subscribe("{ workbench(platform: PC) { version } }")
        message = await client.receive()
    assert message == {
        "type": "error",
        "id": op_id,
        "payload": {
            "message": "graphql-ws runs subscriptions only; "
            "send queries and mutations over HTTP or graphql-transport-ws"
        },
    }


async def test_queries_run_over_graphql_transport_ws(server, tokens):
    """graphql-transport-ws runs queries too, answering next then complete."""
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        op_id = await client.subscribe("{ workbench(platform: PC) { version } }")
        assert await client.next_data() == {"workbench": {"version": 0}}
        assert await client.receive() == {"id": op_id, "type": "complete"}

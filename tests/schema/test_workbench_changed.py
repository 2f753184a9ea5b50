"""Live catalogue (issue 3 item 6): ``workbenchChanged(platform)`` and badge streams follow
administrators' changes; one catalogue read per process serves every connected client."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager

import pytest

from imworkbench.brokers import MemoryBroker
from resolvers import apps as app_resolvers
from resolvers.identity import Principal, Role
from resolvers.messages import CATALOGUE_CHANNEL, CatalogueChange
from resolvers.streams.badges import BadgeStream
from resolvers.streams.catalogue import CatalogueWatch
from resolvers.streams.hub import Hub
from storage import catalogue
from storage.catalogue import AppRule
from storage.db import Database
from storage.models import (
    App,
    AppAudience,
    AppPlatform,
    AppRemoval,
    AudienceMode,
    LaunchMode,
    Platform,
)
from tests.factories import (
    BADGES,
    LEGACY_WS,
    PROTOCOLS,
    TIMEOUT,
    TRANSPORT_WS,
    WSClient,
    create_app,
    gql,
    push,
    web,
    ws_client,
)

CHANGED = """
subscription($platform: Platform!) {
  workbenchChanged(platform: $platform) { platform kind appIds }
}
"""
UPDATE = """
mutation($id: ID!, $input: AppPatchInput!) {
  updateApp(appId: $id, input: $input) { errors { code } }
}
"""
REMOVE = "mutation($id: ID!) { removeApp(appId: $id) { errors { code } } }"
RESTORE = "mutation($id: ID!) { restoreApp(appId: $id) { errors { code } } }"
OWN_APP = {
    "name": "本企业应用",
    "kind": "ENTERPRISE",
    "pc": web("https://own.example.com/"),
    "android": None,
    "ios": None,
}


@asynccontextmanager
async def watching(
    url: str, token: str, platform: str = "PC", protocol: str = TRANSPORT_WS
) -> AsyncIterator[tuple[WSClient, list[str]]]:
    """A client subscribed to workbenchChanged; yields it and the SNAPSHOT's app ids."""
    async with ws_client(url, protocol) as client:
        await client.init(token)
        await client.subscribe(CHANGED, {"platform": platform})
        first = (await client.next_data())["workbenchChanged"]
        assert first["kind"] == "SNAPSHOT"
        assert first["platform"] == platform
        yield client, first["appIds"]


async def change(client: WSClient) -> tuple[str, list[str]]:
    """The next workbenchChanged event as (kind, appIds)."""
    event = (await client.next_data())["workbenchChanged"]
    return event["kind"], event["appIds"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_app_appears_when_created_and_disappears_when_hidden(server, http, tokens, protocol):
    """Acceptance: a 1001 user sees its enterprise admin's new app ADDED, and REMOVED when a
    platform admin hides it from 1001."""
    existing = await create_app(http, tokens.admin(), identifier="Existing")
    async with watching(server.ws_url, tokens.user(cid=1001), protocol=protocol) as (client, ids):
        assert ids == [existing["id"]]
        # when
        app = await create_app(
            http, tokens.enterprise_admin(cid=1001), identifier="NewForUs", **OWN_APP
        )
        # then
        assert await change(client) == ("ADDED", [app["id"]])
        # when
        body = await gql(
            http,
            tokens.admin(),
            UPDATE,
            {"id": app["id"], "input": {"audience": {"mode": "ALL", "enterpriseIds": ["1001"]}}},
        )
        assert body["data"]["updateApp"]["errors"] == []
        # then
        assert await change(client) == ("REMOVED", [app["id"]])


async def test_other_enterprises_and_platforms_see_nothing(server, http, tokens):
    """An app for 1002 only, or on ANDROID only, sends nothing to a 1001 PC client."""
    async with watching(server.ws_url, tokens.user(cid=1001)) as (client, _):
        await create_app(http, tokens.enterprise_admin(cid=1002), identifier="TheirApp", **OWN_APP)
        await create_app(http, tokens.admin(), identifier="PhoneOnly", pc=None, ios=None)
        await client.silence(0.4)


async def test_a_change_made_before_subscribing_is_not_news(server, http, tokens):
    """An app created just before subscribing is in the SNAPSHOT, and no event follows for
    it, however late the process hears of its creation."""
    for index in range(5):
        app = await create_app(http, tokens.admin(), identifier=f"JustBefore{index}")
        async with watching(server.ws_url, tokens.user()) as (client, ids):
            assert app["id"] in ids
            await client.silence(0.3)


async def test_changes_disable_enable_and_delete(server, http, tokens):
    """A rename is CHANGED; disabling is REMOVED, enabling ADDED, deleting REMOVED."""
    app = await create_app(http, tokens.admin(), identifier="Lifecycle")
    admin = tokens.admin()
    async with watching(server.ws_url, tokens.user()) as (client, ids):
        assert ids == [app["id"]]
        await gql(http, admin, UPDATE, {"id": app["id"], "input": {"name": "改个名字"}})
        assert await change(client) == ("CHANGED", [app["id"]])
        await gql(http, admin, "mutation($id: ID!) { disableApp(appId: $id) { app { id } } }", app)
        assert await change(client) == ("REMOVED", [app["id"]])
        await gql(http, admin, "mutation($id: ID!) { enableApp(appId: $id) { app { id } } }", app)
        assert await change(client) == ("ADDED", [app["id"]])
        await gql(http, admin, "mutation($id: ID!) { deleteApp(appId: $id) { deletedAppId } }", app)
        assert await change(client) == ("REMOVED", [app["id"]])


async def test_platform_settings_change_per_platform(server, http, tokens):
    """Taking an app off PC is REMOVED for a PC client and CHANGED for an ANDROID one."""
    app = await create_app(http, tokens.admin(), identifier="Platforms")
    async with (
        watching(server.ws_url, tokens.user(), "PC") as (pc, _),
        watching(server.ws_url, tokens.user(), "ANDROID") as (phone, _),
    ):
        await gql(http, tokens.admin(), UPDATE, {"id": app["id"], "input": {"pc": None}})
        assert await change(pc) == ("REMOVED", [app["id"]])
        assert await change(phone) == ("CHANGED", [app["id"]])


async def test_removal_by_the_user_reaches_every_device(server, http, tokens):
    """removeApp on one device is REMOVED on the other; restoreApp is ADDED."""
    app = await create_app(http, tokens.admin(), identifier="Removable")
    async with watching(server.ws_url, tokens.user(), "ANDROID") as (phone, _):
        await gql(
            http,
            tokens.user(),
            "mutation($id: ID!) { removeApp(appId: $id) { errors { code } } }",
            app,
        )
        assert await change(phone) == ("REMOVED", [app["id"]])
        await gql(
            http,
            tokens.user(),
            "mutation($id: ID!) { restoreApp(appId: $id) { errors { code } } }",
            app,
        )
        assert await change(phone) == ("ADDED", [app["id"]])


async def test_group_rename_is_a_change_of_its_apps(server, http, tokens):
    """Renaming the group an app sits in is CHANGED for that app."""
    app = await create_app(http, tokens.admin(), identifier="InGroup")
    async with watching(server.ws_url, tokens.user()) as (client, _):
        await gql(
            http,
            tokens.admin(),
            'mutation { renameGroup(id: "1", name: "常用") { errors { code } } }',
        )
        assert await change(client) == ("CHANGED", [app["id"]])


async def test_badge_stream_follows_catalogue_changes(server, http, tokens):
    """A badges subscriber gets a SNAPSHOT without a hidden app (its count leaves the total)
    and with it again, counts intact, when it returns."""
    # given
    kept = await create_app(http, tokens.admin(), identifier="Kept")
    hidden = await create_app(http, tokens.admin(), identifier="Hidden")
    await push(http, kept["id"], ["1001,1034"])
    await push(http, hidden["id"], ["1001,1034"])
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        await client.subscribe(BADGES, {"platform": "PC"})
        first = (await client.next_data())["badges"]
        assert first["unreadTotal"] == 2
        # when
        await gql(
            http,
            tokens.admin(),
            UPDATE,
            {
                "id": hidden["id"],
                "input": {"audience": {"mode": "SELECTED", "enterpriseIds": ["9"]}},
            },
        )
        # then
        event = (await client.next_data())["badges"]
        assert event["cause"] == "SNAPSHOT"
        assert event["badges"] == [{"appId": kept["id"], "unread": 1}]
        assert event["unreadTotal"] == 1
        # when
        await gql(
            http,
            tokens.admin(),
            UPDATE,
            {"id": hidden["id"], "input": {"audience": {"mode": "ALL", "enterpriseIds": []}}},
        )
        # then
        event = (await client.next_data())["badges"]
        assert event["cause"] == "SNAPSHOT"
        assert event["unreadTotal"] == 2
        # a rename changes nothing the badge stream shows
        await gql(http, tokens.admin(), UPDATE, {"id": kept["id"], "input": {"name": "新名字"}})
        await client.silence(0.3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_badge_versions_strictly_increase_across_snapshots(server, http, tokens, protocol):
    """Every event of a badges stream, the SNAPSHOTs sent for an administrator's change or the
    user's removal included, has a higher version than the one before (SPEC §7), and the
    last one is the version the workbench query reads."""
    # given
    admin, user = tokens.admin(), tokens.user()
    kept = await create_app(http, admin, identifier="Kept")
    hidden = await create_app(http, admin, identifier="Hidden")
    await push(http, kept["id"], ["1001,1034"])
    await push(http, hidden["id"], ["1001,1034"])
    hide = {"audience": {"mode": "SELECTED", "enterpriseIds": ["9"]}}
    show = {"audience": {"mode": "ALL", "enterpriseIds": []}}
    steps = [
        (UPDATE, {"id": hidden["id"], "input": hide}, "SNAPSHOT", 1),
        (UPDATE, {"id": hidden["id"], "input": show}, "SNAPSHOT", 2),
        (REMOVE, {"id": kept["id"]}, "SNAPSHOT", 1),
        (RESTORE, {"id": kept["id"]}, "SNAPSHOT", 2),
    ]
    async with ws_client(server.ws_url, protocol) as client:
        await client.init(user)
        await client.subscribe(BADGES, {"platform": "PC"})
        events = [(await client.next_data())["badges"]]
        # when
        for document, variables, _, _ in steps:
            token = user if document in (REMOVE, RESTORE) else admin
            assert "errors" not in await gql(http, token, document, variables)
            events.append((await client.next_data())["badges"])
    # then
    assert [(e["cause"], e["unreadTotal"]) for e in events] == [("SNAPSHOT", 2)] + [
        (cause, total) for _, _, cause, total in steps
    ]
    versions = [e["version"] for e in events]
    assert all(a < b for a, b in itertools.pairwise(versions)), versions
    workbench = await gql(http, user, "{ workbench(platform: PC) { version } }")
    assert workbench["data"]["workbench"]["version"] == versions[-1]


async def test_deleting_an_app_shrinks_live_totals(server, http, tokens):
    """After deleteApp, the badge stream's SNAPSHOT no longer counts the app's unread."""
    app = await create_app(http, tokens.admin(), identifier="Deleted")
    other = await create_app(http, tokens.admin(), identifier="Stays")
    await push(http, app["id"], ["1001,1034"])
    await push(http, other["id"], ["1001,1034"])
    async with ws_client(server.ws_url, LEGACY_WS) as client:
        await client.init(tokens.user())
        await client.subscribe(BADGES, {"platform": None})
        assert (await client.next_data())["badges"]["unreadTotal"] == 2
        await gql(
            http,
            tokens.admin(),
            "mutation($id: ID!) { deleteApp(appId: $id) { deletedAppId } }",
            app,
        )
        event = (await client.next_data())["badges"]
        assert (event["cause"], event["unreadTotal"]) == ("SNAPSHOT", 1)
        assert event["badges"] == [{"appId": other["id"], "unread": 1}]


@pytest.mark.parametrize("variables", [{}, {"platform": "WATCH"}, {"platform": None}])
async def test_bad_platform_is_refused(server, tokens, variables):
    """A missing, unknown or null platform is a GraphQL validation error, not a stream."""
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        await client.subscribe(CHANGED, variables)
        message = await client.receive()
        assert message["type"] == "error"
        assert "platform" in str(message["payload"])


async def test_vendor_tokens_get_no_workbench_stream(server, codec):
    """A vendor token is refused with FORBIDDEN."""
    token = codec.issue(cid=1001, uid=1, role=Role.VENDOR, app_id=1)
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(token)
        await client.subscribe(CHANGED, {"platform": "PC"})
        message = await client.receive()
        assert message["type"] in ("next", "error")
        assert "FORBIDDEN" in str(message["payload"])


# --- the watch and the rule ----------------------------------------------------------------------


class CountingDatabase(Database):
    """A real database that counts read and write transactions."""

    reads = 0
    writes = 0

    def read(self):  # type: ignore[override]
        self.reads += 1
        return super().read()

    def write(self):  # type: ignore[override]
        self.writes += 1
        return super().write()


class Recorder:
    """A catalogue listener that records what it is handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[set[int], dict[int, AppRule]]] = []

    def catalogue_baseline(self) -> int:
        """Everything is news."""
        return 0

    def known_app_ids(self) -> set[int]:
        """Nothing shown."""
        return set()

    def catalogue_changed(self, app_ids: Collection[int], rules: Mapping[int, AppRule]) -> None:
        self.calls.append((set(app_ids), dict(rules)))


async def test_one_read_serves_every_listener(database_url, tokens):
    """Two hundred local streams and a burst of changes cost one rule read per batch, not
    one per stream; malformed messages are dropped."""
    db = CountingDatabase(database_url)
    broker = MemoryBroker()
    watch = CatalogueWatch(db, Hub(broker))
    await watch.start()
    try:
        recorders = [Recorder() for _ in range(200)]
        for recorder in recorders:
            watch._listeners.add(recorder)
        before = db.reads
        # when: a burst, and garbage in between
        await broker.publish(
            [
                (CATALOGUE_CHANNEL, CatalogueChange.of([1]).encode()),
                (CATALOGUE_CHANNEL, b"not json"),
                (CATALOGUE_CHANNEL, b'{"a":["x"]}'),
                (CATALOGUE_CHANNEL, b"[]"),
                (CATALOGUE_CHANNEL, CatalogueChange.of([2, 3]).encode()),
            ]
        )
        for _ in range(100):
            if recorders[-1].calls:
                break
            await asyncio.sleep(0.01)
        # then
        assert db.reads - before == 1
        assert all(r.calls == [({1, 2, 3}, {})] for r in recorders)
    finally:
        await watch.close()
        await db.dispose()


async def test_snapshot_versions_for_many_streams_cost_one_write(database_url):
    """Fifty users' badge streams shown a new app each get a SNAPSHOT with a version above
    their first, and the fifty fresh versions cost one write, not one per stream."""
    db = CountingDatabase(database_url)
    admin_db = Database(database_url)
    broker = MemoryBroker()
    hub = Hub(broker)
    watch = CatalogueWatch(db, hub)
    await watch.start()
    streams = [
        BadgeStream(db=db, hub=hub, cid=1001, uid=uid, platform=None, watch=watch).events()
        for uid in range(1, 51)
    ]
    try:
        firsts = [await asyncio.wait_for(anext(events), TIMEOUT) for events in streams]
        before = db.writes
        # when
        web_app = app_resolvers.PlatformDraft(
            launch_mode=LaunchMode.WEB, web_url="https://example.com/"
        )
        draft = app_resolvers.AppDraft(
            name="新应用", identifier="ForEveryone", platforms={Platform.PC: web_app}
        )
        admin = Principal(cid=1, uid=1, account="admin", role=Role.PLATFORM_ADMIN)
        created = await app_resolvers.create_app(
            db=admin_db, principal=admin, draft=draft, broker=broker
        )
        # each stream runs on its own, as every subscription does in the server
        seconds = await asyncio.wait_for(asyncio.gather(*map(anext, streams)), TIMEOUT)
        # then
        assert [s.badges for s in seconds] == [[(created.app.id, 0)]] * 50
        assert all(s.version > f.version for f, s in zip(firsts, seconds, strict=True))
        assert db.writes - before == 1
    finally:
        for events in streams:
            await events.aclose()
        await watch.close()
        await db.dispose()
        await admin_db.dispose()


def test_large_changes_say_everything():
    """More ids than a message lists become the "everything" message."""
    assert CatalogueChange.of(range(5)).encode() == b'{"a":[0,1,2,3,4]}'
    assert CatalogueChange.of(range(1001)).encode() == b'{"all":1}'


async def test_rule_in_memory_matches_the_sql_rule(database_url):
    """AppRule.shows and the SQL visible_to agree on every combination of enabled, removable,
    platforms, audience mode and listing, and removal."""
    db = Database(database_url)
    combos = list(
        itertools.product(
            [True, False],  # enabled
            [True, False],  # user_removable
            [(), (Platform.PC,), (Platform.PC, Platform.IOS)],
            list(AudienceMode),
            [True, False],  # 1001 listed
            [True, False],  # removed by the user
        )
    )
    try:
        async with db.write() as session:
            for index, (enabled, removable, platforms, mode, listed, removed) in enumerate(combos):
                app = App(
                    app_key=f"k{index}",
                    name="规则",
                    identifier=f"Rule{index}",
                    identifier_key=f"rule{index}",
                    kind="CUSTOM",
                    icon="app",
                    category_id=1,
                    user_removable=removable,
                    enabled=enabled,
                    audience_mode=mode.value,
                )
                session.add(app)
                await session.flush()
                assert app.id is not None
                for platform in platforms:
                    session.add(
                        AppPlatform(app_id=app.id, platform=platform.value, launch_mode="WEB")
                    )
                if listed:
                    session.add(AppAudience(app_id=app.id, cid=1001))
                if removed:
                    session.add(AppRemoval(cid=1001, uid=7, app_id=app.id))
        async with db.read() as session:
            rules = await catalogue.app_rules(session, None)
            removals = await catalogue.removed_app_ids(session, cid=1001, uid=7)
            for platform in (None, Platform.PC, Platform.IOS, Platform.ANDROID):
                in_sql = await catalogue.visible_app_ids(
                    session, cid=1001, uid=7, platform=platform
                )
                in_memory = {
                    app_id
                    for app_id, rule in rules.items()
                    if rule.shows(1001, platform, removed=app_id in removals)
                }
                assert in_memory == in_sql, platform
                # the matrix has apps on every platform but ANDROID
                assert bool(in_sql) == (platform is not Platform.ANDROID)
    finally:
        await db.dispose()

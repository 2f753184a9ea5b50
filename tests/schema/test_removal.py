"""Users remove and restore removable apps on their own workbench, on every device (SPEC §2
可被用户删除, §3)."""

from __future__ import annotations

import logging

import pytest

from tests.factories import PROTOCOLS, badge_subscription, create_app, gql, push

REMOVE = """
mutation Remove($id: ID!) {
  removeApp(appId: $id) { app { id identifier } errors { field message code } }
}
"""
RESTORE = """
mutation Restore($id: ID!) {
  restoreApp(appId: $id) { app { id identifier } errors { field message code } }
}
"""
REMOVED = "query($p: Platform) { removedApps(platform: $p) { id identifier } }"
MARK_READ = "mutation($id: ID!) { markAppRead(appId: $id, count: 1) { unreadTotal version } }"
OPEN_APP = "mutation($id: ID!) { openApp(appId: $id, platform: PC) { url } }"
WORKBENCH = (
    "query($p: Platform!) { workbench(platform: $p) { unreadTotal apps { app { identifier } } } }"
)


def identifiers(body: dict) -> list[str]:
    """Identifiers of a workbench query's apps."""
    return [a["app"]["identifier"] for a in body["data"]["workbench"]["apps"]]


async def test_remove_then_restore_on_every_platform(http, tokens):
    """A removed app leaves the workbench on PC and phone alike, and comes back when restored."""
    # given
    admin, user = tokens.admin(), tokens.user()
    kept = await create_app(http, admin, identifier="KeptApp")
    gone = await create_app(http, admin, identifier="GoneApp")
    await push(http, gone["id"], ["1001,1034"])
    # when
    removed = await gql(http, user, REMOVE, {"id": gone["id"]})
    # then
    assert removed == {
        "data": {"removeApp": {"app": {"id": gone["id"], "identifier": "GoneApp"}, "errors": []}}
    }
    for platform in ("PC", "ANDROID", "IOS"):
        body = await gql(http, user, WORKBENCH, {"p": platform})
        assert identifiers(body) == ["KeptApp"]
        assert body["data"]["workbench"]["unreadTotal"] == 0
    listed = await gql(http, user, REMOVED, {"p": None})
    assert listed == {"data": {"removedApps": [{"id": gone["id"], "identifier": "GoneApp"}]}}
    # when
    restored = await gql(http, user, RESTORE, {"id": gone["id"]})
    # then
    assert restored["data"]["restoreApp"]["errors"] == []
    body = await gql(http, user, WORKBENCH, {"p": "PC"})
    assert identifiers(body) == ["KeptApp", "GoneApp"]
    assert body["data"]["workbench"]["unreadTotal"] == 1
    assert (await gql(http, user, REMOVED, {"p": None}))["data"]["removedApps"] == []
    assert kept["id"] != gone["id"]


async def test_removal_is_per_user(http, tokens):
    """One user's removal leaves a colleague's workbench untouched."""
    app = await create_app(http, tokens.admin(), identifier="SharedApp")
    await gql(http, tokens.user(uid=1), REMOVE, {"id": app["id"]})
    colleague = await gql(http, tokens.user(uid=2), WORKBENCH, {"p": "PC"})
    assert identifiers(colleague) == ["SharedApp"]


async def test_remove_and_restore_are_idempotent(http, tokens):
    """Removing twice or restoring twice succeeds and changes nothing more."""
    app = await create_app(http, tokens.admin(), identifier="TwiceApp")
    user = tokens.user()
    for _ in range(2):
        assert (await gql(http, user, REMOVE, {"id": app["id"]}))["data"]["removeApp"][
            "errors"
        ] == []
    for _ in range(2):
        body = await gql(http, user, RESTORE, {"id": app["id"]})
        assert body["data"]["restoreApp"]["errors"] == []
    assert identifiers(await gql(http, user, WORKBENCH, {"p": "PC"})) == ["TwiceApp"]


async def test_non_removable_app_cannot_be_removed(http, tokens):
    """An app not user-removable answers NOT_REMOVABLE and stays."""
    app = await create_app(http, tokens.admin(), identifier="FixedApp", userRemovable=False)
    body = await gql(http, tokens.user(), REMOVE, {"id": app["id"]})
    assert body == {
        "data": {
            "removeApp": {
                "app": None,
                "errors": [
                    {
                        "field": "appId",
                        "message": "this app cannot be removed",
                        "code": "NOT_REMOVABLE",
                    }
                ],
            }
        }
    }
    assert identifiers(await gql(http, tokens.user(), WORKBENCH, {"p": "PC"})) == ["FixedApp"]


async def test_unknown_app_is_not_found(http, tokens):
    """Removing or restoring an app that does not exist is an APP_NOT_FOUND error."""
    for document in (REMOVE, RESTORE):
        body = await gql(http, tokens.user(), document, {"id": "999"})
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"


@pytest.mark.parametrize("document", [MARK_READ, OPEN_APP], ids=["markAppRead", "openApp"])
async def test_reading_a_removed_app_says_it_is_removed(http, tokens, document, caplog):
    """markAppRead and openApp on an app the user removed answer APP_REMOVED (restoreApp
    brings it back), not "app not found", and leave its unread count as it was."""
    # given
    user = tokens.user()
    app = await create_app(http, tokens.admin(), identifier="ReadGone")
    await push(http, app["id"], ["1001,1034"])
    await gql(http, user, REMOVE, {"id": app["id"]})
    # when
    body = await gql(http, user, document, {"id": app["id"]})
    # then
    assert body["data"] is None
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        (f"app {app['id']} was removed from your workbench: restoreApp puts it back", "APP_REMOVED")
    ]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    await gql(http, user, RESTORE, {"id": app["id"]})
    assert (await gql(http, user, WORKBENCH, {"p": "PC"}))["data"]["workbench"]["unreadTotal"] == 1


async def test_reading_an_app_outside_the_audience_is_not_found(http, tokens):
    """markAppRead on an app the user never had (another enterprise's) stays APP_NOT_FOUND."""
    app = await create_app(
        http,
        tokens.admin(),
        identifier="NotMine",
        audience={"mode": "SELECTED", "enterpriseIds": ["9"]},
    )
    body = await gql(http, tokens.user(), MARK_READ, {"id": app["id"]})
    assert body["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"


@pytest.mark.parametrize("app_id", ["x", "-1", "9" * 20, ""])
async def test_malformed_ids_are_field_errors(http, tokens, app_id):
    """A malformed app id is reported on the appId field, and nothing changes."""
    for document, field in ((REMOVE, "removeApp"), (RESTORE, "restoreApp")):
        body = await gql(http, tokens.user(), document, {"id": app_id})
        assert body["data"][field]["app"] is None
        assert [(e["field"], e["code"]) for e in body["data"][field]["errors"]] == [
            ("appId", "INVALID_ID")
        ]


async def test_app_outside_audience_cannot_be_removed(http, tokens):
    """An app the user cannot see is APP_NOT_FOUND, not quietly recorded."""
    app = await create_app(
        http,
        tokens.admin(),
        identifier="OtherCo",
        audience={"mode": "SELECTED", "enterpriseIds": ["9"]},
    )
    body = await gql(http, tokens.user(), REMOVE, {"id": app["id"]})
    assert body["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"
    assert (await gql(http, tokens.user(), REMOVED, {"p": None}))["data"]["removedApps"] == []


async def test_removed_apps_by_platform(http, tokens):
    """removedApps(platform) lists only removed apps that platform would show."""
    admin, user = tokens.admin(), tokens.user()
    pc_only = await create_app(http, admin, identifier="DeskGone", android=None, ios=None)
    await gql(http, user, REMOVE, {"id": pc_only["id"]})
    assert len((await gql(http, user, REMOVED, {"p": "PC"}))["data"]["removedApps"]) == 1
    assert (await gql(http, user, REMOVED, {"p": "ANDROID"}))["data"]["removedApps"] == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_live_streams_follow_removal(server, http, tokens, protocol):
    """Removing and restoring sends every device a fresh SNAPSHOT without, then with, the app."""
    # given
    app = await create_app(http, tokens.admin(), identifier="LiveGone")
    await push(http, app["id"], ["1001,1034"])
    user = tokens.user()
    async with badge_subscription(server.ws_url, protocol, user, "ANDROID") as phone:
        first = (await phone.next_data())["badges"]
        assert first["badges"] == [{"appId": app["id"], "unread": 1}]
        # when the PC removes it
        await gql(http, user, REMOVE, {"id": app["id"]})
        # then
        gone = (await phone.next_data())["badges"]
        assert (gone["cause"], gone["badges"], gone["unreadTotal"], gone["unseenCount"]) == (
            "SNAPSHOT",
            [],
            0,
            0,
        )
        # when restored
        await gql(http, user, RESTORE, {"id": app["id"]})
        back = (await phone.next_data())["badges"]
        assert back["badges"] == [{"appId": app["id"], "unread": 1}]
        assert back["unreadTotal"] == 1

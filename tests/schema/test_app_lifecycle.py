"""updateApp, disableApp / enableApp and deleteApp (issue 3 item 2): partial changes checked
by every createApp rule, per role, and what each change does to workbenches and vendors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from resolvers.identity import Role
from storage.db import Database
from storage.models import AppAudience, AppBadge, AppPlatform, AppRemoval
from tests.factories import (
    GETAPPID,
    INVALID_IDENTIFIERS,
    INVALID_NAMES,
    PUSH,
    VALID_NAMES,
    create_app,
    gql,
    push,
    web,
)

UPDATE = """
mutation($id: ID!, $input: AppPatchInput!) {
  updateApp(appId: $id, input: $input) {
    app {
      id name identifier kind userRemovable platforms
      category { id } audience { mode enterpriseIds }
      pc { launchMode webUrl } android { launchMode webUrl runPath downloadUrl }
    }
    errors { field code }
  }
}
"""
APP_SETTINGS = """
query($id: ID!) {
  app(id: $id) { audience { mode enterpriseIds } pc { launchMode embeddedBrowser } }
}
"""
DISABLE = "mutation($id: ID!) { disableApp(appId: $id) { app { id enabled } errors { code } } }"
ENABLE = "mutation($id: ID!) { enableApp(appId: $id) { app { id enabled } errors { code } } }"
DELETE = "mutation($id: ID!) { deleteApp(appId: $id) { deletedAppId errors { code } } }"
WORKBENCH = "query($p: Platform!) { workbench(platform: $p) { apps { app { id name } } } }"
REMOVE = "mutation($id: ID!) { removeApp(appId: $id) { errors { code } } }"
OWN_APP = {"name": "本企业应用", "kind": "ENTERPRISE", "pc": web("https://own.example.com/")}


async def update(http, token: str, app_id: str, **fields: Any) -> dict[str, Any]:
    """The updateApp payload (asserts no GraphQL errors)."""
    body = await gql(http, token, UPDATE, {"id": app_id, "input": fields})
    assert "errors" not in body, body
    return body["data"]["updateApp"]


async def workbench_ids(http, token: str, platform: str = "PC") -> list[str]:
    """App ids on the caller's workbench."""
    body = await gql(http, token, WORKBENCH, {"p": platform})
    return [entry["app"]["id"] for entry in body["data"]["workbench"]["apps"]]


async def count_rows(database_url: str, model: type, app_id: str) -> int:
    """Rows of ``model`` that belong to app ``app_id``."""
    db = Database(database_url)
    try:
        async with db.read() as session:
            stmt = select(func.count()).select_from(model).where(model.app_id == int(app_id))
            return int((await session.execute(stmt)).scalar_one())
    finally:
        await db.dispose()


# --- updateApp ---------------------------------------------------------------------------------


async def test_update_changes_only_the_given_fields(http, tokens):
    """Only the named fields change; platforms not named keep their settings."""
    # given
    app = await create_app(http, tokens.admin(), identifier="Partial", name="原来的名字")
    # when
    payload = await update(
        http, tokens.admin(), app["id"], name="新名字", android=web("https://new.example.com/")
    )
    # then
    assert payload["errors"] == []
    changed = payload["app"]
    assert changed["name"] == "新名字"
    assert changed["identifier"] == "Partial"
    assert changed["platforms"] == ["PC", "ANDROID", "IOS"]
    assert changed["pc"] == {"launchMode": "WEB", "webUrl": "https://example.com/app"}
    assert changed["android"]["webUrl"] == "https://new.example.com/"


async def test_null_platform_takes_the_app_off_it(http, tokens):
    """``pc: null`` removes the PC settings; the app leaves the PC workbench only."""
    app = await create_app(http, tokens.admin(), identifier="OffPc")
    payload = await update(http, tokens.admin(), app["id"], pc=None)
    assert payload["errors"] == []
    assert payload["app"]["platforms"] == ["ANDROID", "IOS"]
    assert app["id"] not in await workbench_ids(http, tokens.user(), "PC")
    assert app["id"] in await workbench_ids(http, tokens.user(), "ANDROID")


async def test_removing_every_platform_is_refused(http, tokens):
    """An app keeps at least one platform."""
    app = await create_app(http, tokens.admin(), identifier="Everywhere")
    payload = await update(http, tokens.admin(), app["id"], pc=None, android=None, ios=None)
    assert payload == {"app": None, "errors": [{"field": None, "code": "NO_PLATFORM"}]}


async def test_empty_patch_changes_nothing(http, tokens):
    """An empty input is valid and leaves the app as it was."""
    app = await create_app(http, tokens.admin(), identifier="Untouched")
    payload = await update(http, tokens.admin(), app["id"])
    assert payload["errors"] == []
    assert payload["app"]["identifier"] == "Untouched"
    assert payload["app"]["platforms"] == ["PC", "ANDROID", "IOS"]


@pytest.mark.parametrize("case", list(VALID_NAMES))
async def test_update_accepts_valid_names(http, tokens, case):
    """The name rule's accepted boundaries (4 and 20 units, CJK and ASCII mixes)."""
    name, stored = VALID_NAMES[case]
    app = await create_app(http, tokens.admin(), identifier="Renamed")
    payload = await update(http, tokens.admin(), app["id"], name=name)
    assert payload["errors"] == []
    assert payload["app"]["name"] == stored


@pytest.mark.parametrize("case", list(INVALID_NAMES))
async def test_update_refuses_invalid_names(http, tokens, case):
    """The name rule's refused boundaries (3 and 21 units, ...); the name stays."""
    name, code = INVALID_NAMES[case]
    app = await create_app(http, tokens.admin(), identifier="Renamed", name="原来的名字")
    payload = await update(http, tokens.admin(), app["id"], name=name)
    assert payload == {"app": None, "errors": [{"field": "input.name", "code": code}]}
    body = await gql(http, tokens.admin(), "query($id: ID!) { app(id: $id) { name } }", app)
    assert body["data"]["app"]["name"] == "原来的名字"


@pytest.mark.parametrize("identifier", INVALID_IDENTIFIERS)
async def test_update_refuses_invalid_identifiers(http, tokens, identifier):
    """Identifiers of 3 or 21 characters, or with other characters, are refused."""
    app = await create_app(http, tokens.admin(), identifier="Ident")
    payload = await update(http, tokens.admin(), app["id"], identifier=identifier)
    assert payload == {
        "app": None,
        "errors": [{"field": "input.identifier", "code": "INVALID_IDENTIFIER"}],
    }


@pytest.mark.parametrize("identifier", ["abcd", "b" * 20])
async def test_update_accepts_identifier_boundaries(http, tokens, identifier):
    """Identifiers of 4 and 20 characters are accepted."""
    app = await create_app(http, tokens.admin(), identifier="Ident")
    payload = await update(http, tokens.admin(), app["id"], identifier=identifier)
    assert payload["errors"] == []
    assert payload["app"]["identifier"] == identifier


async def test_identifier_may_change_case_but_not_collide(http, tokens):
    """Recasing its own identifier is fine; taking another app's (in any case) is refused."""
    first = await create_app(http, tokens.admin(), identifier="FirstApp")
    await create_app(http, tokens.admin(), identifier="SecondApp")
    recased = await update(http, tokens.admin(), first["id"], identifier="FIRSTAPP")
    taken = await update(http, tokens.admin(), first["id"], identifier="secondapp")
    assert recased["errors"] == []
    assert recased["app"]["identifier"] == "FIRSTAPP"
    assert taken == {
        "app": None,
        "errors": [{"field": "input.identifier", "code": "IDENTIFIER_TAKEN"}],
    }


async def test_every_error_of_a_patch_is_reported_at_once(http, tokens):
    """A patch breaking several rules gets every field error, and nothing changes."""
    app = await create_app(http, tokens.admin(), identifier="ManyErrors")
    payload = await update(
        http,
        tokens.admin(),
        app["id"],
        name="abc",
        identifier="1x",
        android={"launchMode": "NATIVE", "downloadUrl": "ftp://x"},
        audience={"mode": "SELECTED", "enterpriseIds": ["-1"]},
        categoryId="424242",
    )
    assert payload == {
        "app": None,
        "errors": [
            {"field": "input.name", "code": "NAME_LENGTH"},
            {"field": "input.identifier", "code": "INVALID_IDENTIFIER"},
            {"field": "input.android.runPath", "code": "REQUIRED"},
            {"field": "input.android.downloadUrl", "code": "INVALID_URL"},
            {"field": "input.audience.enterpriseIds[0]", "code": "INVALID_ID"},
            {"field": "input.categoryId", "code": "UNKNOWN_CATEGORY"},
        ],
    }


@pytest.mark.parametrize(
    "audience",
    [
        {"mode": "SELECTED", "enterpriseIds": ["1001", "1001"]},
        {"mode": "ALL", "enterpriseIds": ["1002", "1002"]},
    ],
)
async def test_update_refuses_a_repeated_enterprise_id(http, tokens, audience):
    """An audience listing one enterprise twice is refused on its field; nothing changes."""
    # given
    app = await create_app(http, tokens.admin(), identifier="RepeatedIds")
    # when
    payload = await update(http, tokens.admin(), app["id"], audience=audience)
    # then
    assert payload == {
        "app": None,
        "errors": [{"field": "input.audience.enterpriseIds", "code": "DUPLICATE_ID"}],
    }
    body = await gql(http, tokens.admin(), APP_SETTINGS, {"id": app["id"]})
    assert body["data"]["app"]["audience"] == {"mode": "ALL", "enterpriseIds": []}


async def test_login_params_need_auto_login(http, tokens):
    """loginParams without autoLogin is refused; with it, on a mobile platform, accepted."""
    app = await create_app(http, tokens.admin(), identifier="AutoLogin")
    refused = await update(
        http,
        tokens.admin(),
        app["id"],
        android={**web(), "loginParams": "&account=&password="},
    )
    accepted = await update(
        http,
        tokens.admin(),
        app["id"],
        android={**web(), "autoLogin": True, "loginParams": "&account=&password="},
    )
    assert refused["errors"] == [{"field": "input.android.loginParams", "code": "NOT_ALLOWED"}]
    assert accepted["errors"] == []


async def test_audience_change_moves_the_app_between_enterprises(http, tokens):
    """Hiding the app from 1001 takes it off 1001's workbench; 1002 keeps it."""
    app = await create_app(http, tokens.admin(), identifier="Audience")
    payload = await update(
        http, tokens.admin(), app["id"], audience={"mode": "ALL", "enterpriseIds": ["1001"]}
    )
    assert payload["app"]["audience"] == {"mode": "ALL", "enterpriseIds": ["1001"]}
    assert app["id"] not in await workbench_ids(http, tokens.user(cid=1001))
    assert app["id"] in await workbench_ids(http, tokens.user(cid=1002))


async def test_category_change_puts_the_app_last(http, tokens):
    """A new categoryId moves the app to the end of that category."""
    created = await gql(
        http,
        tokens.admin(),
        'mutation { createCategory(groupId: "1", name: "工具") { category { id } } }',
    )
    category = created["data"]["createCategory"]["category"]["id"]
    app = await create_app(http, tokens.admin(), identifier="Mover")
    payload = await update(http, tokens.admin(), app["id"], categoryId=category)
    assert payload["app"]["category"] == {"id": category}


async def test_enterprise_admin_updates_own_apps_only(http, tokens):
    """An enterprise admin changes its ENTERPRISE apps, cannot change their kind or audience,
    and other apps look absent."""
    admin = tokens.enterprise_admin(cid=1001)
    mine = await create_app(http, admin, identifier="MineToEdit", **OWN_APP)
    theirs = await create_app(http, tokens.admin(), identifier="TheirsToEdit")
    renamed = await update(http, admin, mine["id"], name="改名")
    widened = await update(http, admin, mine["id"], audience={"mode": "ALL", "enterpriseIds": []})
    kind = await update(http, admin, mine["id"], kind="SYSTEM")
    body = await gql(http, admin, UPDATE, {"id": theirs["id"], "input": {"name": "抢来的"}})
    assert renamed["errors"] == []
    assert renamed["app"]["audience"] == {"mode": "SELECTED", "enterpriseIds": ["1001"]}
    assert widened == {
        "app": None,
        "errors": [{"field": "input.audience", "code": "FORBIDDEN_AUDIENCE"}],
    }
    assert kind == {"app": None, "errors": [{"field": "input.kind", "code": "FORBIDDEN_KIND"}]}
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"


@pytest.mark.parametrize(
    ("audience", "errors"),
    [
        ({"mode": "SELECTED", "enterpriseIds": ["1001"]}, []),
        (
            {"mode": "SELECTED", "enterpriseIds": ["1002"]},
            [{"field": "input.audience", "code": "FORBIDDEN_AUDIENCE"}],
        ),
        (
            {"mode": "SELECTED", "enterpriseIds": ["1001", "1002"]},
            [{"field": "input.audience", "code": "FORBIDDEN_AUDIENCE"}],
        ),
    ],
)
async def test_enterprise_admin_audience_update(http, tokens, audience, errors):
    """An enterprise admin may restate their own audience (a form sends it back); naming
    another enterprise is refused, and the audience stays their own."""
    admin = tokens.enterprise_admin(cid=1001)
    mine = await create_app(http, admin, identifier="MineAudience", **OWN_APP)
    payload = await update(http, admin, mine["id"], audience=audience)
    assert payload["errors"] == errors
    app = (await gql(http, admin, APP_SETTINGS, {"id": mine["id"]}))["data"]["app"]
    assert app["audience"] == {"mode": "SELECTED", "enterpriseIds": ["1001"]}


@pytest.mark.parametrize("embedded", [True, False])
async def test_pc_embedded_browser_update_is_stored_as_given(http, tokens, embedded):
    """updateApp stores the PC settings' embeddedBrowser as given, not as false."""
    admin = tokens.admin()
    app = await create_app(http, admin, identifier="PcEmbedded")
    pc = {**web("https://pc.example.com/"), "embeddedBrowser": embedded}
    assert (await update(http, admin, app["id"], pc=pc))["errors"] == []
    stored = (await gql(http, admin, APP_SETTINGS, {"id": app["id"]}))["data"]["app"]
    assert stored["pc"] == {"launchMode": "WEB", "embeddedBrowser": embedded}


@pytest.mark.parametrize("role", [Role.USER, Role.VENDOR])
@pytest.mark.parametrize("document", [UPDATE, DISABLE, ENABLE, DELETE])
async def test_users_and_vendors_cannot_change_apps(http, tokens, codec, role, document):
    """Users and vendors get FORBIDDEN and no data, and the app is unchanged."""
    app = await create_app(http, tokens.admin(), identifier="Guarded")
    token = codec.issue(cid=1001, uid=5, role=role, app_id=int(app["id"]))
    variables: dict[str, Any] = {"id": app["id"]}
    if document is UPDATE:
        variables["input"] = {"name": "被改了"}
    body = await gql(http, token, document, variables)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert app["id"] in await workbench_ids(http, tokens.user())


async def test_anonymous_callers_are_refused(http, tokens):
    """Without a token, every admin mutation is refused before anything runs (HTTP 401)."""
    app = await create_app(http, tokens.admin(), identifier="Anonymous")
    response = await http.post("/graphql", json={"query": DELETE, "variables": {"id": app["id"]}})
    assert response.status_code == 401
    assert app["id"] in await workbench_ids(http, tokens.user())


@pytest.mark.parametrize(
    ("app_id", "code"), [("abc", "INVALID_ID"), ("-1", "INVALID_ID"), ("999999", "APP_NOT_FOUND")]
)
@pytest.mark.parametrize("document", [UPDATE, DISABLE, ENABLE, DELETE])
async def test_bad_app_ids(http, tokens, document, app_id, code):
    """Malformed or unknown app ids are clear errors."""
    variables: dict[str, Any] = {"id": app_id}
    if document is UPDATE:
        variables["input"] = {}
    body = await gql(http, tokens.admin(), document, variables)
    if body["data"] is not None:  # input errors come back as UserErrors
        payload = next(iter(body["data"].values()))
        assert [e["code"] for e in payload["errors"]] == [code]
    else:
        assert body["errors"][0]["extensions"]["code"] == code


# --- disableApp / enableApp ----------------------------------------------------------------------


async def test_disabled_app_leaves_workbenches_and_refuses_vendors(http, tokens):
    """A disabled app is on no workbench, its key does not resolve and notices fail; enabling
    brings it back with its badges."""
    # given
    app = await create_app(http, tokens.admin(), identifier="Switchable")
    await push(http, app["id"], ["1001,1034"])
    # when
    disabled = await gql(http, tokens.admin(), DISABLE, {"id": app["id"]})
    again = await gql(http, tokens.admin(), DISABLE, {"id": app["id"]})
    # then
    assert disabled["data"]["disableApp"] == {
        "app": {"id": app["id"], "enabled": False},
        "errors": [],
    }
    assert again["data"]["disableApp"]["app"]["enabled"] is False
    assert app["id"] not in await workbench_ids(http, tokens.user())
    key = await http.get(GETAPPID, params={"appkey": app["appKey"]})
    assert key.content == b'{"Result":false,"MsgNo":-51001}'
    assert (await push(http, app["id"], ["1001,1034"])).content == (
        b'{"Result":false,"MsgNo":-51007}'
    )
    # when
    enabled = await gql(http, tokens.admin(), ENABLE, {"id": app["id"]})
    # then
    assert enabled["data"]["enableApp"]["app"]["enabled"] is True
    body = await gql(
        http,
        tokens.user(),
        "query { workbench(platform: PC) { apps { app { id } unread } } }",
    )
    assert {"app": {"id": app["id"]}, "unread": 1} in body["data"]["workbench"]["apps"]


async def test_enterprise_admin_disables_own_apps_only(http, tokens):
    """Enterprise admins switch their own apps; other apps look absent."""
    admin = tokens.enterprise_admin(cid=1001)
    mine = await create_app(http, admin, identifier="MineSwitch", **OWN_APP)
    theirs = await create_app(http, tokens.admin(), identifier="TheirSwitch")
    own = await gql(http, admin, DISABLE, {"id": mine["id"]})
    other = await gql(http, admin, DISABLE, {"id": theirs["id"]})
    assert own["data"]["disableApp"]["app"]["enabled"] is False
    assert other["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"
    assert theirs["id"] in await workbench_ids(http, tokens.user())


# --- deleteApp ----------------------------------------------------------------------------------


async def test_delete_takes_badges_removals_and_settings_with_it(http, tokens, settings):
    """Deleting an app removes its badges, removals, platforms and audience rows; its key
    and id stop working; the id is not reused."""
    # given
    app = await create_app(
        http,
        tokens.admin(),
        identifier="Doomed",
        audience={"mode": "ALL", "enterpriseIds": ["1003"]},
    )
    await push(http, app["id"], ["1001,1034", "1001,1078"])
    await gql(http, tokens.user(uid=1078), REMOVE, {"id": app["id"]})
    url = settings.database_url
    assert [await count_rows(url, m, app["id"]) for m in (AppBadge, AppRemoval)] == [2, 1]
    # when
    body = await gql(http, tokens.admin(), DELETE, {"id": app["id"]})
    # then
    assert body == {"data": {"deleteApp": {"deletedAppId": app["id"], "errors": []}}}
    for model in (AppBadge, AppRemoval, AppPlatform, AppAudience):
        assert await count_rows(url, model, app["id"]) == 0
    key = await http.get(GETAPPID, params={"appkey": app["appKey"]})
    assert key.content == b'{"Result":false,"MsgNo":-51001}'
    assert (await http.post(PUSH, data={"appid": app["id"], "users": '["1001,1034"]'})).content == (
        b'{"Result":false,"MsgNo":-51007}'
    )
    state = await gql(http, tokens.user(), "query { workbench(platform: PC) { unreadTotal } }")
    assert state["data"]["workbench"]["unreadTotal"] == 0
    again = await gql(http, tokens.admin(), DELETE, {"id": app["id"]})
    assert again["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"
    newer = await create_app(http, tokens.admin(), identifier="Doomed")
    assert int(newer["id"]) > int(app["id"])


async def test_enterprise_admin_deletes_own_apps_only(http, tokens):
    """An enterprise admin deletes its own app; another enterprise's admin cannot."""
    mine = await create_app(
        http, tokens.enterprise_admin(cid=1001), identifier="MineDelete", **OWN_APP
    )
    other = await gql(http, tokens.enterprise_admin(cid=1002), DELETE, {"id": mine["id"]})
    own = await gql(http, tokens.enterprise_admin(cid=1001), DELETE, {"id": mine["id"]})
    assert other["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"
    assert own["data"]["deleteApp"]["deletedAppId"] == mine["id"]


async def test_a_patch_that_changes_nothing_is_not_audited(http, tokens):
    """An empty patch, or one repeating current values, writes no audit entry."""
    app = await create_app(http, tokens.admin(), identifier="Quiet", name="安静应用")
    await update(http, tokens.admin(), app["id"])
    await update(http, tokens.admin(), app["id"], name="安静应用", identifier="Quiet")
    body = await gql(
        http,
        tokens.admin(),
        "query($id: ID!) { auditLog(filter: {targetId: $id}) { totalCount } }",
        {"id": app["id"]},
    )
    assert body["data"]["auditLog"]["totalCount"] == 1  # the creation only

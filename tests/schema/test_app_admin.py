"""app(id) and rotateAppKey: administrators only, each on the apps they administer."""

from __future__ import annotations

import pytest

from resolvers.identity import Role
from tests.factories import GETAPPID, create_app, gql

APP = "query($id: ID!) { app(id: $id) { id identifier appKey } }"
ROTATE = """
mutation($id: ID!) {
  rotateAppKey(appId: $id) { app { id appKey } errors { field code } }
}
"""
OWN_APP = {
    "name": "本企业应用",
    "kind": "ENTERPRISE",
    "pc": {"launchMode": "WEB", "webUrl": "https://own.example.com/"},
}


async def test_platform_admin_reads_any_app(http, tokens):
    """A platform administrator reads any app with its key; an unknown id is null."""
    app = await create_app(http, tokens.admin(), identifier="Readable")
    body = await gql(http, tokens.admin(), APP, {"id": app["id"]})
    assert body == {
        "data": {"app": {"id": app["id"], "identifier": "Readable", "appKey": app["appKey"]}}
    }
    assert await gql(http, tokens.admin(), APP, {"id": "999"}) == {"data": {"app": None}}


async def test_enterprise_admin_reads_only_its_own_apps(http, tokens):
    """An enterprise admin reads the apps it created; other apps look absent (null)."""
    mine = await create_app(
        http, tokens.enterprise_admin(cid=1001), identifier="MineOnly", **OWN_APP
    )
    theirs = await create_app(http, tokens.admin(), identifier="NotMine")
    admin = tokens.enterprise_admin(cid=1001)
    assert (await gql(http, admin, APP, {"id": mine["id"]}))["data"]["app"][
        "identifier"
    ] == "MineOnly"
    assert await gql(http, admin, APP, {"id": theirs["id"]}) == {"data": {"app": None}}
    other = tokens.enterprise_admin(cid=1002)
    assert await gql(http, other, APP, {"id": mine["id"]}) == {"data": {"app": None}}


async def test_rotation_retires_the_old_key(http, tokens):
    """After rotateAppKey the new key resolves the app and the old one fails (-51001)."""
    # given
    app = await create_app(http, tokens.admin(), identifier="Rotating")
    old = app["appKey"]
    # when
    body = await gql(http, tokens.admin(), ROTATE, {"id": app["id"]})
    # then
    new = body["data"]["rotateAppKey"]["app"]["appKey"]
    assert body["data"]["rotateAppKey"]["errors"] == []
    assert new != old
    assert len(new) == 32
    assert (await http.get(GETAPPID, params={"appkey": new})).content == (
        b'{"Result":true,"MsgNo":{"app_id":"%s"}}' % app["id"].encode()
    )
    assert (await http.get(GETAPPID, params={"appkey": old})).content == (
        b'{"Result":false,"MsgNo":-51001}'
    )


async def test_enterprise_admin_rotates_own_key_only(http, tokens):
    """An enterprise admin rotates its own app's key; another's app is APP_NOT_FOUND."""
    mine = await create_app(http, tokens.enterprise_admin(cid=1001), identifier="MyKey", **OWN_APP)
    theirs = await create_app(http, tokens.admin(), identifier="TheirKey")
    admin = tokens.enterprise_admin(cid=1001)
    assert (await gql(http, admin, ROTATE, {"id": mine["id"]}))["data"]["rotateAppKey"][
        "errors"
    ] == []
    refused = await gql(http, admin, ROTATE, {"id": theirs["id"]})
    assert refused["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"


@pytest.mark.parametrize("role", [Role.USER, Role.VENDOR])
async def test_users_and_vendors_are_forbidden(http, tokens, codec, role):
    """Users and vendors get FORBIDDEN from both fields, and no data."""
    app = await create_app(http, tokens.admin(), identifier="Guarded")
    token = codec.issue(cid=1001, uid=2, role=role, app_id=1 if role is Role.VENDOR else None)
    read = await gql(http, token, APP, {"id": app["id"]})
    assert read["data"] == {"app": None}
    assert read["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    rotated = await gql(http, token, ROTATE, {"id": app["id"]})
    assert rotated["data"] is None
    assert rotated["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_malformed_ids(http, tokens):
    """A malformed id is an INVALID_INPUT error for app, a field error for rotateAppKey."""
    body = await gql(http, tokens.admin(), APP, {"id": "x"})
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    rotated = await gql(http, tokens.admin(), ROTATE, {"id": "x"})
    assert rotated["data"]["rotateAppKey"]["errors"] == [{"field": "appId", "code": "INVALID_ID"}]


MOVE = """
mutation($id: ID!, $c: ID!, $p: Int) {
  moveApp(appId: $id, categoryId: $c, position: $p) { app { id } errors { field code } }
}
"""
CATEGORY = """
mutation($n: String!) { createCategory(groupId: "1", name: $n) { category { id } } }
"""
ORDER = "{ workbench(platform: PC) { groups { categories { name apps { app { identifier } } } } } }"


async def order(http, tokens) -> list[tuple[str, list[str]]]:
    """The user's PC workbench as (category, [identifiers])."""
    body = await gql(http, tokens.user(), ORDER)
    return [
        (c["name"], [a["app"]["identifier"] for a in c["apps"]])
        for g in body["data"]["workbench"]["groups"]
        for c in g["categories"]
    ]


async def test_move_between_categories_and_positions(http, tokens):
    """moveApp places the app at the index asked (or last) and renumbers the others."""
    # given
    admin = tokens.admin()
    other = (await gql(http, admin, CATEGORY, {"n": "Other"}))["data"]["createCategory"]
    a, b, c = [await create_app(http, admin, identifier=i) for i in ("AppA", "AppB", "AppC")]
    # when: C to the front, then B to another category, then back at a far position
    for app, category, position in ((c, "1", 0), (b, other["category"]["id"], None), (b, "1", 99)):
        body = await gql(http, admin, MOVE, {"id": app["id"], "c": category, "p": position})
        assert body["data"]["moveApp"]["errors"] == []
    # then
    assert await order(http, tokens) == [("默认分类", ["AppC", "AppA", "AppB"])]
    assert a["id"] != b["id"]


@pytest.mark.parametrize(
    ("category", "position", "field", "code"),
    [
        ("999", None, "categoryId", "UNKNOWN_CATEGORY"),
        ("1", -1, "position", "NEGATIVE_POSITION"),
        ("x", None, "categoryId", "INVALID_ID"),
    ],
)
async def test_move_refuses_bad_targets(http, tokens, category, position, field, code):
    """Unknown categories, negative positions and malformed ids are field errors."""
    app = await create_app(http, tokens.admin(), identifier="Stays")
    body = await gql(http, tokens.admin(), MOVE, {"id": app["id"], "c": category, "p": position})
    assert body["data"]["moveApp"] == {"app": None, "errors": [{"field": field, "code": code}]}


async def test_only_the_apps_administrators_move_it(http, tokens):
    """Another enterprise's admin gets APP_NOT_FOUND and a user FORBIDDEN."""
    app = await create_app(http, tokens.admin(), identifier="NotYours")
    refused = await gql(
        http, tokens.enterprise_admin(cid=1002), MOVE, {"id": app["id"], "c": "1", "p": 0}
    )
    assert refused["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"
    forbidden = await gql(http, tokens.user(), MOVE, {"id": app["id"], "c": "1", "p": 0})
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"

"""app(id) and rotateAppKey: administrators only, each on the apps they administer."""

from __future__ import annotations

import pytest

from resolvers.identity import Role
from tests.helpers import GETAPPID, create_app, gql

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

"""Every field of the GraphQL ``App`` type, as a user and as an administrator sees it (SPEC §7)."""

from __future__ import annotations

from unittest.mock import ANY

from tests.factories import CREATE_APP, gql

APP_FIELDS = """
query Full($platform: Platform!) {
  workbench(platform: $platform) {
    apps {
      unread removable
      app {
        id name identifier kind iconUrl appKey userRemovable enabled createdAt
        group { id name } category { id name }
        audience { mode enterpriseIds }
        platforms
        pc { launchMode webUrl runPath downloadUrl embeddedBrowser autoLogin loginParams }
        android { launchMode webUrl runPath downloadUrl embeddedBrowser autoLogin loginParams }
        ios { launchMode }
      }
    }
  }
}
"""

INPUT = {
    "name": "全字段应用",
    "identifier": "FullFields",
    "kind": "SYSTEM",
    "userRemovable": False,
    "icon": "chart",
    "audience": {"mode": "ALL", "enterpriseIds": ["1003", "1002"]},
    "pc": {
        "launchMode": "NATIVE",
        "runPath": r"C:\Program Files\Full\full.exe",
        "downloadUrl": "https://full.example.com/setup.exe",
    },
    "android": {
        "launchMode": "WEB",
        "webUrl": "https://full.example.com/m?x=1",
        "embeddedBrowser": False,
        "autoLogin": True,
        "loginParams": "&account=&password=",
    },
}


def expected_app(app_key: object, audience: object) -> dict:
    """The full App object of INPUT as the API should return it."""
    return {
        "id": ANY,
        "name": "全字段应用",
        "identifier": "FullFields",
        "kind": "SYSTEM",
        "iconUrl": ANY,
        "appKey": app_key,
        "userRemovable": False,
        "enabled": True,
        "createdAt": ANY,
        "group": {"id": "1", "name": "默认分组"},
        "category": {"id": "1", "name": "默认分类"},
        "audience": audience,
        "platforms": ["PC", "ANDROID"],
        "pc": {
            "launchMode": "NATIVE",
            "webUrl": None,
            "runPath": r"C:\Program Files\Full\full.exe",
            "downloadUrl": "https://full.example.com/setup.exe",
            "embeddedBrowser": True,  # the input's default, stored as given (unused by NATIVE)
            "autoLogin": False,
            "loginParams": None,
        },
        "android": {
            "launchMode": "WEB",
            "webUrl": "https://full.example.com/m?x=1",
            "runPath": None,
            "downloadUrl": None,
            "embeddedBrowser": False,
            "autoLogin": True,
            "loginParams": "&account=&password=",
        },
        "ios": None,
    }


async def test_user_sees_settings_but_no_key_or_audience(http, tokens):
    """A user gets every public field; appKey and audience are null for them."""
    # given
    created = await gql(http, tokens.admin(), CREATE_APP, {"input": INPUT})
    assert created["data"]["createApp"]["errors"] == []
    # when
    body = await gql(http, tokens.user(), APP_FIELDS, {"platform": "ANDROID"})
    # then
    (item,) = body["data"]["workbench"]["apps"]
    assert item == {"unread": 0, "removable": False, "app": expected_app(None, None)}
    assert item["app"]["iconUrl"].endswith("/icons/chart.png")
    assert (await http.get(item["app"]["iconUrl"])).headers["content-type"] == "image/png"


async def test_platform_admin_sees_key_and_audience(http, tokens):
    """A platform administrator also gets the app key and the (deduplicated, sorted) audience."""
    # given
    created = await gql(http, tokens.admin(), CREATE_APP, {"input": INPUT})
    key = created["data"]["createApp"]["app"]["appKey"]
    # when
    body = await gql(http, tokens.admin(), APP_FIELDS, {"platform": "PC"})
    # then
    (item,) = body["data"]["workbench"]["apps"]
    audience = {"mode": "ALL", "enterpriseIds": ["1002", "1003"]}
    assert item["app"] == expected_app(key, audience)


async def test_enterprise_admin_sees_only_own_apps_keys(http, tokens):
    """An enterprise administrator sees the key of its own ENTERPRISE app, not of others."""
    # given
    await gql(http, tokens.admin(), CREATE_APP, {"input": INPUT})
    own = {
        "name": "本企业应用",
        "identifier": "OwnApp",
        "kind": "ENTERPRISE",
        "pc": {"launchMode": "WEB", "webUrl": "https://own.example.com/"},
    }
    made = await gql(http, tokens.enterprise_admin(cid=1001), CREATE_APP, {"input": own})
    own_key = made["data"]["createApp"]["app"]["appKey"]
    # when
    body = await gql(http, tokens.enterprise_admin(cid=1001), APP_FIELDS, {"platform": "PC"})
    # then
    keys = {i["app"]["identifier"]: i["app"]["appKey"] for i in body["data"]["workbench"]["apps"]}
    assert keys == {"FullFields": None, "OwnApp": own_key}
    audiences = {
        i["app"]["identifier"]: i["app"]["audience"] for i in body["data"]["workbench"]["apps"]
    }
    assert audiences == {
        "FullFields": None,
        "OwnApp": {"mode": "SELECTED", "enterpriseIds": ["1001"]},
    }

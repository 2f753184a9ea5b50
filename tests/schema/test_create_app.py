"""``createApp`` (SPEC §2, §7): who may create which app, and every input rule, reported
together as ``errors: [UserError]`` with nothing written."""

from __future__ import annotations

import logging
import re
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from sqlalchemy import func, select

from imworkbench.settings import Settings
from resolvers.identity import Role
from storage.db import Database
from storage.models import App
from tests.factories import CREATE_APP, INVALID_IDENTIFIERS, INVALID_NAMES, VALID_NAMES, gql, web

CREATE_WITH_AUDIENCE = """
mutation Create($input: AppInput!) {
  createApp(input: $input) {
    app { id kind appKey audience { mode enterpriseIds } }
    appSecret
    errors { field message code }
  }
}
"""

CREATE_EMBEDDED = """
mutation Create($input: AppInput!) {
  createApp(input: $input) {
    app { pc { launchMode embeddedBrowser } android { launchMode embeddedBrowser } }
    errors { field message code }
  }
}
"""

CREATE_NAME = """
mutation Create($input: AppInput!) {
  createApp(input: $input) {
    app { name identifier }
    errors { field code }
  }
}
"""

NATIVE = {
    "launchMode": "NATIVE",
    "runPath": "com.example.app://open",
    "downloadUrl": "https://example.com/app.apk",
}


def app_input(**fields: Any) -> dict[str, Any]:
    """A valid ``AppInput`` (a WEB app on PC), with ``fields`` replacing or adding keys."""
    value: dict[str, Any] = {"name": "测试应用", "identifier": "TestApp", "pc": web()}
    value.update(fields)
    return value


def without(**fields: Any) -> dict[str, Any]:
    """A valid ``AppInput`` without its platforms, with ``fields`` added."""
    value = app_input(**fields)
    if "pc" not in fields:
        del value["pc"]
    return value


def refused(*errors: tuple[str | None, str]) -> dict[str, Any]:
    """The ``createApp`` payload that refuses the input with exactly these (field, code) errors."""
    return {
        "app": None,
        "appSecret": None,
        "errors": [{"field": field, "message": ANY, "code": code} for field, code in errors],
    }


async def count_apps(settings: Settings) -> int:
    """How many apps the database holds."""
    db = Database(settings.database_url)
    try:
        async with db.read() as session:
            return (await session.execute(select(func.count()).select_from(App))).scalar_one()
    finally:
        await db.dispose()


VALID_IDENTIFIERS = ["abcd", "b" * 20, "A1_b", "x_________", "Zz99"]


INVALID_INPUTS: dict[str, tuple[dict[str, Any], list[tuple[str | None, str]]]] = {
    "no platform": (without(), [(None, "NO_PLATFORM")]),
    "web without url": (app_input(pc={"launchMode": "WEB"}), [("input.pc.webUrl", "REQUIRED")]),
    "web url blank": (app_input(pc=web("   ")), [("input.pc.webUrl", "REQUIRED")]),
    "ftp url": (app_input(pc=web("ftp://example.com/app")), [("input.pc.webUrl", "INVALID_URL")]),
    "relative url": (app_input(pc=web("/relative/app")), [("input.pc.webUrl", "INVALID_URL")]),
    "url without scheme": (
        app_input(pc=web("example.com/app")),
        [("input.pc.webUrl", "INVALID_URL")],
    ),
    "url with a space": (
        app_input(pc=web("https://example.com/my app")),
        [("input.pc.webUrl", "INVALID_URL")],
    ),
    "url without host": (app_input(pc=web("https://")), [("input.pc.webUrl", "INVALID_URL")]),
    "url with a bad port": (
        app_input(pc=web("https://example.com:99999/app")),
        [("input.pc.webUrl", "INVALID_URL")],
    ),
    "url with a backslash before @": (
        app_input(pc=web("https://good.example.com\\@evil.example.com/")),
        [("input.pc.webUrl", "INVALID_URL")],
    ),
    "url with a lone surrogate": (
        app_input(pc=web("https://example.com/\ud800")),
        [("input.pc.webUrl", "INVALID_URL")],
    ),
    "url too long": (
        app_input(pc=web("https://example.com/" + "a" * 2049)),
        [("input.pc.webUrl", "INVALID_URL")],
    ),
    "native without run path": (
        without(android={**NATIVE, "runPath": None}),
        [("input.android.runPath", "REQUIRED")],
    ),
    "native without download url": (
        without(ios={**NATIVE, "downloadUrl": None}),
        [("input.ios.downloadUrl", "REQUIRED")],
    ),
    "native without either": (
        without(android={"launchMode": "NATIVE"}),
        [("input.android.runPath", "REQUIRED"), ("input.android.downloadUrl", "REQUIRED")],
    ),
    "native download url not http": (
        without(android={**NATIVE, "downloadUrl": "market://details"}),
        [("input.android.downloadUrl", "INVALID_URL")],
    ),
    "auto-login on pc": (
        app_input(pc={**web(), "autoLogin": True, "loginParams": "&account=&password="}),
        [("input.pc.autoLogin", "UNSUPPORTED")],
    ),
    "login params without auto-login": (
        without(android={**web(), "loginParams": "&account=&password="}),
        [("input.android.loginParams", "NOT_ALLOWED")],
    ),
    "auto-login without login params": (
        without(android={**web(), "autoLogin": True}),
        [("input.android.loginParams", "REQUIRED")],
    ),
    "login params without =": (
        without(ios={**NATIVE, "autoLogin": True, "loginParams": "account"}),
        [("input.ios.loginParams", "INVALID_LOGIN_PARAMS")],
    ),
    "login params with an empty name": (
        without(ios={**web(), "autoLogin": True, "loginParams": "&&a=b"}),
        [("input.ios.loginParams", "INVALID_LOGIN_PARAMS")],
    ),
    "login params with a space": (
        without(ios={**web(), "autoLogin": True, "loginParams": "&a=b c"}),
        [("input.ios.loginParams", "INVALID_LOGIN_PARAMS")],
    ),
    "audience id not numeric": (
        app_input(audience={"mode": "ALL", "enterpriseIds": ["1001", "acme"]}),
        [("input.audience.enterpriseIds[1]", "INVALID_ID")],
    ),
    "audience id negative": (
        app_input(audience={"mode": "SELECTED", "enterpriseIds": ["-5"]}),
        [("input.audience.enterpriseIds[0]", "INVALID_ID")],
    ),
    "audience id of 20 digits": (
        app_input(audience={"mode": "SELECTED", "enterpriseIds": ["9" * 20]}),
        [("input.audience.enterpriseIds[0]", "INVALID_ID")],
    ),
    "selected id repeated": (
        app_input(audience={"mode": "SELECTED", "enterpriseIds": ["1001", "1001"]}),
        [("input.audience.enterpriseIds", "DUPLICATE_ID")],
    ),
    "hidden id repeated": (
        app_input(audience={"mode": "ALL", "enterpriseIds": ["1002", "1003", "1002"]}),
        [("input.audience.enterpriseIds", "DUPLICATE_ID")],
    ),
    "one id written two ways": (
        app_input(audience={"mode": "SELECTED", "enterpriseIds": ["1001", 1001, "01001"]}),
        [("input.audience.enterpriseIds", "DUPLICATE_ID")],
    ),
    "selected without ids": (
        app_input(audience={"mode": "SELECTED", "enterpriseIds": []}),
        [("input.audience.enterpriseIds", "REQUIRED")],
    ),
    "unknown category": (
        app_input(categoryId="999"),
        [("input.categoryId", "UNKNOWN_CATEGORY")],
    ),
    "category zero": (app_input(categoryId="0"), [("input.categoryId", "UNKNOWN_CATEGORY")]),
    "category beyond 32 bits": (
        app_input(categoryId=str(2**31)),
        [("input.categoryId", "UNKNOWN_CATEGORY")],
    ),
    "largest category id": (
        app_input(categoryId=str(2**63 - 1)),
        [("input.categoryId", "UNKNOWN_CATEGORY")],
    ),
    "category not numeric": (
        app_input(categoryId="kitchen"),
        [("input.categoryId", "INVALID_ID")],
    ),
    "unknown icon": (app_input(icon="rocket"), [("input.icon", "UNKNOWN_ICON")]),
}

VALID_INPUTS: dict[str, dict[str, Any]] = {
    "native": without(android=NATIVE),
    "positional login params": without(
        android={**web(), "autoLogin": True, "loginParams": "&account=&password="}
    ),
    "placeholder login params": without(
        ios={**NATIVE, "autoLogin": True, "loginParams": "?u={account}&t={ticket}"}
    ),
    "upper-case http url with port": app_input(pc=web("HTTP://Example.com:8080/a?b=c#d")),
    "selected ids as strings and numbers": app_input(
        audience={"mode": "SELECTED", "enterpriseIds": ["1001", 1002]}
    ),
    "enterprise id 0 (SPEC §2: 1 to 19 decimal digits)": app_input(
        audience={"mode": "ALL", "enterpriseIds": ["0"]}
    ),
    "default category by id": app_input(categoryId="1"),
    "built-in icon": app_input(icon="calendar"),
}


async def create_each(
    http: httpx.AsyncClient, token: str, query: str, inputs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The ``createApp`` payload of each input, by case name, created one after another."""
    payloads = {}
    for case, value in inputs.items():
        body = await gql(http, token, query, {"input": value})
        payloads[case] = body["data"]["createApp"]
    return payloads


async def test_platform_admin_creates_any_kind(http, tokens):
    """A platform administrator creates an app of each kind and gets its key and secret."""
    # given
    kinds = ["ENTERPRISE", "SYSTEM", "CUSTOM"]
    inputs = {
        kind: app_input(kind=kind, identifier=f"Kind{kind}", android=web(), ios=web())
        for kind in kinds
    }

    # when
    payloads = await create_each(http, tokens.admin(), CREATE_APP, inputs)

    # then
    assert payloads == {
        kind: {
            "app": {
                "id": ANY,
                "name": "测试应用",
                "identifier": f"Kind{kind}",
                "kind": kind,
                "appKey": ANY,
                "userRemovable": True,
                "platforms": ["PC", "ANDROID", "IOS"],
            },
            "appSecret": ANY,
            "errors": [],
        }
        for kind in kinds
    }


async def test_created_app_has_a_hex_key_and_a_secret(http, tokens):
    """A new app's key is 32 hex characters and its secret is returned, non-empty."""
    # when
    body = await gql(http, tokens.admin(), CREATE_APP, {"input": app_input()})

    # then
    payload = body["data"]["createApp"]
    assert re.fullmatch(r"[0-9a-f]{32}", payload["app"]["appKey"])
    assert isinstance(payload["appSecret"], str)
    assert len(payload["appSecret"]) >= 32


async def test_created_apps_get_distinct_keys_and_secrets(http, tokens):
    """Two apps never share an app key or a secret."""
    # when
    first = await gql(http, tokens.admin(), CREATE_APP, {"input": app_input(identifier="First")})
    second = await gql(http, tokens.admin(), CREATE_APP, {"input": app_input(identifier="Other")})

    # then
    one, two = first["data"]["createApp"], second["data"]["createApp"]
    assert one["app"]["appKey"] != two["app"]["appKey"]
    assert one["appSecret"] != two["appSecret"]


async def test_enterprise_admin_creates_enterprise_app_for_own_enterprise(http, tokens):
    """An enterprise administrator's ENTERPRISE app without an audience is shown to their own
    enterprise only, and they see its key."""
    # given
    new_app = app_input(kind="ENTERPRISE")

    # when
    body = await gql(
        http, tokens.enterprise_admin(cid=1001), CREATE_WITH_AUDIENCE, {"input": new_app}
    )

    # then
    assert body == {
        "data": {
            "createApp": {
                "app": {
                    "id": ANY,
                    "kind": "ENTERPRISE",
                    "appKey": ANY,
                    "audience": {"mode": "SELECTED", "enterpriseIds": ["1001"]},
                },
                "appSecret": ANY,
                "errors": [],
            }
        }
    }
    assert re.fullmatch(r"[0-9a-f]{32}", body["data"]["createApp"]["app"]["appKey"])


@pytest.mark.parametrize(
    "audience",
    [
        {"mode": "SELECTED", "enterpriseIds": ["1002"]},
        {"mode": "SELECTED", "enterpriseIds": ["1001", "1002"]},
        {"mode": "ALL", "enterpriseIds": ["1002"]},
        {"mode": "ALL", "enterpriseIds": ["1001"]},
    ],
)
async def test_enterprise_admin_other_audience_is_refused(http, tokens, settings, audience, caplog):
    """An enterprise administrator's app for other enterprises (or for all but some) is
    refused on input.audience, not silently narrowed to their own enterprise."""
    # when
    body = await gql(
        http,
        tokens.enterprise_admin(cid=1001),
        CREATE_WITH_AUDIENCE,
        {"input": app_input(kind="ENTERPRISE", audience=audience)},
    )
    # then
    assert body == {"data": {"createApp": refused(("input.audience", "FORBIDDEN_AUDIENCE"))}}
    assert await count_apps(settings) == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_enterprise_admin_repeating_own_enterprise_is_refused(http, tokens):
    """An enterprise administrator's SELECTED [own, own] is refused, not narrowed silently."""
    # given
    admin = tokens.enterprise_admin(1001)
    # when
    body = await gql(
        http,
        admin,
        CREATE_APP,
        {
            "input": {
                "name": "本企业应用",
                "kind": "ENTERPRISE",
                "identifier": "OwnTwice",
                "pc": web(),
                "audience": {"mode": "SELECTED", "enterpriseIds": ["1001", "1001"]},
            }
        },
    )
    # then
    duplicate = ("input.audience.enterpriseIds", "DUPLICATE_ID")
    assert body == {"data": {"createApp": refused(duplicate)}}


async def test_enterprise_admin_own_audience_is_stored_as_given(http, tokens):
    """An enterprise administrator who names their own enterprise gets exactly that audience."""
    # given
    audience = {"mode": "SELECTED", "enterpriseIds": ["1001"]}
    # when
    body = await gql(
        http,
        tokens.enterprise_admin(cid=1001),
        CREATE_WITH_AUDIENCE,
        {"input": app_input(kind="ENTERPRISE", audience=audience)},
    )
    # then
    assert body["data"]["createApp"]["errors"] == []
    assert body["data"]["createApp"]["app"]["audience"] == audience


@pytest.mark.parametrize("embedded", [True, False])
@pytest.mark.parametrize("platform", ["pc", "android"])
@pytest.mark.parametrize("mode", ["WEB", "NATIVE"])
async def test_embedded_browser_is_stored_as_given(http, tokens, platform, mode, embedded):
    """embeddedBrowser is stored and answered as given on every platform and launch mode
    (launches use it on ANDROID/IOS WEB only), never silently turned into false."""
    # given
    settings = {**(web() if mode == "WEB" else NATIVE), "embeddedBrowser": embedded}
    # when
    body = await gql(
        http, tokens.admin(), CREATE_EMBEDDED, {"input": without(**{platform: settings})}
    )
    # then
    created = body["data"]["createApp"]
    assert created["errors"] == []
    assert created["app"][platform] == {"launchMode": mode, "embeddedBrowser": embedded}


async def test_enterprise_admin_cannot_create_other_kinds(http, tokens, settings):
    """An enterprise administrator's SYSTEM or CUSTOM app is refused on input.kind."""
    # given
    inputs = {kind: app_input(kind=kind) for kind in ("SYSTEM", "CUSTOM")}

    # when
    payloads = await create_each(http, tokens.enterprise_admin(), CREATE_APP, inputs)

    # then
    assert payloads == {kind: refused(("input.kind", "FORBIDDEN_KIND")) for kind in inputs}
    assert await count_apps(settings) == 0


async def test_enterprise_admin_kind_error_comes_with_the_other_errors(http, tokens):
    """The refused kind is reported together with the input's other errors."""
    # when
    body = await gql(
        http,
        tokens.enterprise_admin(),
        CREATE_APP,
        {"input": app_input(kind="CUSTOM", name="abc")},
    )

    # then
    assert body == {
        "data": {
            "createApp": refused(("input.kind", "FORBIDDEN_KIND"), ("input.name", "NAME_LENGTH"))
        }
    }


@pytest.mark.parametrize("role", [Role.USER, Role.VENDOR])
async def test_non_administrators_are_forbidden(http, codec, settings, role):
    """Users and vendors get a FORBIDDEN error, no data, and nothing is created."""
    # given
    token = codec.issue(cid=1001, uid=1034, role=role, app_id=1 if role is Role.VENDOR else None)

    # when
    body = await gql(http, token, CREATE_APP, {"input": app_input()})

    # then
    assert body == {
        "data": None,
        "errors": [
            {
                "message": ANY,
                "locations": ANY,
                "path": ["createApp"],
                "extensions": {"code": "FORBIDDEN"},
            }
        ],
    }
    assert await count_apps(settings) == 0


async def test_valid_names(http, tokens):
    """Names of 4 to 20 units (ASCII 1, other 2) are accepted, trimmed of outer spaces."""
    # given
    inputs = {
        case: app_input(name=name, identifier=f"Name{index}")
        for index, (case, (name, _)) in enumerate(VALID_NAMES.items())
    }

    # when
    payloads = await create_each(http, tokens.admin(), CREATE_NAME, inputs)

    # then
    assert payloads == {
        case: {"app": {"name": stored, "identifier": f"Name{index}"}, "errors": []}
        for index, (case, (_, stored)) in enumerate(VALID_NAMES.items())
    }


async def test_invalid_names(http, tokens, settings):
    """Names outside 4..20 units after trimming, or with control characters, are refused."""
    # given
    inputs = {case: app_input(name=name) for case, (name, _) in INVALID_NAMES.items()}

    # when
    payloads = await create_each(http, tokens.admin(), CREATE_APP, inputs)

    # then
    assert payloads == {
        case: refused(("input.name", code)) for case, (_, code) in INVALID_NAMES.items()
    }
    assert await count_apps(settings) == 0


async def test_valid_identifiers(http, tokens):
    """Identifiers of 4 to 20 letters, digits and _, starting with a letter, are accepted."""
    # given
    inputs = {identifier: app_input(identifier=identifier) for identifier in VALID_IDENTIFIERS}

    # when
    payloads = await create_each(http, tokens.admin(), CREATE_NAME, inputs)

    # then
    assert payloads == {
        identifier: {"app": {"name": "测试应用", "identifier": identifier}, "errors": []}
        for identifier in VALID_IDENTIFIERS
    }


async def test_invalid_identifiers(http, tokens, settings):
    """Identifiers that are too short or long, start with no letter or hold other characters
    are refused."""
    # given
    inputs = {identifier: app_input(identifier=identifier) for identifier in INVALID_IDENTIFIERS}

    # when
    payloads = await create_each(http, tokens.admin(), CREATE_APP, inputs)

    # then
    assert payloads == {
        identifier: refused(("input.identifier", "INVALID_IDENTIFIER"))
        for identifier in INVALID_IDENTIFIERS
    }
    assert await count_apps(settings) == 0


async def test_identifier_is_unique_ignoring_case(http, tokens, settings):
    """An identifier that differs from a taken one only in case is refused."""
    # given
    await gql(http, tokens.admin(), CREATE_APP, {"input": app_input(identifier="MyApp")})

    # when
    body = await gql(http, tokens.admin(), CREATE_APP, {"input": app_input(identifier="myAPP")})

    # then
    assert body == {"data": {"createApp": refused(("input.identifier", "IDENTIFIER_TAKEN"))}}
    assert await count_apps(settings) == 1


async def test_invalid_input_is_refused_with_its_field(http, tokens, settings):
    """Each broken platform, audience, category or icon rule is reported on its input path and
    nothing is created."""
    # given
    inputs = {case: value for case, (value, _) in INVALID_INPUTS.items()}

    # when
    payloads = await create_each(http, tokens.admin(), CREATE_APP, inputs)

    # then
    assert payloads == {case: refused(*errors) for case, (_, errors) in INVALID_INPUTS.items()}
    assert await count_apps(settings) == 0


async def test_valid_settings_are_accepted(http, tokens, settings):
    """Well-formed platform, audience, category and icon settings create the app."""
    # given
    inputs = {
        case: {**value, "identifier": f"Valid{index}"}
        for index, (case, value) in enumerate(VALID_INPUTS.items())
    }

    # when
    payloads = await create_each(http, tokens.admin(), CREATE_APP, inputs)

    # then
    assert {case: payload["errors"] for case, payload in payloads.items()} == {
        case: [] for case in VALID_INPUTS
    }
    assert await count_apps(settings) == len(VALID_INPUTS)


async def test_every_error_is_reported_at_once(http, tokens, settings):
    """An input breaking many rules gets all of them in one answer, in input order."""
    # given
    new_app = {
        "name": "应",
        "identifier": "9lives",
        "icon": "rocket",
        "categoryId": "999",
        "pc": {"launchMode": "WEB", "webUrl": "ftp://example.com", "autoLogin": True},
        "android": {"launchMode": "NATIVE", "loginParams": "&a="},
        "audience": {"mode": "SELECTED", "enterpriseIds": ["x"]},
    }

    # when
    body = await gql(http, tokens.admin(), CREATE_APP, {"input": new_app})

    # then
    assert body == {
        "data": {
            "createApp": refused(
                ("input.name", "NAME_LENGTH"),
                ("input.identifier", "INVALID_IDENTIFIER"),
                ("input.icon", "UNKNOWN_ICON"),
                ("input.pc.webUrl", "INVALID_URL"),
                ("input.pc.autoLogin", "UNSUPPORTED"),
                ("input.android.runPath", "REQUIRED"),
                ("input.android.downloadUrl", "REQUIRED"),
                ("input.android.loginParams", "NOT_ALLOWED"),
                ("input.audience.enterpriseIds[0]", "INVALID_ID"),
                ("input.categoryId", "UNKNOWN_CATEGORY"),
            )
        }
    }
    assert await count_apps(settings) == 0


async def test_taken_identifier_is_reported_with_other_errors(http, tokens, settings):
    """A taken identifier and an unknown category come with the stateless errors."""
    # given
    await gql(http, tokens.admin(), CREATE_APP, {"input": app_input(identifier="Taken")})

    # when
    body = await gql(
        http,
        tokens.admin(),
        CREATE_APP,
        {"input": app_input(identifier="TAKEN", name="abc", categoryId="77")},
    )

    # then
    assert body == {
        "data": {
            "createApp": refused(
                ("input.name", "NAME_LENGTH"),
                ("input.categoryId", "UNKNOWN_CATEGORY"),
                ("input.identifier", "IDENTIFIER_TAKEN"),
            )
        }
    }
    assert await count_apps(settings) == 1

"""The vendor API (SPEC §8; issue 4 items 3-4): app secrets and access tokens, pushAppNotice
with idempotency keys, setAppBadge with versions, verifyTicket, and signed legacy mode."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from resolvers.identity import Role
from tests.factories import CREATE_APP, PUSH, SETNUM, gql, web

TOKEN = """
mutation($id: ID!, $secret: String!) {
  appAccessToken(appId: $id, appSecret: $secret) { accessToken expiresIn errors { code } }
}
"""
ROTATE = """
mutation($id: ID!) { rotateAppSecret(appId: $id) { appSecret errors { code } } }
"""
NOTICE = """
mutation($r: [UserInput!]!, $k: String) {
  pushAppNotice(recipients: $r, idempotencyKey: $k) {
    results { user { cid uid } applied reason } replayed errors { field code }
  }
}
"""
SET_BADGE = """
mutation($u: UserInput!, $n: Int!, $v: String!) {
  setAppBadge(user: $u, unread: $n, version: $v) {
    badge { user { cid uid } unread version }
    current { unread version }
    errors { field code }
  }
}
"""
VERIFY = """
mutation($t: String!) { verifyTicket(ticket: $t) { user { cid uid account } errors { code } } }
"""
WORKBENCH = "{ workbench(platform: PC) { unreadTotal apps { app { id } unread } } }"


async def new_app(http, tokens, identifier: str = "VendorApp", **extra: Any) -> dict[str, Any]:
    """Create an app; returns its id, appKey and appSecret."""
    app_input = {
        "name": "供应商应用",
        "identifier": identifier,
        "pc": web(),
        "android": {
            **web("https://vendor.example.com/m"),
            "autoLogin": True,
            "loginParams": "&account=&password=",
        },
        **extra,
    }
    body = await gql(http, tokens.admin(), CREATE_APP, {"input": app_input})
    payload = body["data"]["createApp"]
    assert payload["errors"] == [], payload
    return {**payload["app"], "appSecret": payload["appSecret"]}


async def anonymous(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any]
) -> httpx.Response:
    """POST without any Authorization header."""
    return await http.post("/graphql", json={"query": query, "variables": variables})


async def vendor_token(http, app: dict[str, Any], secret: str | None = None) -> str:
    """Exchange the app's secret for a vendor token."""
    response = await anonymous(http, TOKEN, {"id": app["id"], "secret": secret or app["appSecret"]})
    payload = response.json()["data"]["appAccessToken"]
    assert payload["errors"] == [], payload
    return payload["accessToken"]


async def unread(http, tokens, app_id: str, cid: int = 1001, uid: int = 1034) -> int:
    """The user's unread count of the app."""
    body = await gql(http, tokens.user(cid=cid, uid=uid), WORKBENCH)
    apps = body["data"]["workbench"]["apps"]
    return next(a["unread"] for a in apps if a["app"]["id"] == app_id)


# --- secrets and tokens -------------------------------------------------------------------------


async def test_secret_buys_a_two_hour_vendor_token(http, tokens):
    """appAccessToken needs no Authorization header and gives a vendor token for 7200 s."""
    app = await new_app(http, tokens)
    response = await anonymous(http, TOKEN, {"id": app["id"], "secret": app["appSecret"]})
    payload = response.json()["data"]["appAccessToken"]
    assert payload["expiresIn"] == 7200
    assert payload["errors"] == []
    assert payload["accessToken"].count(".") == 2


@pytest.mark.parametrize(
    ("app_id", "secret"), [("own", "wrong"), ("999", "any"), ("own", ""), ("own", "x" * 300)]
)
async def test_wrong_credentials_get_one_answer(http, tokens, app_id, secret):
    """Wrong secret, unknown app, empty or overlong secret: the same UNAUTHENTICATED error."""
    app = await new_app(http, tokens)
    response = await anonymous(
        http, TOKEN, {"id": app["id"] if app_id == "own" else app_id, "secret": secret}
    )
    assert response.json()["data"]["appAccessToken"] == {
        "accessToken": None,
        "expiresIn": None,
        "errors": [{"code": "UNAUTHENTICATED"}],
    }


async def test_anonymous_requests_may_only_exchange_secrets(http, tokens):
    """Without a token, anything besides appAccessToken (even alongside it) is 401."""
    app = await new_app(http, tokens)
    mixed = (
        'mutation { appAccessToken(appId: "1", appSecret: "x") { accessToken } '
        "openWorkbench { version } }"
    )
    for query in (
        WORKBENCH,
        mixed,
        "query { __typename }",
        "mutation { ...F } fragment F on Mutation { openWorkbench { version } }",
    ):
        response = await anonymous(http, query, {})
        assert response.status_code == 401, query
    assert (await anonymous(http, TOKEN, {"id": app["id"], "secret": "x"})).status_code == 200


async def test_disabled_app_gets_no_token(http, tokens):
    """A disabled app's secret buys nothing."""
    app = await new_app(http, tokens)
    await gql(
        http,
        tokens.admin(),
        "mutation($id: ID!) { disableApp(appId: $id) { errors { code } } }",
        app,
    )
    response = await anonymous(http, TOKEN, {"id": app["id"], "secret": app["appSecret"]})
    assert response.json()["data"]["appAccessToken"]["errors"] == [{"code": "UNAUTHENTICATED"}]


async def test_rotation_keeps_the_old_secret_for_the_grace_period(http, tokens):
    """After rotateAppSecret both secrets work (default grace: a day); the new one is new."""
    app = await new_app(http, tokens)
    body = await gql(http, tokens.admin(), ROTATE, {"id": app["id"]})
    secret = body["data"]["rotateAppSecret"]["appSecret"]
    assert secret
    assert secret != app["appSecret"]
    assert await vendor_token(http, app, secret)
    assert await vendor_token(http, app)


@pytest.mark.parametrize("role", [Role.USER, Role.VENDOR])
async def test_only_administrators_rotate_secrets(http, tokens, codec, role):
    """Users and vendors (even the app's own) cannot rotate the secret."""
    app = await new_app(http, tokens)
    token = codec.issue(cid=1001, uid=1, role=role, app_id=int(app["id"]))
    body = await gql(http, token, ROTATE, {"id": app["id"]})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# --- pushAppNotice ------------------------------------------------------------------------------


async def test_notice_results_per_recipient(http, tokens):
    """Each distinct recipient gets a result: applied, or skipped with the reason."""
    app = await new_app(http, tokens, audience={"mode": "ALL", "enterpriseIds": ["1002"]})
    token = await vendor_token(http, app)
    users = [
        {"cid": "1001", "uid": "1034"},
        {"cid": "1002", "uid": "7"},
        {"cid": "1001", "uid": "1034"},
    ]
    body = await gql(http, token, NOTICE, {"r": users})
    payload = body["data"]["pushAppNotice"]
    assert payload == {
        "results": [
            {"user": {"cid": "1001", "uid": "1034"}, "applied": True, "reason": None},
            {
                "user": {"cid": "1002", "uid": "7"},
                "applied": False,
                "reason": "enterprise outside the app's audience",
            },
        ],
        "replayed": False,
        "errors": [],
    }
    assert await unread(http, tokens, app["id"]) == 1


async def test_idempotency_key_applies_once(http, tokens):
    """A replayed key applies nothing and returns the first results, marked replayed."""
    app = await new_app(http, tokens)
    token = await vendor_token(http, app)
    variables = {"r": [{"cid": "1001", "uid": "1034"}], "k": "msg-42"}
    first = (await gql(http, token, NOTICE, variables))["data"]["pushAppNotice"]
    again = (await gql(http, token, NOTICE, variables))["data"]["pushAppNotice"]
    other = (await gql(http, token, NOTICE, {**variables, "k": "msg-43"}))["data"]["pushAppNotice"]
    assert first["replayed"] is False
    assert again == {**first, "replayed": True}
    assert other["replayed"] is False
    assert await unread(http, tokens, app["id"]) == 2


@pytest.mark.parametrize(
    ("variables", "field", "code"),
    [
        ({"r": []}, "recipients", "REQUIRED"),
        ({"r": [{"cid": "x", "uid": "1"}]}, "recipients[0].cid", "INVALID_ID"),
        ({"r": [{"cid": "1", "uid": "1"}], "k": ""}, "idempotencyKey", "INVALID_IDEMPOTENCY_KEY"),
        (
            {"r": [{"cid": "1", "uid": "1"}], "k": "k" * 129},
            "idempotencyKey",
            "INVALID_IDEMPOTENCY_KEY",
        ),
        (
            {"r": [{"cid": "1", "uid": "1"}], "k": "a\nb"},
            "idempotencyKey",
            "INVALID_IDEMPOTENCY_KEY",
        ),
    ],
)
async def test_bad_notice_input(http, tokens, variables, field, code):
    """Bad recipients or keys are field errors; nothing is counted."""
    app = await new_app(http, tokens)
    token = await vendor_token(http, app)
    payload = (await gql(http, token, NOTICE, variables))["data"]["pushAppNotice"]
    assert payload["errors"] == [{"field": field, "code": code}]


@pytest.mark.parametrize("role", [Role.USER, Role.PLATFORM_ADMIN])
async def test_vendor_fields_need_a_vendor_token(http, codec, role):
    """Users and administrators are FORBIDDEN from the vendor fields."""
    token = codec.issue(cid=1001, uid=1, role=role)
    for query, variables in (
        (NOTICE, {"r": [{"cid": "1001", "uid": "1"}]}),
        (SET_BADGE, {"u": {"cid": "1001", "uid": "1"}, "n": 1, "v": "1"}),
        (VERIFY, {"t": "T" * 43}),
    ):
        body = await gql(http, token, query, variables)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# --- setAppBadge --------------------------------------------------------------------------------


async def test_set_badge_is_absolute_and_versioned(http, tokens):
    """setAppBadge sets the count; a stale version is refused with the state in force."""
    app = await new_app(http, tokens)
    token = await vendor_token(http, app)
    user = {"cid": "1001", "uid": "1034"}
    first = (await gql(http, token, SET_BADGE, {"u": user, "n": 5, "v": "100"}))["data"]
    assert first["setAppBadge"]["badge"] == {"user": user, "unread": 5, "version": "100"}
    assert await unread(http, tokens, app["id"]) == 5
    stale = (await gql(http, token, SET_BADGE, {"u": user, "n": 9, "v": "100"}))["data"]
    assert stale["setAppBadge"] == {
        "badge": None,
        "current": {"unread": 5, "version": "100"},
        "errors": [{"field": "version", "code": "STALE_VERSION"}],
    }
    lower = (await gql(http, token, SET_BADGE, {"u": user, "n": 0, "v": "101"}))["data"]
    assert lower["setAppBadge"]["badge"]["unread"] == 0
    assert await unread(http, tokens, app["id"]) == 0


@pytest.mark.parametrize(
    ("n", "v", "field", "code"),
    [
        (-1, "1", "unread", "INVALID_COUNT"),
        (1, "", "version", "INVALID_VERSION"),
        (1, "1.5", "version", "INVALID_VERSION"),
        (1, "-3", "version", "INVALID_VERSION"),
        (1, "9" * 20, "version", "INVALID_VERSION"),
    ],
)
async def test_bad_badge_input(http, tokens, n, v, field, code):
    """Negative counts and malformed versions are refused."""
    app = await new_app(http, tokens)
    token = await vendor_token(http, app)
    body = await gql(http, token, SET_BADGE, {"u": {"cid": "1001", "uid": "1"}, "n": n, "v": v})
    assert body["data"]["setAppBadge"]["errors"] == [{"field": field, "code": code}]


async def test_a_vendor_token_acts_on_its_own_app_only(http, tokens):
    """App A's token counts notices for A only and cannot verify B's tickets."""
    a = await new_app(http, tokens, identifier="AppA")
    b = await new_app(http, tokens, identifier="AppB")
    token_a = await vendor_token(http, a)
    await gql(http, token_a, NOTICE, {"r": [{"cid": "1001", "uid": "1034"}]})
    assert await unread(http, tokens, a["id"]) == 1
    assert await unread(http, tokens, b["id"]) == 0
    launch = await gql(
        http,
        tokens.user(),
        "mutation($id: ID!) { openApp(appId: $id, platform: ANDROID) { url } }",
        {"id": b["id"]},
    )
    ticket = parse_qs(urlsplit(launch["data"]["openApp"]["url"]).query)["password"][0]
    refused = await gql(http, token_a, VERIFY, {"t": ticket})
    assert refused["data"]["verifyTicket"] == {"user": None, "errors": [{"code": "INVALID_TICKET"}]}
    token_b = await vendor_token(http, b)
    accepted = await gql(http, token_b, VERIFY, {"t": ticket})
    assert accepted["data"]["verifyTicket"]["user"] == {
        "cid": "1001",
        "uid": "1034",
        "account": "user1034",
    }
    replay = await gql(http, token_b, VERIFY, {"t": ticket})
    assert replay["data"]["verifyTicket"]["errors"] == [{"code": "INVALID_TICKET"}]


# --- signed legacy mode -------------------------------------------------------------------------


def signed(params: dict[str, str], secret: str, when: int | None = None) -> dict[str, str]:
    """``params`` with ``timestamp`` and the HMAC ``sign`` of SPEC §8."""
    with_time = {**params, "timestamp": str(int(time.time()) if when is None else when)}
    message = "&".join(f"{k}={with_time[k]}" for k in sorted(with_time)).encode()
    sign = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {**with_time, "sign": sign}


async def test_signed_mode_refuses_unsigned_expired_and_replayed_calls(http, tokens):
    """A signed-mode app accepts a fresh, correct sign once; unsigned, expired, wrong and
    replayed calls get the exact legacy failure bodies."""
    app = await new_app(http, tokens, legacySigned=True)
    secret = app["appSecret"]
    notice = {"fromcid": "1001", "fromuid": "1", "appid": app["id"], "users": '["1001,1034"]'}
    failure = b'{"Result":false,"MsgNo":-51007}'
    assert (await http.post(PUSH, data=notice)).content == failure
    expired = signed(notice, secret, when=int(time.time()) - 301)
    assert (await http.post(PUSH, data=expired)).content == failure
    wrong = signed(notice, "not-the-secret")
    assert (await http.post(PUSH, data=wrong)).content == failure
    good = signed(notice, secret)
    first = await http.post(PUSH, data=good)
    assert first.content == b'{"Result":true}'
    replay = await http.post(PUSH, data=good)
    assert replay.content == failure
    assert "replay" in replay.headers["x-error-reason"]
    read = signed({"appid": app["id"], "cid": "1001", "uid": "1034", "num": "1"}, secret)
    assert (await http.post(SETNUM, data=read)).content == b'{"Result":true}'
    assert (
        await http.post(SETNUM, data={"appid": app["id"], "cid": "1001", "uid": "1034"})
    ).content == (b'{"Result":false,"MsgNo":-51004}')
    key = await http.get(
        "/OpenPlatform/integrate/getappid.php", params=signed({"appkey": app["appKey"]}, secret)
    )
    assert key.content == b'{"Result":true,"MsgNo":{"app_id":"%s"}}' % app["id"].encode()


async def test_rotated_secret_signs_too(http, tokens):
    """During the grace period both the new and the old secret sign."""
    app = await new_app(http, tokens, legacySigned=True)
    body = await gql(http, tokens.admin(), ROTATE, {"id": app["id"]})
    new = body["data"]["rotateAppSecret"]["appSecret"]
    params = {"appkey": app["appKey"]}
    for secret in (new, app["appSecret"]):
        response = await http.get(
            "/OpenPlatform/integrate/getappid.php", params=signed(params, secret)
        )
        assert response.content.startswith(b'{"Result":true'), secret


async def test_open_apps_keep_the_seed_behaviour(http, tokens):
    """An app left open ignores timestamp and sign."""
    app = await new_app(http, tokens)
    notice = {"fromcid": "1001", "fromuid": "1", "appid": app["id"], "users": '["1001,1034"]'}
    assert (await http.post(PUSH, data=notice)).content == b'{"Result":true}'
    junk = {**notice, "timestamp": "1", "sign": "zz"}
    assert (await http.post(PUSH, data=junk)).content == b'{"Result":true}'


@pytest.mark.parametrize(
    ("allowlist", "allowed"),
    [("10.0.0.0/8", False), ("127.0.0.1", True), ("127.0.0.0/8, 10.1.1.1", True)],
)
async def test_ip_allowlist_applies_in_both_modes(http, tokens, allowlist, allowed):
    """Calls from outside the allowlist fail (open mode here); inside they work."""
    app = await new_app(http, tokens, ipAllowlist=allowlist)
    notice = {"fromcid": "1001", "fromuid": "1", "appid": app["id"], "users": '["1001,1034"]'}
    response = await http.post(PUSH, data=notice)
    assert (response.content == b'{"Result":true}') is allowed


@pytest.mark.parametrize(
    "allowlist", ["300.1.1.1", "example.com", "1.2.3.4/99", ",".join(["1.1.1.1"] * 101)]
)
async def test_bad_allowlists_are_refused(http, tokens, allowlist):
    """Entries that are no IP address or network are field errors."""
    body = await gql(
        http,
        tokens.admin(),
        CREATE_APP,
        {
            "input": {
                "name": "供应商应用",
                "identifier": "BadList",
                "pc": web(),
                "ipAllowlist": allowlist,
            }
        },
    )
    assert body["data"]["createApp"]["errors"][0]["field"] == "input.ipAllowlist"


async def test_badges_stop_at_the_32_bit_limit(http, tokens):
    """A count set at 2**31-1 stays there through more notices, and totals over several apps
    never break the workbench (they are capped at 2**31-1)."""
    first = await new_app(http, tokens, identifier="BigOne")
    second = await new_app(http, tokens, identifier="BigTwo")
    user = {"cid": "1001", "uid": "1034"}
    for app, count in ((first, 2**31 - 1), (second, 1_500_000_000)):
        token = await vendor_token(http, app)
        body = await gql(http, token, SET_BADGE, {"u": user, "n": count, "v": "1"})
        assert body["data"]["setAppBadge"]["errors"] == []
    await gql(http, await vendor_token(http, first), NOTICE, {"r": [user]})
    notice = {"fromcid": "1001", "fromuid": "1", "appid": first["id"], "users": '["1001,1034"]'}
    assert (await http.post(PUSH, data=notice)).content == b'{"Result":true}'
    body = await gql(http, tokens.user(), WORKBENCH)
    assert body["data"]["workbench"]["unreadTotal"] == 2**31 - 1
    assert await unread(http, tokens, first["id"]) == 2**31 - 1


async def test_a_disabled_apps_tickets_do_not_verify(http, tokens):
    """After disableApp, even a token issued before cannot verify the app's tickets."""
    app = await new_app(http, tokens)
    token = await vendor_token(http, app)
    launch = await gql(
        http,
        tokens.user(),
        "mutation($id: ID!) { openApp(appId: $id, platform: ANDROID) { url } }",
        {"id": app["id"]},
    )
    ticket = parse_qs(urlsplit(launch["data"]["openApp"]["url"]).query)["password"][0]
    await gql(
        http, tokens.admin(), "mutation($id: ID!) { disableApp(appId: $id) { app { id } } }", app
    )
    body = await gql(http, token, VERIFY, {"t": ticket})
    assert body["data"]["verifyTicket"]["errors"] == [{"code": "INVALID_TICKET"}]


async def test_too_many_recipients_is_a_payload_error(http, tokens):
    """10,001 distinct recipients are refused in the payload; nothing is counted."""
    app = await new_app(http, tokens)
    token = await vendor_token(http, app)
    users = [{"cid": "1001", "uid": str(uid)} for uid in range(10_001)]
    body = await gql(http, token, NOTICE, {"r": users})
    assert body["data"]["pushAppNotice"]["errors"] == [
        {"field": "recipients", "code": "TOO_MANY_RECIPIENTS"}
    ]


async def test_forwarded_for_is_not_trusted_by_default(http, tokens):
    """Without WORKBENCH_FORWARDED_ALLOW_IPS, X-Forwarded-For cannot pose as an allowed
    address."""
    app = await new_app(http, tokens, ipAllowlist="10.1.2.3")
    notice = {"fromcid": "1001", "fromuid": "1", "appid": app["id"], "users": '["1001,1034"]'}
    response = await http.post(PUSH, data=notice, headers={"X-Forwarded-For": "10.1.2.3"})
    assert response.content == b'{"Result":false,"MsgNo":-51007}'

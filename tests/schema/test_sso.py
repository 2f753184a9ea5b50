"""Launch with auto-login and one-time SSO tickets (SPEC §5, §8; issue 4 items 1-2)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import update

from resolvers.launch import append_query, fill_login_params, needs_ticket
from storage import tables
from storage.db import Database
from storage.models import utcnow
from tests.factories import create_app, gql, web

CHECK = "/OpenPlatform/integrate/checkticket.php"
OPEN = """
mutation($id: ID!, $p: Platform!) {
  openApp(appId: $id, platform: $p) { mode url embeddedBrowser downloadUrl }
}
"""
FAIL = b'{"Result":false,"MsgNo":-51010}'
TICKET = "T" * 43

# --- filling templates -------------------------------------------------------------------------

FILL_CASES = [
    # (template, account, expected query)
    ("&account=&password=", "zhang.san", f"account=zhang.san&password={TICKET}"),
    ("account=&password=", "zhang.san", f"account=zhang.san&password={TICKET}"),
    ("?u=&t=", "zhang.san", f"u=zhang.san&t={TICKET}"),
    ("&from=im&account=&password=", "li", f"from=im&account=li&password={TICKET}"),
    ("&account=&password=&lang=", "li", f"account=li&password={TICKET}&lang="),
    ("&account=", "li", "account=li"),
    ("&account=&password=", "张三", f"account=%E5%BC%A0%E4%B8%89&password={TICKET}"),
    ("&account=&password=", "a&b=c d", f"account=a%26b%3Dc%20d&password={TICKET}"),
    (
        "&user={account}&sso={ticket}&org={cid}&id={uid}",
        "张三",
        f"user=%E5%BC%A0%E4%B8%89&sso={TICKET}&org=1001&id=187",
    ),
    ("&t={ticket}&empty=", "li", f"t={TICKET}&empty="),
    ("&who=u{uid}x", "li", "who=u187x"),
]


@pytest.mark.parametrize(("template", "account", "expected"), FILL_CASES)
def test_fill_login_params(template, account, expected):
    """Positional and placeholder templates, URL-encoded values, non-ASCII accounts."""
    assert fill_login_params(template, account=account, cid=1001, uid=187, ticket=TICKET) == (
        expected
    )


APPEND_CASES = [
    ("https://a.example.com/", "x=1", "https://a.example.com/?x=1"),
    ("https://a.example.com/p?lang=zh", "x=1", "https://a.example.com/p?lang=zh&x=1"),
    ("https://a.example.com/p#/home", "x=1", "https://a.example.com/p?x=1#/home"),
    ("https://a.example.com/p?a=1#frag?x", "x=1", "https://a.example.com/p?a=1&x=1#frag?x"),
    ("https://a.example.com/p?", "x=1", "https://a.example.com/p?x=1"),
    ("https://a.example.com/p?a=1&", "x=1", "https://a.example.com/p?a=1&x=1"),
    ("com.example.oa", "x=1", "com.example.oa?x=1"),
    ("oa://open?from=im", "x=1", "oa://open?from=im&x=1"),
    ("https://a.example.com/", "", "https://a.example.com/"),
]


@pytest.mark.parametrize(("target", "query", "expected"), APPEND_CASES)
def test_append_query(target, query, expected):
    """A leading & becomes ? when the target has no query; fragments stay last."""
    assert append_query(target, query) == expected


# --- end to end ---------------------------------------------------------------------------------


async def auto_login_app(http, tokens, **extra: Any) -> dict[str, Any]:
    """A WEB app with auto-login on ANDROID (template of the seed) and plain PC settings."""
    return await create_app(
        http,
        tokens.admin(),
        identifier=extra.pop("identifier", "AutoLogin"),
        pc=web("https://sso.example.com/pc"),
        android={
            **web("https://sso.example.com/m?lang=zh"),
            "autoLogin": True,
            "loginParams": "&account=&password=",
        },
        ios=None,
        **extra,
    )


async def open_app(http, token: str, app_id: str, platform: str = "ANDROID") -> dict[str, Any]:
    """The openApp answer (asserts no errors)."""
    body = await gql(http, token, OPEN, {"id": app_id, "p": platform})
    assert "errors" not in body, body
    return body["data"]["openApp"]


def ticket_of(url: str) -> tuple[str, str]:
    """(account, ticket) from a launch URL filled by position."""
    query = parse_qs(urlsplit(url).query)
    return query["account"][0], query["password"][0]


async def test_open_check_once_then_fail(http, tokens):
    """Acceptance: openApp on ANDROID gives the account and a ticket; checkticket returns the
    user once, then fails; a second openApp gives a different ticket."""
    # given
    app = await auto_login_app(http, tokens)
    user = tokens.user(cid=1001, uid=187, account="zhang.san")
    # when
    launch = await open_app(http, user, app["id"])
    # then
    assert launch["url"].startswith("https://sso.example.com/m?lang=zh&account=zhang.san&")
    account, ticket = ticket_of(launch["url"])
    assert account == "zhang.san"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", ticket)
    first = await http.post(CHECK, data={"appid": app["id"], "ticket": ticket})
    assert (
        first.content == b'{"Result":true,"MsgNo":{"cid":"1001","uid":"187","account":"zhang.san"}}'
    )
    assert first.headers["content-type"] == "application/json"
    second = await http.post(CHECK, data={"appid": app["id"], "ticket": ticket})
    assert second.content == FAIL
    again = await open_app(http, user, app["id"])
    assert ticket_of(again["url"])[1] != ticket


async def test_pc_launch_has_no_ticket(http, tokens):
    """Auto-login is a mobile setting: the PC launch is the plain URL."""
    app = await auto_login_app(http, tokens)
    launch = await open_app(http, tokens.user(), app["id"], "PC")
    assert launch["url"] == "https://sso.example.com/pc"


async def test_native_launch_fills_the_run_path(http, tokens):
    """A NATIVE app's run path gets the parameters; the download URL is untouched."""
    app = await create_app(
        http,
        tokens.admin(),
        identifier="NativeSso",
        pc=None,
        ios=None,
        android={
            "launchMode": "NATIVE",
            "runPath": "oa://open",
            "downloadUrl": "https://oa.example.com/oa.apk",
            "autoLogin": True,
            "loginParams": "&u={account}&t={ticket}",
        },
    )
    launch = await open_app(http, tokens.user(account="李四"), app["id"])
    assert launch["mode"] == "NATIVE"
    assert launch["url"].startswith("oa://open?u=%E6%9D%8E%E5%9B%9B&t=")
    assert launch["downloadUrl"] == "https://oa.example.com/oa.apk"


@pytest.mark.parametrize(
    "ticket",
    ["", "short", "T" * 44, "T" * 42 + "!", "../" * 15, "T" * 43 + "\x00", "x" * 129],
)
async def test_garbled_tickets_fail_the_same_way(http, tokens, ticket):
    """Empty, short, long or odd tickets all get the failure body."""
    app = await auto_login_app(http, tokens)
    response = await http.post(CHECK, data={"appid": app["id"], "ticket": ticket})
    assert response.content == FAIL


async def test_wrong_app_fails_and_leaves_the_ticket(http, tokens):
    """Another app's check fails and does not use the ticket up; its own app's check works."""
    app = await auto_login_app(http, tokens)
    other = await auto_login_app(http, tokens, identifier="OtherSso")
    _, ticket = ticket_of((await open_app(http, tokens.user(), app["id"]))["url"])
    wrong = await http.post(CHECK, data={"appid": other["id"], "ticket": ticket})
    right = await http.post(CHECK, data={"appid": app["id"], "ticket": ticket})
    assert wrong.content == FAIL
    assert right.content.startswith(b'{"Result":true')


async def test_expired_ticket_fails(http, tokens, settings):
    """A ticket past its expiry fails like any other bad ticket."""
    app = await auto_login_app(http, tokens)
    _, ticket = ticket_of((await open_app(http, tokens.user(), app["id"]))["url"])
    db = Database(settings.database_url)
    try:
        async with db.write() as session:
            await session.execute(
                update(tables.sso_ticket).values(expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        await db.dispose()
    response = await http.post(CHECK, data={"appid": app["id"], "ticket": ticket})
    assert response.content == FAIL


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"appid": "1"},
        {"ticket": TICKET},
        {"appid": "x", "ticket": TICKET},
        {"appid": "999", "ticket": TICKET},
    ],
)
async def test_checkticket_bad_parameters(http, data):
    """Missing or bad parameters and unknown apps get the failure body with a reason."""
    response = await http.post(CHECK, data=data)
    assert response.status_code == 200
    assert response.content == FAIL
    assert response.headers["x-error-reason"]


@pytest.mark.parametrize(
    ("template", "needed"),
    [
        ("&account=&password=", True),
        ("&account=", False),
        ("&u={account}&t={ticket}", True),
        ("&u={account}&org={cid}", False),
        ("&from=im&account=&password=", True),
    ],
)
def test_tickets_are_issued_only_when_the_template_uses_one(template, needed):
    """No ticket is created for a template that has no place for it."""
    assert needs_ticket(template) is needed


@pytest.mark.parametrize("template", ["&a={account", "&a={TICKET}&b=", "&a={password}", "&a=}"])
async def test_unknown_or_broken_placeholders_are_refused(http, tokens, template):
    """A brace that is not one of the four placeholders is a field error."""
    body = await gql(
        http,
        tokens.admin(),
        "mutation($i: AppInput!) { createApp(input: $i) { errors { field code } } }",
        {
            "i": {
                "name": "单点登录",
                "identifier": "BadTemplate",
                "android": {**web(), "autoLogin": True, "loginParams": template},
            }
        },
    )
    assert body["data"]["createApp"]["errors"] == [
        {"field": "input.android.loginParams", "code": "INVALID_LOGIN_PARAMS"}
    ]


async def test_failures_are_logged_with_their_reason(http, tokens, caplog):
    """Every refusal looks the same to the vendor, but the log says why, without the ticket."""
    app = await auto_login_app(http, tokens)
    _, ticket = ticket_of((await open_app(http, tokens.user(), app["id"]))["url"])
    with caplog.at_level("INFO", logger="workbench.sso"):
        await http.post(CHECK, data={"appid": app["id"], "ticket": "garbled"})
        await http.post(CHECK, data={"appid": app["id"], "ticket": ticket})
        await http.post(CHECK, data={"appid": app["id"], "ticket": ticket})
    messages = [r.getMessage() for r in caplog.records if r.name == "workbench.sso"]
    assert messages == [
        f"ticket refused for app {app['id']}: garbled",
        f"ticket verified for app {app['id']}: user 1001,1034",
        f"ticket refused for app {app['id']}: unknown, used, or another app's",
    ]
    assert not any(ticket in message for message in messages)

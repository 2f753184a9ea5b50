"""The seed's three vendor endpoints (SPEC §6): getappid, pushappnotice and setnum, byte for byte.

Every request goes to a real uvicorn server. Bodies are compared as exact bytes; a failure must
also carry ``X-Error-Reason`` and change nothing (the badge tables are compared before and after,
and the user's workbench is read back through GraphQL).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from imworkbench.settings import Settings
from storage.db import Database
from tests.factories import (
    GETAPPID,
    PUSH,
    SETNUM,
    Tokens,
    create_app,
    gql,
    holding_write_lock,
    push,
    running,
)

OPEN_WORKBENCH = """
mutation OpenWorkbench {
  openWorkbench { unseenCount }
}
"""

WORKBENCH = """
query Workbench {
  workbench(platform: PC) {
    unseenCount
    unreadTotal
    apps { app { id } unread }
  }
}
"""

JSON = "application/json"
SUCCESS = b'{"Result":true}'
GETAPPID_FAILURE = b'{"Result":false,"MsgNo":-51001}'
PUSH_FAILURE = b'{"Result":false,"MsgNo":-51007}'
SETNUM_FAILURE = b'{"Result":false,"MsgNo":-51004}'
MAX_BODY = 656_384  # Settings.legacy_max_body_bytes default
SEED_USERS = ["1001,1034", "1001,1078"]
BROWSER_ORIGIN = "https://vendor.example.com"
APP = "{app}"  # placeholder in parametrised requests, replaced by the test app's id

Request = dict[str, Any]


def app_id_body(app_id: str) -> bytes:
    """getappid's exact success body for ``app_id``."""
    return b'{"Result":true,"MsgNo":{"app_id":"%s"}}' % app_id.encode()


def assert_success(response: httpx.Response, body: bytes = SUCCESS) -> None:
    """HTTP 200, ``application/json``, exactly ``body``, and no failure reason."""
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    assert "x-error-reason" not in response.headers
    assert response.content == body


def assert_encoding(response: httpx.Response, request: Request) -> None:
    """The request went out as the test meant: multipart when it had ``files``."""
    sent = response.request.headers.get("content-type", "")
    assert sent.startswith("multipart/form-data; boundary=") == ("files" in request), sent


def assert_failure(response: httpx.Response, body: bytes, reason: str | None = None) -> None:
    """HTTP 200, ``application/json``, exactly ``body``, and an ``X-Error-Reason`` header
    (containing ``reason`` when given)."""
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    assert response.content == body
    assert response.headers.get("x-error-reason"), "a failure must say why"
    assert response.headers["x-error-reason"] != "internal error"
    if reason is not None:
        assert reason in response.headers["x-error-reason"]


def fill(form: dict[str, Any], app_id: str) -> dict[str, Any]:
    """``form`` with the ``APP`` placeholder replaced by ``app_id`` (in values and lists)."""

    def one(value: Any) -> Any:
        if isinstance(value, list):
            return [one(v) for v in value]
        return value.replace(APP, app_id) if isinstance(value, str) else value

    return {name: one(value) for name, value in form.items()}


def push_form(app_id: str, users: str = " " + json.dumps(SEED_USERS)) -> dict[str, str]:
    """A well-formed pushappnotice form (plain names), ``users`` as given."""
    return {"fromcid": "1001", "fromuid": "187", "appid": app_id, "users": users}


def jquery_push_form(app_id: str, users: list[str], name: str = "users[]") -> dict[str, Any]:
    """A pushappnotice form with ``users`` as jQuery encodes an array (``users[]=`` repeated)."""
    form: dict[str, Any] = push_form(app_id)
    del form["users"]
    form[name] = users
    return form


def padded_body(fields: str, size: int) -> bytes:
    """A urlencoded body of exactly ``size`` bytes: ``fields`` plus a ``pad`` parameter."""
    head = f"{fields}&pad=".encode()
    return head + b"x" * (size - len(head))


async def chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """``body`` as a stream (httpx sends it chunked, without Content-Length)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def badge(
    http: httpx.AsyncClient, tokens: Tokens, app_id: str, cid: int = 1001, uid: int = 1034
) -> dict[str, int]:
    """User ``(cid, uid)``'s PC workbench as GraphQL shows it: the app's unread, the workbench
    badge and the total."""
    body = await gql(http, tokens.user(cid=cid, uid=uid), WORKBENCH)
    assert "errors" not in body, body
    workbench = body["data"]["workbench"]
    unread = {entry["app"]["id"]: entry["unread"] for entry in workbench["apps"]}
    return {
        "unread": unread.get(app_id, 0),
        "unseenCount": workbench["unseenCount"],
        "unreadTotal": workbench["unreadTotal"],
    }


def counts(unread: int, unseen: int | None = None, total: int | None = None) -> dict[str, int]:
    """The expected ``badge()`` value (one app: the total defaults to ``unread``)."""
    return {
        "unread": unread,
        "unseenCount": unread if unseen is None else unseen,
        "unreadTotal": unread if total is None else total,
    }


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """Direct access to the test database (for what has no API yet, and for whole-or-nothing
    checks)."""
    database = Database(settings.database_url)
    try:
        yield database
    finally:
        await database.dispose()


async def badge_rows(db: Database) -> dict[str, list[tuple[int, ...]]]:
    """Every row of the badge tables, versions included, in a stable order."""
    async with db.read() as session:
        badges = await session.execute(
            text("SELECT cid, uid, app_id, unread FROM app_badge ORDER BY cid, uid, app_id")
        )
        states = await session.execute(
            text("SELECT cid, uid, unseen_count, version FROM user_badge_state ORDER BY cid, uid")
        )
        return {
            "app_badge": [tuple(row) for row in badges.all()],
            "user_badge_state": [tuple(row) for row in states.all()],
        }


async def disable(db: Database, app_id: str) -> None:
    """Disable an app directly in the database (there is no mutation for it yet)."""
    async with db.write() as session:
        await session.execute(
            text("UPDATE app SET enabled = :enabled WHERE id = :id"),
            {"enabled": False, "id": int(app_id)},
        )


@pytest.fixture
async def app(http: httpx.AsyncClient, tokens: Tokens) -> dict[str, Any]:
    """An enabled app on every platform, audience ALL."""
    return await create_app(http, tokens.admin(), identifier="LegacyApp")


@pytest.fixture
async def noticed(http: httpx.AsyncClient, app: dict[str, Any]) -> dict[str, Any]:
    """``app`` after one notice for 1001/1034 and 1001/1078 (each unread 1)."""
    assert_success(await push(http, app["id"], SEED_USERS))
    return app


async def notify(http: httpx.AsyncClient, app_id: str, times: int, user: str = "1001,1034") -> None:
    """Send ``times`` notices of ``app_id`` to ``user``."""
    for _ in range(times):
        assert_success(await push(http, app_id, [user]))


# --- getappid -------------------------------------------------------------------------------

GETAPPID_REQUESTS = [
    pytest.param(lambda key: {"method": "GET", "params": {"appkey": key}}, id="get-query"),
    pytest.param(lambda key: {"method": "POST", "data": {"appkey": key}}, id="post-urlencoded"),
    pytest.param(
        lambda key: {
            "method": "POST",
            "content": f"appkey={key}".encode(),
            "headers": {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
        },
        id="post-urlencoded-jquery-charset",
    ),
    pytest.param(
        lambda key: {"method": "POST", "content": f"appkey={key}".encode()},
        id="post-without-content-type",
    ),
    pytest.param(
        lambda key: {"method": "POST", "files": {"appkey": (None, key)}}, id="post-multipart"
    ),
    pytest.param(
        lambda key: {"method": "POST", "data": {"appkey": key}, "files": {"other": (None, "x")}},
        id="post-multipart-data-and-files",
    ),
    pytest.param(lambda key: {"method": "POST", "data": {" appkey ": key}}, id="post-name-spaces"),
    pytest.param(
        lambda key: {"method": "POST", "files": {"appkey ": (None, key)}},
        id="multipart-name-spaces",
    ),
]


@pytest.mark.parametrize("build", GETAPPID_REQUESTS)
async def test_getappid_returns_app_id_as_string(
    http: httpx.AsyncClient, app: dict[str, Any], build: Callable[[str], Request]
) -> None:
    """getappid answers the app id, as a string, however the appkey is sent."""
    # given
    request = build(app["appKey"])
    # when
    response = await http.request(url=GETAPPID, **request)
    # then
    assert_encoding(response, request)
    assert_success(response, app_id_body(app["id"]))


@pytest.mark.parametrize(
    "path",
    [
        "/%20OpenPlatform/integrate/getappid.php%20",
        "/OpenPlatform/integrate/getappid.php%20",
        "/%20OpenPlatform%20/%20integrate%20/%20getappid.php%20",
    ],
)
async def test_getappid_path_with_stray_spaces(
    http: httpx.AsyncClient, app: dict[str, Any], path: str
) -> None:
    """getappid is served with spaces around the path segments, as the seed's samples write."""
    # given
    form = {"appkey": app["appKey"]}
    # when
    response = await http.post(path, data=form)
    # then
    assert_success(response, app_id_body(app["id"]))


async def test_getappid_body_wins_over_query(http: httpx.AsyncClient, app: dict[str, Any]) -> None:
    """A parameter in both query string and body is taken from the body (PHP's $_REQUEST)."""
    # given
    query = {"appkey": "not-the-key"}
    # when
    response = await http.post(GETAPPID, params=query, data={"appkey": app["appKey"]})
    # then
    assert_success(response, app_id_body(app["id"]))


async def test_getappid_wrong_body_key_is_not_rescued_by_query(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """A right key in the query string does not rescue a wrong key in the body."""
    # given
    query = {"appkey": app["appKey"]}
    # when
    response = await http.post(GETAPPID, params=query, data={"appkey": "not-the-key"})
    # then
    assert_failure(response, GETAPPID_FAILURE, "no enabled app")


GETAPPID_FAILURES = [
    pytest.param(lambda key: {"method": "GET"}, "missing parameter appkey", id="missing"),
    pytest.param(
        lambda key: {"method": "POST", "data": {"appkey": ""}},
        "missing parameter appkey",
        id="empty",
    ),
    pytest.param(
        lambda key: {"method": "GET", "params": {"appkey": "   "}},
        "missing parameter appkey",
        id="spaces-only",
    ),
    pytest.param(
        lambda key: {"method": "POST", "data": {"appkey": "0" * 32}},
        "no enabled app",
        id="unknown",
    ),
    pytest.param(
        lambda key: {"method": "POST", "data": {"appkey": key.upper()}},
        "no enabled app",
        id="other-case",
    ),
    pytest.param(
        lambda key: {"method": "POST", "data": {"appkey": key + "x" * 200}},
        "too long",
        id="overlong",
    ),
    pytest.param(
        lambda key: {"method": "POST", "data": {"appkey[]": key}},
        "missing parameter appkey",
        id="array",
    ),
    pytest.param(
        lambda key: {"method": "GET", "url": GETAPPID + "?appkey=%FF"},
        "appkey is not valid UTF-8",
        id="query-not-utf8",
    ),
]


@pytest.mark.parametrize(("build", "reason"), GETAPPID_FAILURES)
async def test_getappid_refuses(
    http: httpx.AsyncClient, app: dict[str, Any], build: Callable[[str], Request], reason: str
) -> None:
    """A missing, empty, unknown, overlong or malformed appkey gets -51001 and a reason."""
    # given
    request = {"url": GETAPPID, **build(app["appKey"])}
    # when
    response = await http.request(**request)
    # then
    assert_failure(response, GETAPPID_FAILURE, reason)


async def test_getappid_refuses_disabled_app(
    http: httpx.AsyncClient, app: dict[str, Any], db: Database
) -> None:
    """The key of a disabled app resolves to nothing."""
    # given
    await disable(db, app["id"])
    # when
    response = await http.post(GETAPPID, data={"appkey": app["appKey"]})
    # then
    assert_failure(response, GETAPPID_FAILURE, "no enabled app")


@pytest.mark.parametrize(
    ("content", "content_type", "reason"),
    [
        pytest.param(b'{"appkey":"KEY"}', JSON, "unsupported content type", id="json"),
        pytest.param(
            b"appkey=KEY\xff&x=1",
            "application/x-www-form-urlencoded",
            "appkey is not valid UTF-8",
            id="urlencoded-not-utf8",
        ),
        pytest.param(
            b"appkey=KEY%FF&x=1",
            "application/x-www-form-urlencoded",
            "appkey is not valid UTF-8",
            id="urlencoded-escaped-not-utf8",
        ),
        pytest.param(
            b'--B\r\nContent-Disposition: form-data; name="appkey"\r\n\r\nKEY\xff\xfe\r\n'
            b'--B\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--B--\r\n',
            "multipart/form-data; boundary=B",
            "appkey is not valid UTF-8",
            id="multipart-not-utf8",
        ),
        pytest.param(
            b'--B\r\nContent-Disposition: form-data; name="appkey"; filename="k.txt"\r\n\r\n'
            b"KEY\r\n--B--\r\n",
            "multipart/form-data; boundary=B",
            "bad multipart body",
            id="multipart-file-part",
        ),
        pytest.param(
            b"garbage",
            "multipart/form-data; boundary=B",
            "bad multipart body",
            id="multipart-garbage",
        ),
        pytest.param(b"", "multipart/form-data", "bad multipart body", id="multipart-no-boundary"),
    ],
)
async def test_getappid_refuses_bad_body(
    http: httpx.AsyncClient, app: dict[str, Any], content: bytes, content_type: str, reason: str
) -> None:
    """An unsupported, file-carrying or broken body, or a key that is not UTF-8, is refused."""
    # given
    body = content.replace(b"KEY", app["appKey"].encode())
    # when
    response = await http.post(GETAPPID, content=body, headers={"content-type": content_type})
    # then
    assert_failure(response, GETAPPID_FAILURE, reason)


async def test_getappid_accepts_body_of_exactly_the_cap(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """A body of exactly the cap (641 KiB) is read and answered."""
    # given
    body = padded_body(f"appkey={app['appKey']}", MAX_BODY)
    # when
    response = await http.post(
        GETAPPID, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    # then
    assert_success(response, app_id_body(app["id"]))


async def test_getappid_refuses_body_one_byte_over_the_cap(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """A Content-Length of the cap + 1 is refused before the body is parsed."""
    # given
    body = padded_body(f"appkey={app['appKey']}", MAX_BODY + 1)
    # when
    response = await http.post(
        GETAPPID, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    # then
    assert_failure(response, GETAPPID_FAILURE, "body larger than")


async def test_getappid_accepts_chunked_body_within_the_cap(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """A streamed body without Content-Length within the cap is read whole."""
    # given
    body = padded_body(f"appkey={app['appKey']}", MAX_BODY)
    # when
    response = await http.post(
        GETAPPID,
        content=chunks(body),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    # then
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_success(response, app_id_body(app["id"]))


async def test_getappid_refuses_chunked_body_over_the_cap(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """A streamed body without Content-Length is cut off once it passes the cap."""
    # given
    body = padded_body(f"appkey={app['appKey']}", MAX_BODY + 1)
    # when
    response = await http.post(
        GETAPPID,
        content=chunks(body),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    # then
    assert "content-length" not in response.request.headers
    assert_failure(response, GETAPPID_FAILURE, "body larger than")


# --- pushappnotice: success -----------------------------------------------------------------


async def test_push_seed_sample_counts_one_notice_per_user(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any]
) -> None:
    """The seed's own sample (spaced names, path and users) counts one notice per user."""
    # given
    form = {
        "fromcid ": "1001",
        "fromuid ": "187",
        "appid ": app["id"],
        "users ": ' ["1001,1034","1001,1078"]',
    }
    # when
    response = await http.post("/%20OpenPlatform/integrate/pushappnotice.php%20", data=form)
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"], 1001, 1034) == counts(1)
    assert await badge(http, tokens, app["id"], 1001, 1078) == counts(1)
    assert await badge(http, tokens, app["id"], 1001, 1099) == counts(0)


PUSH_REQUESTS = [
    pytest.param(lambda app_id: {"method": "POST", "data": push_form(app_id)}, id="urlencoded"),
    pytest.param(
        lambda app_id: {
            "method": "POST",
            "data": jquery_push_form(app_id, SEED_USERS),
        },
        id="jquery-array",
    ),
    pytest.param(
        lambda app_id: {
            "method": "POST",
            "content": (
                "fromcid=1001&fromuid=187&appid="
                + app_id
                + "&users%5B%5D=1001%2C1034&users%5B%5D=1001%2C1078"
            ).encode(),
            "headers": {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
        },
        id="jquery-ajax-bytes",
    ),
    pytest.param(
        lambda app_id: {
            "method": "POST",
            "data": {
                **jquery_push_form(app_id, ["1001,1034"], "users[0]"),
                "users[1]": "1001,1078",
            },
        },
        id="indexed-array",
    ),
    pytest.param(lambda app_id: {"method": "GET", "params": push_form(app_id)}, id="get"),
    pytest.param(
        lambda app_id: {
            "method": "GET",
            "params": jquery_push_form(app_id, SEED_USERS),
        },
        id="get-jquery-array",
    ),
    pytest.param(
        lambda app_id: {
            "method": "POST",
            "files": {name + " ": (None, value) for name, value in push_form(app_id).items()},
        },
        id="multipart",
    ),
    pytest.param(
        lambda app_id: {
            "method": "POST",
            "params": {"fromcid": "1001", "fromuid": "187"},
            "data": {"appid": app_id, "users": json.dumps(SEED_USERS)},
        },
        id="query-and-body",
    ),
]


@pytest.mark.parametrize("build", PUSH_REQUESTS)
async def test_push_counts_however_sent(
    http: httpx.AsyncClient,
    tokens: Tokens,
    app: dict[str, Any],
    build: Callable[[str], Request],
) -> None:
    """pushappnotice counts one notice per user in every accepted request form."""
    # given
    request = build(app["id"])
    # when
    response = await http.request(url=PUSH, **request)
    # then
    assert_encoding(response, request)
    assert_success(response)
    assert await badge(http, tokens, app["id"], 1001, 1034) == counts(1)
    assert await badge(http, tokens, app["id"], 1001, 1078) == counts(1)


async def test_push_duplicates_count_once(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any]
) -> None:
    """A user listed several times in one notice is counted once."""
    # given
    users = ["1001,1034", "1001,1078", "1001,1034", "1001,1034"]
    # when
    response = await push(http, app["id"], users)
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"], 1001, 1034) == counts(1)
    assert await badge(http, tokens, app["id"], 1001, 1078) == counts(1)


async def test_push_notices_accumulate(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any]
) -> None:
    """Each notice adds one to the app's unread and to the workbench badge."""
    # given
    await notify(http, app["id"], 2)
    # when
    response = await push(http, app["id"], ["1001,1034"])
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"]) == counts(3)


@pytest.mark.parametrize(
    "audience",
    [
        pytest.param({"mode": "SELECTED", "enterpriseIds": ["1001"]}, id="selected"),
        pytest.param({"mode": "ALL", "enterpriseIds": ["1002"]}, id="all-but-hidden"),
    ],
)
async def test_push_skips_recipients_outside_audience(
    http: httpx.AsyncClient, tokens: Tokens, db: Database, audience: dict[str, Any]
) -> None:
    """Recipients whose enterprise the app's audience excludes are skipped; the rest count."""
    # given
    app = await create_app(http, tokens.admin(), identifier="Audience1", audience=audience)
    # when
    response = await push(http, app["id"], ["1001,1034", "1002,5"])
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"], 1001, 1034) == counts(1)
    rows = await badge_rows(db)
    assert rows["app_badge"] == [(1001, 1034, int(app["id"]), 1)]
    assert [state[:2] for state in rows["user_badge_state"]] == [(1001, 1034)]


async def test_push_body_array_replaces_query_array(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any]
) -> None:
    """users[] in the body replaces users[] of the query string, as PHP's $_REQUEST does."""
    # given
    query = {"users[]": ["1001,1078"]}
    # when
    response = await http.post(PUSH, params=query, data=jquery_push_form(app["id"], ["1001,1034"]))
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"], 1001, 1034) == counts(1)
    assert await badge(http, tokens, app["id"], 1001, 1078) == counts(0)


async def test_push_body_json_replaces_bad_query_array(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any]
) -> None:
    """A JSON users in the body wins over a malformed users[] in the query string."""
    # given
    query = {"users[]": ["not-a-user"]}
    # when
    response = await http.post(PUSH, params=query, data=push_form(app["id"]))
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"], 1001, 1034) == counts(1)


async def test_push_accepts_ten_thousand_distinct_recipients(
    http: httpx.AsyncClient, app: dict[str, Any], db: Database
) -> None:
    """10,000 distinct recipients (plus a duplicate) are accepted and each counted once."""
    # given
    users = [f"1001,{uid}" for uid in range(1, 10_001)] + ["1001,1"]
    # when
    response = await push(http, app["id"], users)
    # then
    assert_success(response)
    async with db.read() as session:
        row = (
            await session.execute(
                text("SELECT count(*), min(unread), max(unread) FROM app_badge WHERE app_id = :a"),
                {"a": int(app["id"])},
            )
        ).one()
    assert tuple(row) == (10_000, 1, 1)


# --- pushappnotice: refusals, whole or nothing ----------------------------------------------

GOOD_USERS = json.dumps(SEED_USERS)
PUSH_FAILURES = [
    pytest.param({"fromuid": "187", "appid": APP, "users": GOOD_USERS}, "fromcid", id="no-fromcid"),
    pytest.param(
        {"fromcid": "1001", "appid": APP, "users": GOOD_USERS}, "fromuid", id="no-fromuid"
    ),
    pytest.param(
        {"fromcid": "1001", "fromuid": "187", "users": GOOD_USERS}, "appid", id="no-appid"
    ),
    pytest.param({"fromcid": "1001", "fromuid": "187", "appid": APP}, "users", id="no-users"),
    pytest.param(
        {"fromcid": " ", "fromuid": "187", "appid": APP, "users": GOOD_USERS},
        "fromcid",
        id="blank-fromcid",
    ),
    pytest.param(
        {"fromcid": "10x1", "fromuid": "187", "appid": APP, "users": GOOD_USERS},
        "fromcid",
        id="non-numeric-fromcid",
    ),
    pytest.param(
        {"fromcid": "1001", "fromuid": "abc", "appid": APP, "users": GOOD_USERS},
        "fromuid",
        id="non-numeric-fromuid",
    ),
    pytest.param(
        {"fromcid": "1001", "fromuid": "187", "appid": APP + "a", "users": GOOD_USERS},
        "appid",
        id="non-numeric-appid",
    ),
    pytest.param(
        {"fromcid": "-1001", "fromuid": "187", "appid": APP, "users": GOOD_USERS},
        "fromcid",
        id="negative-fromcid",
    ),
    pytest.param(
        {"fromcid": "1001", "fromuid": "187", "appid": "-" + APP, "users": GOOD_USERS},
        "appid",
        id="negative-appid",
    ),
    pytest.param(
        {"fromcid": "1001", "fromuid": "1" * 20, "appid": APP, "users": GOOD_USERS},
        "fromuid",
        id="20-digit-fromuid",
    ),
    pytest.param(
        {"fromcid": "9" * 19, "fromuid": "187", "appid": APP, "users": GOOD_USERS},
        "fromcid",
        id="19-digit-above-int64",
    ),
    pytest.param(push_form(APP, users="1001,1034"), "JSON array", id="users-not-json"),
    pytest.param(push_form(APP, users='{"1001":"1034"}'), "JSON array", id="users-object"),
    pytest.param(push_form(APP, users='"1001,1034"'), "JSON array", id="users-string"),
    pytest.param(push_form(APP, users="[" * 100_000), "JSON array", id="users-deeply-nested"),
    pytest.param(push_form(APP, users=" "), "users", id="users-blank"),
    pytest.param(push_form(APP, users="[]"), "users is empty", id="users-empty-array"),
    pytest.param(push_form(APP, users='["10011034"]'), "users[0]", id="element-without-comma"),
    pytest.param(push_form(APP, users='["1001,1034,1"]'), "users[0]", id="element-three-parts"),
    pytest.param(push_form(APP, users="[1001]"), "users[0]", id="element-number"),
    pytest.param(push_form(APP, users='[",1034"]'), "users[0]", id="element-empty-cid"),
    pytest.param(push_form(APP, users='["1001,-5"]'), "users[0]", id="element-negative"),
    pytest.param(
        push_form(APP, users=json.dumps(["1001," + "1" * 20])), "users[0]", id="element-20-digits"
    ),
    pytest.param(
        push_form(APP, users='["1001,1034","x,1","1001,1078"]'),
        "users[1]",
        id="one-bad-among-good",
    ),
    pytest.param(
        jquery_push_form(APP, ["1001,1034", "1001;1078"]),
        "users[1]",
        id="jquery-one-bad-among-good",
    ),
    pytest.param(jquery_push_form(APP, [""]), "users[0]", id="jquery-empty-element"),
    pytest.param(
        {"fromcid": "1001", "fromuid": "187", "appid": "999", "users": GOOD_USERS},
        "app 999 not found",
        id="unknown-app",
    ),
    pytest.param(
        {"fromcid": "1001", "fromuid": "187", "appid": "9999999999", "users": GOOD_USERS},
        "app 9999999999 not found",
        id="unknown-app-beyond-int32",
    ),
]


@pytest.mark.parametrize(("form", "reason"), PUSH_FAILURES)
async def test_push_refuses_bad_input_and_changes_nothing(
    http: httpx.AsyncClient,
    tokens: Tokens,
    noticed: dict[str, Any],
    db: Database,
    form: dict[str, Any],
    reason: str,
) -> None:
    """Every malformed notice gets exactly -51007 with a reason, and counts no one."""
    # given
    before = await badge_rows(db)
    request = fill(form, noticed["id"])
    # when
    response = await http.post(PUSH, data=request)
    # then
    assert_failure(response, PUSH_FAILURE, reason)
    assert await badge_rows(db) == before
    assert await badge(http, tokens, noticed["id"], 1001, 1034) == counts(1)


async def test_push_refuses_disabled_app(
    http: httpx.AsyncClient, noticed: dict[str, Any], db: Database
) -> None:
    """A notice for a disabled app is refused and counts no one."""
    # given
    await disable(db, noticed["id"])
    before = await badge_rows(db)
    # when
    response = await push(http, noticed["id"], SEED_USERS)
    # then
    assert_failure(response, PUSH_FAILURE, "not found")
    assert await badge_rows(db) == before


async def test_push_refuses_more_than_ten_thousand_recipients(
    http: httpx.AsyncClient, tokens: Tokens, noticed: dict[str, Any], db: Database
) -> None:
    """10,001 distinct recipients are refused whole: not even the first 10,000 count."""
    # given
    users = [f"1001,{uid}" for uid in range(1, 10_002)]
    before = await badge_rows(db)
    # when
    response = await push(http, noticed["id"], users)
    # then
    assert_failure(response, PUSH_FAILURE, "10001 recipients")
    assert await badge_rows(db) == before
    assert await badge(http, tokens, noticed["id"]) == counts(1)


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_push_refuses_oversized_body(
    http: httpx.AsyncClient,
    tokens: Tokens,
    noticed: dict[str, Any],
    db: Database,
    streamed: bool,
) -> None:
    """A body over the cap is refused, declared or streamed, even when its fields are valid."""
    # given
    fields = f"fromcid=1001&fromuid=187&appid={noticed['id']}&users={GOOD_USERS}"
    body = padded_body(fields, MAX_BODY + 1)
    before = await badge_rows(db)
    # when
    response = await http.post(
        PUSH,
        content=chunks(body) if streamed else body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    # then
    assert_failure(response, PUSH_FAILURE, "body larger than")
    assert await badge_rows(db) == before
    assert await badge(http, tokens, noticed["id"]) == counts(1)


@pytest.mark.parametrize(
    ("content", "content_type", "reason"),
    [
        pytest.param(
            json.dumps(
                {"fromcid": "1001", "fromuid": "187", "appid": APP, "users": SEED_USERS}
            ).encode(),
            JSON,
            "unsupported content type",
            id="json",
        ),
        pytest.param(
            b"fromcid=1001&fromuid=187&appid=" + APP.encode() + b"&users=%5B%221001%2C1034%22%5D"
            b"\xe4\xbd&memo=1",
            "application/x-www-form-urlencoded",
            "users is not valid UTF-8",
            id="urlencoded-not-utf8",
        ),
        pytest.param(
            b"".join(
                b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % pair
                for pair in (
                    (b"fromcid", b"1001"),
                    (b"fromuid", b"187"),
                    (b"appid", APP.encode()),
                    (b"users", b'["1001,1034"]\xc3\x28'),
                    (b"memo", b"1"),
                )
            )
            + b"--B--\r\n",
            "multipart/form-data; boundary=B",
            "users is not valid UTF-8",
            id="multipart-not-utf8",
        ),
    ],
)
async def test_push_refuses_unreadable_body(
    http: httpx.AsyncClient,
    tokens: Tokens,
    noticed: dict[str, Any],
    db: Database,
    content: bytes,
    content_type: str,
    reason: str,
) -> None:
    """A JSON body, or a form whose ``users`` is not UTF-8, is refused and counts no one."""
    # given
    body = content.replace(APP.encode(), noticed["id"].encode())
    before = await badge_rows(db)
    # when
    response = await http.post(PUSH, content=body, headers={"content-type": content_type})
    # then
    assert_failure(response, PUSH_FAILURE, reason)
    assert await badge_rows(db) == before
    assert await badge(http, tokens, noticed["id"]) == counts(1)


# --- setnum ---------------------------------------------------------------------------------


def setnum_form(
    app_id: str, num: str | None = None, cid: str = "1001", uid: str = "1034"
) -> Request:
    """A setnum form for ``(cid, uid)``; ``num`` left out when ``None``."""
    form = {"appid": app_id, "cid": cid, "uid": uid}
    if num is not None:
        form["num"] = num
    return form


async def test_setnum_decrements_by_num(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any]
) -> None:
    """setnum lowers the app's unread by num, and the workbench badge to at most the total."""
    # given
    await notify(http, app["id"], 3)
    # when
    response = await http.post(SETNUM, data=setnum_form(app["id"], "2"))
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"]) == counts(1)


async def test_setnum_never_raises_the_workbench_badge(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any]
) -> None:
    """After a read the workbench badge is min(unseen, total unread), never raised to the total."""
    # given
    await notify(http, app["id"], 3)
    opened = await gql(http, tokens.user(), OPEN_WORKBENCH)
    assert opened == {"data": {"openWorkbench": {"unseenCount": 0}}}
    await notify(http, app["id"], 1)
    # when
    response = await http.post(SETNUM, data=setnum_form(app["id"], "2"))
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"]) == counts(2, unseen=1)


@pytest.mark.parametrize("num", [None, "", "   "], ids=["absent", "empty", "blank"])
async def test_setnum_defaults_to_one(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any], num: str | None
) -> None:
    """num absent or empty means 1."""
    # given
    await notify(http, app["id"], 3)
    # when
    response = await http.post(SETNUM, data=setnum_form(app["id"], num))
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"]) == counts(2)


@pytest.mark.parametrize(
    "num",
    ["3", "4", "2147483648", "9" * 19, "9" * 30],
)
async def test_setnum_num_at_or_above_count_clears(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any], num: str
) -> None:
    """num equal to or larger than the count (however large) clears it, never below zero."""
    # given
    await notify(http, app["id"], 3)
    # when
    response = await http.post(SETNUM, data=setnum_form(app["id"], num))
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"]) == counts(0)


@pytest.mark.parametrize(
    ("num", "left"),
    [("0000000000000000001", 2), ("0" * 5000 + "2", 1), ("0" * 30, 3)],
    ids=["19-char one", "5000 zeros then 2", "30 zeros"],
)
async def test_setnum_reads_zero_padded_numbers_by_value(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any], num: str, left: int
) -> None:
    """Leading zeros do not make a number large: 000...01 reads one message."""
    # given
    await notify(http, app["id"], 3)
    # when
    response = await http.post(SETNUM, data=setnum_form(app["id"], num))
    # then
    assert_success(response)
    assert await badge(http, tokens, app["id"]) == counts(left)


async def test_setnum_zero_changes_nothing(
    http: httpx.AsyncClient, tokens: Tokens, noticed: dict[str, Any], db: Database
) -> None:
    """num=0 succeeds and changes nothing, not even the version."""
    # given
    before = await badge_rows(db)
    # when
    response = await http.post(SETNUM, data=setnum_form(noticed["id"], "0"))
    # then
    assert_success(response)
    assert await badge_rows(db) == before
    assert await badge(http, tokens, noticed["id"]) == counts(1)


async def test_setnum_for_user_without_badge_succeeds(
    http: httpx.AsyncClient, tokens: Tokens, noticed: dict[str, Any], db: Database
) -> None:
    """setnum for a user who has no badge succeeds and creates nothing."""
    # given
    before = await badge_rows(db)
    # when
    response = await http.post(SETNUM, data=setnum_form(noticed["id"], "2", "1001", "4242"))
    # then
    assert_success(response)
    assert await badge_rows(db) == before
    assert await badge(http, tokens, noticed["id"], 1001, 4242) == counts(0)


async def test_setnum_touches_only_its_app_and_user(
    http: httpx.AsyncClient, tokens: Tokens, noticed: dict[str, Any]
) -> None:
    """setnum lowers one app of one user; the user's other apps and other users keep theirs."""
    # given
    other = await create_app(http, tokens.admin(), identifier="OtherApp")
    await notify(http, other["id"], 2)
    # when
    response = await http.post(SETNUM, data=setnum_form(noticed["id"], "1"))
    # then
    assert_success(response)
    assert await badge(http, tokens, noticed["id"]) == counts(0, unseen=2, total=2)
    assert await badge(http, tokens, other["id"]) == counts(2, unseen=2, total=2)
    assert await badge(http, tokens, noticed["id"], 1001, 1078) == counts(1)


SETNUM_REQUESTS = [
    pytest.param(lambda app_id: {"method": "GET", "params": setnum_form(app_id, "2")}, id="get"),
    pytest.param(
        lambda app_id: {
            "method": "POST",
            "files": {name: (None, value) for name, value in setnum_form(app_id, "2").items()},
        },
        id="multipart",
    ),
    pytest.param(
        lambda app_id: {
            "method": "POST",
            "data": {f"{name} ": value for name, value in setnum_form(app_id, "2").items()},
        },
        id="names-with-spaces",
    ),
    pytest.param(
        lambda app_id: {
            "method": "POST",
            "url": "/%20OpenPlatform/integrate/setnum.php%20",
            "data": setnum_form(app_id, "2"),
        },
        id="path-with-spaces",
    ),
]


@pytest.mark.parametrize("build", SETNUM_REQUESTS)
async def test_setnum_accepted_however_sent(
    http: httpx.AsyncClient, tokens: Tokens, app: dict[str, Any], build: Callable[[str], Request]
) -> None:
    """setnum works by GET, multipart, with spaced names and a spaced path."""
    # given
    await notify(http, app["id"], 3)
    request = {"url": SETNUM, **build(app["id"])}
    # when
    response = await http.request(**request)
    # then
    assert_encoding(response, request)
    assert_success(response)
    assert await badge(http, tokens, app["id"]) == counts(1)


SETNUM_FAILURES = [
    pytest.param({"cid": "1001", "uid": "1034"}, "appid", id="no-appid"),
    pytest.param({"appid": APP, "uid": "1034"}, "cid", id="no-cid"),
    pytest.param({"appid": APP, "cid": "1001"}, "uid", id="no-uid"),
    pytest.param({"appid": "x" + APP, "cid": "1001", "uid": "1034"}, "appid", id="bad-appid"),
    pytest.param({"appid": APP, "cid": "1001a", "uid": "1034"}, "cid", id="bad-cid"),
    pytest.param({"appid": APP, "cid": "1001", "uid": "abc"}, "uid", id="bad-uid"),
    pytest.param({"appid": APP, "cid": "-1001", "uid": "1034"}, "cid", id="negative-cid"),
    pytest.param({"appid": APP, "cid": "1001", "uid": "1" * 20}, "uid", id="20-digit-uid"),
    pytest.param(setnum_form(APP, "-1"), "num", id="num-negative"),
    pytest.param(setnum_form(APP, "1.5"), "num", id="num-decimal"),
    pytest.param(setnum_form(APP, "abc"), "num", id="num-abc"),
    pytest.param(setnum_form(APP, "１"), "num", id="num-fullwidth-digit"),
    pytest.param(setnum_form(APP, "-" + "9" * 30), "num", id="num-long-negative"),
    pytest.param(setnum_form("999"), "app 999 not found", id="unknown-app"),
    pytest.param(
        setnum_form("9999999999"), "app 9999999999 not found", id="unknown-app-beyond-int32"
    ),
]


@pytest.mark.parametrize(("form", "reason"), SETNUM_FAILURES)
async def test_setnum_refuses_bad_input_and_changes_nothing(
    http: httpx.AsyncClient,
    tokens: Tokens,
    noticed: dict[str, Any],
    db: Database,
    form: dict[str, Any],
    reason: str,
) -> None:
    """Every malformed setnum gets exactly -51004 with a reason, and changes no count."""
    # given
    before = await badge_rows(db)
    # when
    response = await http.post(SETNUM, data=fill(form, noticed["id"]))
    # then
    assert_failure(response, SETNUM_FAILURE, reason)
    assert await badge_rows(db) == before
    assert await badge(http, tokens, noticed["id"]) == counts(1)


async def test_setnum_refuses_disabled_app(
    http: httpx.AsyncClient, noticed: dict[str, Any], db: Database
) -> None:
    """setnum for a disabled app is refused and changes nothing."""
    # given
    await disable(db, noticed["id"])
    before = await badge_rows(db)
    # when
    response = await http.post(SETNUM, data=setnum_form(noticed["id"], "1"))
    # then
    assert_failure(response, SETNUM_FAILURE, "not found")
    assert await badge_rows(db) == before


# --- methods, CORS, paths -------------------------------------------------------------------

ALL_PATHS = (GETAPPID, PUSH, SETNUM)


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_other_methods_are_not_allowed(http: httpx.AsyncClient, method: str) -> None:
    """Only GET and POST are served: PUT and DELETE get 405 on every legacy path."""
    # given
    form = {"appkey": "x"}
    # when
    responses = [await http.request(method, path, data=form) for path in ALL_PATHS]
    # then
    for response in responses:
        assert response.status_code == 405
        assert {"GET", "POST"} <= set(response.headers["allow"].replace(" ", "").split(","))


async def test_cors_preflight_from_browser_origin(http: httpx.AsyncClient) -> None:
    """A browser's preflight for a cross-origin POST is answered with CORS headers allowing it."""
    # given
    headers = {
        "Origin": BROWSER_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    # when
    responses = [await http.options(path, headers=headers) for path in ALL_PATHS]
    # then
    for response in responses:
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] in ("*", BROWSER_ORIGIN)
        allowed = response.headers["access-control-allow-methods"].replace(" ", "").split(",")
        assert {"GET", "POST"} <= set(allowed)
        assert "content-type" in response.headers["access-control-allow-headers"].lower()


async def test_cors_simple_post_exposes_error_reason(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """A cross-origin POST gets an allow-origin header and may read X-Error-Reason."""
    # given
    headers = {"Origin": BROWSER_ORIGIN}
    # when
    refused = await http.post(GETAPPID, data={"appkey": "nope"}, headers=headers)
    accepted = await http.post(GETAPPID, data={"appkey": app["appKey"]}, headers=headers)
    # then
    assert_failure(refused, GETAPPID_FAILURE)
    assert_success(accepted, app_id_body(app["id"]))
    for response in (refused, accepted):
        assert response.headers["access-control-allow-origin"] in ("*", BROWSER_ORIGIN)
        exposed = response.headers["access-control-expose-headers"].lower()
        assert "x-error-reason" in exposed.replace(" ", "").split(",")


WRONG_PATHS = (
    "/openplatform/integrate/getappid.php",
    "/OpenPlatform/Integrate/getappid.php",
    "/OpenPlatform/integrate/GetAppId.php",
    "/OpenPlatform/integrate/getappid.PHP",
    "/OpenPlatform/integrate/getappid",
    "/%20openplatform/integrate/getappid.php%20",
    "/openplatform/integrate/pushappnotice.php",
    "/openplatform/integrate/setnum.php",
    "/OpenPlatform/integrate/getappid%252Ephp",
    "/OpenPlatform/integrate/getappid.php%2520",
    "/OpenPlatform/integrate/getappid.php%09",
)


async def test_paths_are_case_sensitive(http: httpx.AsyncClient, app: dict[str, Any]) -> None:
    """Only the exact legacy paths (spaces aside) are served; other spellings are 404."""
    # given
    query = {"appkey": app["appKey"]}
    # when
    responses = {path: await http.get(path, params=query) for path in WRONG_PATHS}
    # then
    assert {path: r.status_code for path, r in responses.items()} == dict.fromkeys(WRONG_PATHS, 404)


async def test_head_does_not_apply_a_notice(http, tokens):
    """HEAD on pushappnotice (which Starlette would route like GET) is 405 and counts nothing."""
    # given
    app = await create_app(http, tokens.admin(), identifier="HeadProbe")
    # when
    response = await http.head(
        PUSH, params={"fromcid": "1", "fromuid": "2", "appid": app["id"], "users": '["1001,1034"]'}
    )
    # then
    assert response.status_code == 405
    body = await gql(http, tokens.user(), "{ workbench(platform: PC) { unreadTotal } }")
    assert body == {"data": {"workbench": {"unreadTotal": 0}}}


@pytest.mark.parametrize("endpoint", ["push", "setnum"])
async def test_a_write_past_the_busy_timeout_says_database_busy(
    settings: Settings, tokens: Tokens, caplog: pytest.LogCaptureFixture, endpoint: str
) -> None:
    """A notice or read that waits for another writer's lock past the busy timeout is refused
    with X-Error-Reason "database busy" (not "internal error"), changes nothing, and logs no
    ERROR (issue 11 item 9)."""
    # given
    settings = settings.model_copy(update={"db_busy_timeout_ms": 200})
    caplog.set_level(logging.DEBUG)
    async with running(settings) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        app = await create_app(http, tokens.admin(), identifier="BusyVendor")
        await push(http, app["id"], ["1001,1034"])
        db = Database(settings.database_url)
        before = await badge_rows(db)
        # when
        async with holding_write_lock(settings.database_url):
            if endpoint == "push":
                response = await push(http, app["id"], SEED_USERS)
            else:
                response = await http.post(
                    SETNUM, data={"appid": app["id"], "cid": "1001", "uid": "1034"}
                )
        # then
        assert_failure(
            response, PUSH_FAILURE if endpoint == "push" else SETNUM_FAILURE, "database busy"
        )
        assert await badge_rows(db) == before
        await db.dispose()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
